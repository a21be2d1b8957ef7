"""``make run`` looks after its embedded Redis and leaves nothing behind.

Mirrors ``launcher/serve.py``, ``launcher/redis_supervisor.py`` and
``launcher/lifetime.py``. Each live test runs ``python -m launcher.serve``
on a free port with a temporary data folder (``ServeRun``), and checks:

- a ``kill -9`` of the embedded valkey is followed by a restart (logged,
  with back-off) and the service caches again by itself;
- a ``kill -9`` of serve's whole process group leaves no valkey, no
  supervisor and no granian running, and the next start sweeps the runtime
  leftovers (the metrics folder under ``run/``) and keeps the cache;
- a server left in the data folder by an earlier run is stopped and
  replaced, not adopted; a second serve on the same data folder is refused.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from launcher import embedded_redis, lifetime
from launcher import server as mathsite_server
from mathsite import paths
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import (
    BASE_DIR,
    ServeRun,
    descendants,
    http_get,
    listening_sockets,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path):
    run = ServeRun(tmp_path / "data")
    yield run
    run.stop()
    leftover = embedded_redis.embedded(run.redis_folder)
    leftover.stop_leftover()  # a failed test must not leave a server behind


def cached_soon(service: ServeRun, n: int, timeout: float) -> bool:
    """Request fib(n) until a reply says ``cached: true`` (the cache works again)."""

    def cached() -> bool:
        reply = http_get(service.port, f"/api/fib/{n}/")
        assert reply.status == 200 and reply.data["result"] == fib_reference(n)
        return reply.data["cached"] is True

    return wait_until(cached, timeout, interval=0.2)


# --- the parent-death signal --------------------------------------------------------


def test_a_child_spawned_with_die_with_parent_gets_sigterm_when_its_parent_is_killed():
    """A middle process spawns ``sleep`` with the hook; SIGKILL of the middle ends ``sleep``."""
    script = (
        "import subprocess, sys, time; from launcher import lifetime; "
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=lifetime.die_with_parent()); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", script], cwd=BASE_DIR, stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(middle.stdout.readline())
        assert lifetime.alive(child)
        middle.kill()
        middle.wait(timeout=5)
        assert wait_until(lambda: not lifetime.alive(child), 5)
    finally:
        if middle.poll() is None:
            middle.kill()
        middle.stdout.close()


def test_sweep_removes_the_metrics_folders_of_dead_launchers_only(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = paths.metrics_dir(gone.pid, tmp_path)
    mine = paths.metrics_dir(os.getpid(), tmp_path)
    for folder in (dead, mine):
        folder.mkdir(parents=True)
        (folder / "counter_1.db").write_bytes(b"x")
    assert mathsite_server.sweep_metrics_folders(tmp_path) == [dead]
    assert not dead.exists() and mine.exists()


# --- supervision of the embedded Redis ------------------------------------------------


def test_a_killed_embedded_redis_is_restarted_with_back_off_and_caching_resumes(service, request):
    service.start()
    assert http_get(service.port, "/api/fib/100/").data["cached"] is False
    assert cached_soon(service, 100, 2)
    delays = []
    for round_ in range(2):
        first = service.redis_pid()
        assert first is not None
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)

        def replaced(old: int = first) -> bool:
            pid = service.redis_pid()
            return pid not in (None, old) and embedded_redis.is_running(service.redis_folder)

        assert wait_until(replaced, 15, interval=0.05), service.output.read_text()[-2000:]
        delays.append(round(time.monotonic() - killed_at, 2))
        # Values computed after the restart are cached again, without restarting serve.
        n = 200 + round_
        assert http_get(service.port, f"/api/fib/{n}/").data["cached"] is False
        # In Redis again (a cached reply alone could come from the result log).
        assert wait_until(lambda n=n: service.redis().keys(f"*:fib:{n}:fmt*"), 10, interval=0.2)
        assert cached_soon(service, n, 10)
    log = service.output.read_text()
    assert "exited with -9; restarting in 0.5 s" in log
    # The back-off doubles (the second kill may catch the new server while the
    # supervisor still waits for it to answer: then it is "retrying").
    assert re.search(r"(exited with -9; restarting|retrying the embedded Redis) in 1\.0 s", log)
    assert service.process.poll() is None  # serve itself never stopped
    record(request, "make run: embedded Redis back after kill -9", delays[0], "s")


def test_sigkill_of_the_whole_process_group_leaves_nothing_running(service, request):
    service.start()
    assert http_get(service.port, "/api/fib/300/").data["cached"] is False
    assert cached_soon(service, 300, 2)
    serve_pid = service.process.pid
    tree = descendants(serve_pid)
    redis_pid = service.redis_pid()
    commands = {pid: " ".join(lifetime.command_line(pid)) for pid in tree}
    assert redis_pid in tree
    assert any("launcher.redis_supervisor" in c for c in commands.values())
    granian = {pid for pid, c in commands.items() if "launcher.shared_listener" in c}
    assert len(granian) >= 3  # the main process, 2 workers

    def holders() -> set[int]:
        (pids,) = listening_sockets(service.port).values()  # one backlog for them all
        return pids

    # A process a worker is starting (a computation process) holds every
    # inherited descriptor for the instant between its fork and its exec;
    # none keeps the socket after that.
    assert wait_until(lambda: holders() <= granian, 5, interval=0.05), holders() - granian
    assert len(holders()) >= 3
    metrics = paths.metrics_dir(serve_pid, service.data)
    assert metrics.is_dir()

    killed_at = time.monotonic()
    service.kill_group()
    assert wait_until(lambda: not any(lifetime.alive(pid) for pid in tree), 20), {
        pid: commands[pid] for pid in tree if lifetime.alive(pid)
    }
    record(
        request,
        "make run: all gone after kill -9 of the group",
        round(time.monotonic() - killed_at, 2),
        "s",
    )
    assert not embedded_redis.is_running(service.redis_folder)
    assert metrics.is_dir()  # nobody was left to remove it...

    service.start()  # ...so the next start sweeps it
    assert not metrics.exists()
    assert sorted(p.name for p in paths.run_dir(service.data).iterdir()) == sorted(
        ["serve.pid", paths.metrics_dir(service.process.pid, service.data).name]
    )
    # The supervisor stopped Redis with SHUTDOWN (it saved): the cache survived.
    assert http_get(service.port, "/api/fib/300/").data["cached"] is True
    service.stop()
    assert not embedded_redis.is_running(service.redis_folder)
    assert not paths.run_dir(service.data).joinpath("serve.pid").exists()


def test_a_leftover_server_is_stopped_and_replaced_not_adopted(service):
    """A server of an earlier run (here also SIGSTOPped: it cannot even answer) is replaced."""
    leftover = embedded_redis.embedded(service.redis_folder).start()
    leftover.client().set("left-by-an-earlier-run", b"1")
    leftover.pause()
    try:
        service.start()
        assert leftover.process.wait(timeout=5) is not None  # stopped, by SHUTDOWN
        assert service.redis_pid() not in (None, leftover.pid)
        assert service.redis().get("left-by-an-earlier-run") == b"1"  # it saved first
        assert f"stopped a Redis server (pid {leftover.pid})" in service.output.read_text()
        assert http_get(service.port, "/api/fib/400/").data["cached"] is False
        assert cached_soon(service, 400, 2)
    finally:
        leftover.kill()


def test_a_second_serve_on_the_same_data_folder_is_refused(service):
    service.start()
    redis_pid = service.redis_pid()
    second = ServeRun(service.data).spawn()
    assert second.wait(timeout=30) != 0
    assert f"another make run (pid {service.process.pid})" in service.output.read_text()
    assert service.redis_pid() == redis_pid  # the first run's Redis was left alone
    assert http_get(service.port, "/healthz").status == 200


def test_make_run_keeps_the_data_folder_private_whatever_the_umask(service):
    """Started with umask 022 on a folder created 0755: 0700 folders, 0600 database and key."""
    service.data.mkdir(parents=True)
    service.data.chmod(0o755)
    previous = os.umask(0o022)  # serve and everything it starts inherit it
    try:
        service.start()
    finally:
        os.umask(previous)
    assert http_get(service.port, "/api/fib/500/").data["cached"] is False  # a write

    def mode(path) -> str:
        return oct(path.stat().st_mode & 0o777)

    database = paths.sqlite_file(service.data)
    seen = {
        "data folder": mode(service.data),
        "secret_key": mode(paths.secret_key_file(service.data)),
        "redis folder": mode(service.redis_folder),
        **{p.name: mode(p) for p in database.parent.glob(database.name + "*")},
    }
    assert seen == {
        "data folder": "0o700",
        "secret_key": "0o600",
        "redis folder": "0o700",
        "db.sqlite3": "0o600",
        "db.sqlite3-wal": "0o600",
        "db.sqlite3-shm": "0o600",
    }
