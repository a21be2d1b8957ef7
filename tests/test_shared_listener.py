"""Replacing granian workers loses no new connection (SPEC, Serving; ``launcher.shared_listener``).

The project's server command (``launcher.server.command``, the one
``make run`` and production use) on a free port, three workers, against a
Redis of the test's own. There is one listening socket, held by granian's
main process and its workers (granian's own command would give each worker
a ``SO_REUSEPORT`` socket). While workers are killed, crash-respawned or
restarted on purpose, new connections wait in that socket's backlog and are
answered; none is refused or reset:

- **every worker killed at once** (SIGKILL): a new connection every 50 ms
  for 3 s, from the moment the last worker is gone (the first ones wait
  for the replacements to start);
- **workers killed one by one** under load: a few client threads sending
  requests back to back, plus a new connection every 10 ms in a thread of
  its own (so that connections keep coming whatever some of them wait
  for), a new connection per request. Each victim is frozen first
  (SIGSTOP), then killed 0.3 s later: a connection made while it was
  frozen was never accepted by it, and must be answered. Only requests it
  had accepted before it froze may be lost (SPEC). The next victim freezes
  once the replacement serves;
- **every worker restarted on purpose** (SIGHUP to granian's main process:
  the restart that ``GRANIAN_WORKERS_LIFETIME`` triggers, worker by worker,
  ``GRANIAN_RESPAWN_INTERVAL`` apart; the lifetime itself is at least 60 s)
  under the same load: no request fails at all. An old worker stops
  accepting and finishes its requests before it is stopped, and holds no
  connection whose request has not arrived (the socket defers accepting
  until it has): one it held would be closed unanswered.

Each test starts its own server (granian exits on what it takes for a
crash loop: a slot that dies again within 5.5 s of its respawn). Every
request has a client timeout and every wait a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from launcher import server as mathsite_server
from launcher import shared_listener
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import (
    LiveServer,
    Reply,
    exited,
    frozen,
    http_get,
    listening_sockets,
    serving_a_hit,
    wait_until,
)

WORKERS = 3
N = 90
PATH = f"/api/fib/{N}/"  # a cached hit once warmed
CLIENTS = 4
PROBE_EVERY = 0.05
PROBE_FOR = 3.0
FROZEN_FOR = 0.3  # long enough for new connections to arrive while a victim is frozen
REPLY_TIMEOUT = 20.0  # far above a worker's start (about 1.5 s)


@pytest.fixture
def live(tmp_path) -> Iterator[LiveServer]:
    with serving_a_hit(tmp_path, PATH, workers=WORKERS) as server:  # hits from here on
        yield server


def failure(reply: Reply) -> str:
    """Name how a request failed: ``refused``, ``reset``, ``timeout`` or ``status <n>``."""
    if reply.status:
        return f"status {reply.status}"
    if "ConnectionRefused" in reply.error:
        return "refused"
    if any(word in reply.error for word in ("Reset", "RemoteDisconnected", "BrokenPipe")):
        return "reset"
    return "timeout" if "timed out" in reply.error else reply.error


class Stream:
    """``clients`` threads GETting ``path`` back to back, a new connection each, until stopped."""

    def __init__(self, port: int, path: str, clients: int = CLIENTS) -> None:
        self.port, self.path = port, path
        self.replies: list[Reply] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            self._keep(http_get(self.port, self.path, timeout=REPLY_TIMEOUT))

    def _keep(self, reply: Reply) -> None:
        with self._guard:
            self.replies.append(reply)

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REPLY_TIMEOUT + 5)
        self.replies.sort(key=lambda reply: reply.started)


class Probes(Stream):
    """A new connection every ``interval`` s, each in a thread of its own, until stopped.

    Unlike a client thread, a probe waiting for its answer delays no other
    probe: connections keep arriving at the server's pace of ``interval``
    however long the first ones wait.
    """

    def __init__(self, port: int, path: str, interval: float = PROBE_EVERY) -> None:
        super().__init__(port, path, clients=1)
        self.interval = interval
        self._probes: list[threading.Thread] = []

    def _client(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            probe = threading.Thread(
                target=lambda: self._keep(http_get(self.port, self.path, timeout=REPLY_TIMEOUT))
            )
            probe.start()
            self._probes.append(probe)
            started += self.interval
            self._stop.wait(max(0.0, started - time.monotonic()))
        for probe in self._probes:
            probe.join(timeout=REPLY_TIMEOUT + 5)


def replaced(live: LiveServer, victims: set[int]) -> bool:
    """Return whether ``live`` runs its full set of workers again, none of them a victim."""
    pids = live.worker_pids()
    return len(pids) == WORKERS and not pids & victims


def serving(live: LiveServer) -> bool:
    """Return whether every worker of ``live`` has answered a request (its access log says so)."""
    return live.worker_pids() <= {access.pid for access in live.accesses().values()}


REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


def granian_requirement() -> tuple[str, str]:
    """Return the operator and version of requirements.txt's granian line (``("==", "2.8.9")``)."""
    found = [
        match.groups()
        for line in REQUIREMENTS.read_text().splitlines()
        if (match := re.fullmatch(r"granian\s*([=<>!~]=?=?)\s*([^\s;#]+).*", line.strip()))
    ]
    assert len(found) == 1, found
    return found[0]


def test_requirements_pin_granian_exactly_to_the_version_shared_listener_was_written_for():
    # shared_listener subclasses a private hook of granian's: a range would let
    # an install pick a release whose hook it was never tested against.
    operator, version = granian_requirement()
    assert operator == "==", f"granian{operator}{version}: pin it exactly"
    assert version == shared_listener.GRANIAN_VERSION
    assert metadata.version("granian") == version  # what runs is what is pinned


def test_main_refuses_another_granian_version(monkeypatch):
    monkeypatch.setattr(shared_listener, "__version__", "2.9.0")
    monkeypatch.setattr(shared_listener.cli, "entrypoint", lambda: pytest.fail("granian started"))
    expected = rf"written for granian {re.escape(shared_listener.GRANIAN_VERSION)}.*granian 2\.9\.0"
    with pytest.raises(SystemExit, match=expected):
        shared_listener.main()
    assert shared_listener.cli.Server is not shared_listener.SharedListenerServer


def test_main_refuses_a_granian_that_builds_another_server(monkeypatch):
    monkeypatch.setattr(shared_listener.cli, "Server", object)
    with pytest.raises(SystemExit, match="does not build its server"):
        shared_listener.main()


@pytest.mark.slow
def test_the_server_command_runs_granian_with_one_listening_socket(live):
    assert mathsite_server.command("app") == [
        mathsite_server.sys.executable, "-m", shared_listener.__name__, "app",
    ]  # fmt: skip
    sockets = listening_sockets(live.port)
    assert len(sockets) == 1, sockets  # one backlog, not one per worker
    (holders,) = sockets.values()
    assert holders == {live.process.pid, *live.worker_pids()}


@pytest.mark.slow
def test_every_worker_killed_at_once_new_connections_wait_and_are_answered(live, request):
    victims = live.worker_pids()
    assert len(victims) == WORKERS
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_until(lambda: all(exited(pid) for pid in victims), 5)
    gone = time.monotonic() - killed_at

    with Probes(live.port, PATH) as probes:
        time.sleep(PROBE_FOR)
    replies = probes.replies

    failures = Counter(failure(reply) for reply in replies if reply.status != 200)
    waited = max(reply.elapsed for reply in replies)
    record(request, "every worker killed: new connections probed", len(replies))
    record(request, "every worker killed: probes refused", failures["refused"])
    record(request, "every worker killed: probes reset", failures["reset"])
    record(request, "every worker killed: longest wait of a probe", round(waited, 2), "s")
    assert not failures, failures
    assert len(replies) >= PROBE_FOR / PROBE_EVERY - 1
    assert all(reply.data["result"] == fib_reference(N) for reply in replies)
    # The first probes were made while no worker ran: they waited for one.
    assert gone < 1.0 and replies[0].elapsed > 0.3
    assert wait_until(lambda: replaced(live, victims), 15, interval=0.1)


@pytest.mark.slow
def test_workers_killed_one_by_one_under_load_lose_no_new_connection(live, request):
    windows: list[tuple[float, float]] = []  # (seen frozen at, killed at) per victim
    victims: set[int] = set()
    with Stream(live.port, PATH) as stream, Probes(live.port, PATH, interval=0.01) as probes:
        time.sleep(0.5)
        for victim in sorted(live.worker_pids()):
            victims.add(victim)
            os.kill(victim, signal.SIGSTOP)
            assert wait_until(lambda pid=victim: frozen(pid), 2, interval=0)
            frozen_at = time.monotonic()
            time.sleep(FROZEN_FOR)  # new connections keep arriving meanwhile
            os.kill(victim, signal.SIGKILL)
            windows.append((frozen_at, time.monotonic()))
            assert wait_until(lambda pid=victim: exited(pid), 5)
            # The replacement serves before the next victim freezes: this test is
            # about a dying worker's connections, the one above about no worker.
            assert wait_until(lambda: replaced(live, victims), 15, interval=0.05)
            assert wait_until(lambda: serving(live), 30, interval=0.1)
        time.sleep(0.5)

    def accepted_by_a_victim(reply: Reply) -> bool:
        # Started before the victim was seen frozen and unanswered when it died.
        return any(
            reply.started < frozen_at and reply.started + reply.elapsed >= killed_at
            for frozen_at, killed_at in windows
        )

    def made_while_frozen(reply: Reply) -> bool:
        return any(frozen_at <= reply.started < killed_at for frozen_at, killed_at in windows)

    replies = stream.replies + probes.replies
    failed = [reply for reply in replies if reply.status != 200]
    lost = [reply for reply in failed if not accepted_by_a_victim(reply)]
    failures = Counter(failure(reply) for reply in lost)
    record(request, "workers killed one by one: requests", len(replies))
    record(
        request,
        "workers killed one by one: new connections made while a victim was frozen",
        sum(map(made_while_frozen, replies)),
    )
    record(request, "workers killed one by one: new connections refused", failures["refused"])
    record(request, "workers killed one by one: new connections reset", failures["reset"])
    record(
        request, "workers killed one by one: accepted by a victim, lost", len(failed) - len(lost)
    )
    assert not lost, failures
    assert sum(map(made_while_frozen, replies)) >= WORKERS * FROZEN_FOR / 0.01 / 2
    assert len(replies) > 500


@pytest.mark.slow
def test_every_worker_restarted_on_purpose_loses_no_connection(live, request):
    old = live.worker_pids()
    with Stream(live.port, PATH) as stream, Probes(live.port, PATH, interval=0.01) as probes:
        time.sleep(0.5)
        restarted_at = time.monotonic()
        os.kill(live.process.pid, signal.SIGHUP)
        assert wait_until(lambda: replaced(live, old), 60, interval=0.05)
        took = time.monotonic() - restarted_at
        time.sleep(0.5)

    replies = stream.replies + probes.replies
    failed = [reply for reply in replies if reply.status != 200]
    failures = Counter(failure(reply) for reply in failed)
    record(request, "every worker restarted: requests", len(replies))
    record(request, "every worker restarted: refused", failures["refused"])
    record(request, "every worker restarted: reset", failures["reset"])
    record(request, "every worker restarted: time to replace all", round(took, 2), "s")
    assert not failed, [
        (reply.error, round(reply.started - restarted_at, 3), round(reply.elapsed, 3))
        for reply in failed
    ]
    assert len(replies) > 500
