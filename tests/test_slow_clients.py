"""Slow and idle clients never stop others (SPEC, Serving), on a real granian.

A granian with two workers (the project's server command and defaults)
holds ``IDLE`` TCP connections that never send a byte and ``SLOW``
clients that dribble a request's header bytes, one every ``DRIBBLE_EVERY``
seconds, for ``SECONDS`` seconds, while another client asks for a cached
hit in a loop (a new connection each time). Every one of those hits must
be answered, ``cached: true``, within ``HIT_BOUND`` (1 s); their p50, p99
and worst latency are recorded as figures.

Under gunicorn's sync workers the same load would block every worker
(each reads one client's headers until they end); granian reads headers
in its I/O runtime, and a Python thread only ever runs a complete request.

The server drops a client whose headers are not complete after
``GRANIAN_HTTP1_HEADER_READ_TIMEOUT`` (10 s): a dropped idle or slow
connection is opened again at once, so the load stays at full strength for
the whole time; how many were dropped, and after how long (never before
``MIN_HELD``: every connection was really held), is recorded too. Every
socket is closed at the end, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

import pytest

from tests.support.figures import record
from tests.support.servers import LiveServer, RedisServer, http_get, wait_until

pytestmark = pytest.mark.slow

WORKERS = 2
IDLE = 200
SLOW = 50
SECONDS = 20.0
DRIBBLE_EVERY = 0.4
HIT_BOUND = 1.0
MIN_HELD = 5.0  # below the server's header timeout (10 s)
N = 1000
PATH = f"/api/fib/{N}/"
# Longer than SECONDS / DRIBBLE_EVERY bytes: the headers never end.
HEADER = (
    f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dribbler\r\nX-Dribble: " + "x" * 200
).encode()


@pytest.fixture
def live(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    server = LiveServer(tmp_path / "web", redis_url=redis_server.url(), workers=WORKERS)
    try:
        yield server.start()
    finally:
        server.stop()
        redis_server.stop()


class Load:
    """Idle and slow-header connections to 127.0.0.1:``port``, kept at full count."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[socket.socket] = []
        self.slow: list[tuple[socket.socket, int]] = []  # (socket, header bytes sent)
        self.dropped = {"idle": [], "slow": []}  # seconds each dropped one was open
        self.opened: dict[socket.socket, float] = {}
        self.stop = threading.Event()
        self.errors: list[str] = []

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.opened[sock] = time.monotonic()
        return sock

    def drop(self, kind: str, sock: socket.socket) -> None:
        self.dropped[kind].append(time.monotonic() - self.opened.pop(sock))
        sock.close()

    def open(self) -> None:
        self.idle = [self.connect() for _ in range(IDLE)]
        self.slow = [(self.connect(), 0) for _ in range(SLOW)]

    def dribble(self) -> None:
        """Send every slow client's next header byte, every DRIBBLE_EVERY s; reconnect drops."""
        try:
            while not self.stop.wait(DRIBBLE_EVERY):
                for index, (sock, sent) in enumerate(self.slow):
                    try:
                        sock.sendall(HEADER[sent : sent + 1])
                        self.slow[index] = (sock, sent + 1)
                    except OSError:  # dropped by the header timeout: dribble again
                        self.drop("slow", sock)
                        self.slow[index] = (self.connect(), 0)
        except Exception as exc:  # reported by the test, never lost in a thread
            self.errors.append(repr(exc))

    def keep_idle(self) -> None:
        """Reopen every idle connection the server closes (readable = closed for these)."""
        try:
            while not self.stop.is_set():
                with selectors.DefaultSelector() as selector:
                    for index, sock in enumerate(self.idle):
                        selector.register(sock, selectors.EVENT_READ, index)
                    for key, _ in selector.select(timeout=0.5):
                        index = key.data
                        self.drop("idle", self.idle[index])
                        self.idle[index] = self.connect()
        except Exception as exc:
            self.errors.append(repr(exc))

    def close(self) -> None:
        self.stop.set()
        for sock in [*self.idle, *(sock for sock, _ in self.slow)]:
            with contextlib.suppress(OSError):
                sock.close()


def warm(live: LiveServer) -> None:
    """Store the hit and have every worker serve it once (a worker's first request is slow)."""
    assert live.get(PATH).status == 200
    served: set[int] = set()
    for _ in range(20):
        replies: list = []

        def hit(into: list = replies) -> None:
            into.append(live.get(PATH))

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert all(r.status == 200 and r.data["cached"] is True for r in replies)
        records = live.accesses_of(replies)
        served |= {records[r.test_id].pid for r in replies}
        if served == live.worker_pids():
            return
    raise AssertionError(f"the hits reached {len(served)} of {WORKERS} workers")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_idle_and_slow_header_clients_leave_cached_hits_fast(live, request):
    warm(live)
    load = Load(live.port)
    threads = []
    try:
        load.open()
        threads = [
            threading.Thread(target=load.dribble, name="dribble"),
            threading.Thread(target=load.keep_idle, name="idle"),
        ]
        for thread in threads:
            thread.start()
        hits = []
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            hits.append(http_get(live.port, PATH, timeout=5))
            time.sleep(0.01)
        dribbled = max(sent for _, sent in load.slow)
    finally:
        load.stop.set()
        for thread in threads:  # before the sockets close under their feet
            thread.join(timeout=5)
        load.close()

    assert load.errors == []
    failed = [(r.status, r.error) for r in hits if r.status != 200 or not r.data["cached"]]
    assert failed == []
    latencies = [r.elapsed for r in hits]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    record(request, "slow clients: idle connections held", IDLE)
    record(request, "slow clients: slow-header clients", SLOW, f"(1 byte / {DRIBBLE_EVERY} s)")
    for kind in ("idle", "slow"):
        held = load.dropped[kind]
        record(request, f"slow clients: {kind} connections dropped by the server", len(held))
        if held:
            shortest = round(min(held), 2)
            record(request, f"slow clients: {kind} connections held at least", shortest, "s")
    record(request, "slow clients: cached hits answered meanwhile", len(hits), f"in {SECONDS} s")
    record(request, "slow clients: hit latency p50", round(p50 * 1e3, 2), "ms")
    record(request, "slow clients: hit latency p99", round(p99 * 1e3, 2), "ms")
    record(request, "slow clients: hit latency max", round(max(latencies) * 1e3, 2), "ms")
    assert dribbled >= 10  # the slow clients really were sending all along
    # ... and the server held every connection a while (no early refusal), until
    # its header timeout dropped the idle and slow ones (then they came back).
    assert all(seconds >= MIN_HELD for held in load.dropped.values() for seconds in held)
    assert len(hits) >= 100
    assert max(latencies) < HIT_BOUND
    # The server is still whole: every worker up, the hit still served.
    assert wait_until(lambda: len(live.worker_pids()) == WORKERS, 5)
    assert live.get(PATH).data["cached"] is True
