"""Concurrency against real processes: granian workers sharing a Redis the test owns.

What a single process cannot show: a burst of identical cold requests
spread over several worker processes computes once (the Redis lock), a
worker killed while holding that lock blocks the key no longer than the
lock's timeout, and with Redis down each process still computes at most
once (its own lock, then the result log). Computations are counted by the
probe of ``tests.support.live_wsgi`` (one ``start``/``end`` line per call of
the maths, with the pid), not inferred from response bodies, and which
worker served what comes from the access log the test application writes.

Bounds: every request has a client timeout, every wait a deadline; the
module starts two granian servers (3 workers each) and one Redis, and stops them.
"""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import threading
import time
from collections import Counter

import pytest

from compute.cache.locks import lock_name
from compute.domain.query import ResultQuery
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import (
    LiveServer,
    RedisServer,
    exited,
    free_port,
    http_get,
    wait_until,
)

pytestmark = pytest.mark.slow

WORKERS = 3
LOCK_TIMEOUT = 2.0
# fib(n) for n in 15000-15999 takes 0.6 s (long enough for every worker to
# arrive while it runs); 16000-16999 takes 2.5 s the first time only (a
# computation to kill mid-way; the retry after the kill is quick).
SLOW = "15000-15999:0.6,16000-16999:2.5:once"
SLOW_SECONDS = 0.6
LIVE_ENV = {
    "MATHSITE_TEST_SLOW": SLOW,
    "COMPUTE_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
    "COMPUTE_LOCK_WAIT": "10",
}
# The workers share one listening socket (launcher.shared_listener) and a new
# connection goes to whichever accepts first, so a burst may land on fewer
# workers than it has. At most 8 connections per worker at once: the cold
# burst of 32 below reaches all three.
BURST_BACKPRESSURE = 8


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("concurrency-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_server):
    server = LiveServer(
        tmp_path_factory.mktemp("concurrency-web"),
        redis_url=redis_server.url(),
        workers=WORKERS,
        env={**LIVE_ENV, "GRANIAN_BACKPRESSURE": str(BURST_BACKPRESSURE)},
    )
    try:
        yield server.start()
    finally:
        server.stop()


def burst(port: int, path: str, count: int, *, timeout: float = 20.0) -> list:
    """Send ``count`` GETs of ``path`` at once (threads released by a barrier)."""
    replies: list = []
    guard = threading.Lock()
    barrier = threading.Barrier(count)

    def one() -> None:
        barrier.wait(timeout=10)
        reply = http_get(port, path, timeout=timeout)
        with guard:
            replies.append(reply)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout + 10)
    return replies


def log_rows(server: LiveServer, kind: str, n: int) -> int:
    """Count the live server's result-log rows for (kind, n), read from its SQLite file."""
    uri = f"file:{server.database}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM compute_computedresult WHERE kind = ? AND n = ?", (kind, n)
        ).fetchone()
    return count


def finished_by_pid(server: LiveServer, n: int) -> Counter:
    return Counter(pid for event, pid in server.computations("fib", n) if event == "end")


def test_a_cold_burst_over_all_workers_computes_once(live, redis_server, request):
    n = 15_001
    expected = fib_reference(n)
    replies = burst(live.port, f"/api/fib/{n}/", 32)

    assert len(replies) == 32
    assert [r.status for r in replies] == [200] * 32, [r.error for r in replies if r.status != 200]
    assert all(r.data["result"] == expected and r.data["n"] == n for r in replies)
    flags = Counter(r.data["cached"] for r in replies)
    assert flags == {False: 1, True: 31}
    computed = finished_by_pid(live, n)
    assert sum(computed.values()) == 1
    assert log_rows(live, "fib", n) == 1
    assert redis_server.client().exists(live.key(ResultQuery("fib", n).cache_key)) == 1

    # The burst really was spread over every worker, and the other workers'
    # first requests arrived while the computation ran and waited for it.
    served = live.accesses_of(replies)
    pids = {served[r.test_id].pid for r in replies}
    assert len(pids) == WORKERS
    (computing_pid,) = computed
    waited = [
        r
        for r in replies
        if served[r.test_id].pid != computing_pid and served[r.test_id].seconds >= SLOW_SECONDS / 2
    ]
    assert len(waited) >= WORKERS - 1
    assert all(r.data["cached"] for r in waited)

    record(request, "cold burst: concurrent requests", len(replies))
    record(request, "cold burst: worker processes serving it", len(pids))
    record(request, "cold burst: computations", sum(computed.values()))
    record(request, "cold burst: responses with cached=false", flags[False])


def test_a_worker_killed_mid_computation_blocks_the_key_no_longer_than_the_lock_timeout(
    live, redis_server, request
):
    n = 16_001
    path = f"/api/fib/{n}/"
    lock_key = lock_name(live.key, live.key(ResultQuery("fib", n).cache_key))
    redis = redis_server.client()
    victim: list = []
    holder = threading.Thread(target=lambda: victim.append(http_get(live.port, path, timeout=15)))
    holder.start()
    try:
        starts = wait_until(
            lambda: [pid for event, pid in live.computations("fib", n) if event == "start"], 5
        )
        assert len(starts) == 1, "the first computation did not start"
        remaining = redis.pttl(lock_key) / 1000
        assert 0 < remaining <= LOCK_TIMEOUT
        os.kill(starts[0], signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        holder.join(timeout=20)
    assert victim and victim[0].status == 0  # its request died with it
    # Wait until it has fully exited (see ``exited``).
    assert wait_until(lambda: exited(starts[0]), 5)

    reply = http_get(live.port, path, timeout=15)
    blocked = time.monotonic() - killed_at
    assert reply.status == 200
    assert reply.data == {"cached": False, "result": fib_reference(n), "n": n}
    # The dead holder's lock was honoured until it expired, and not longer.
    assert remaining - 0.3 <= blocked <= remaining + 1.0
    assert redis.exists(lock_key) == 0
    events = live.computations("fib", n)
    assert [e for e, _ in events] == ["start", "start", "end"]
    assert events[1][1] != starts[0]
    assert log_rows(live, "fib", n) == 1
    record(request, "killed lock holder: lock timeout", LOCK_TIMEOUT, "s")
    record(request, "killed lock holder: key blocked after the kill", round(blocked, 3), "s")
    # granian respawns the worker; later tests expect the full set again.
    assert wait_until(lambda: len(live.worker_pids()) == WORKERS, 15, interval=0.1)


def test_etag_is_the_same_cold_and_cached_and_if_none_match_gets_304(live, redis_server):
    n = 14_000
    path = f"/api/fib/{n}/"
    etag = f'W/"fib-{n}-v1"'
    cold = http_get(live.port, path)
    hot = http_get(live.port, path)
    assert (cold.status, hot.status) == (200, 200)
    assert (cold.data["cached"], hot.data["cached"]) == (False, True)
    assert cold.headers["etag"] == hot.headers["etag"] == etag
    assert "immutable" in hot.headers["cache-control"]
    assert "public" in hot.headers["cache-control"]

    again = http_get(live.port, path, headers={"If-None-Match": etag})
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag)

    # Compressed hit: the stored gzip body as it is, same ETag.
    zipped = http_get(live.port, path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == etag
    assert gzip.decompress(zipped.body) == hot.body

    # 304 is answered before any lookup: an uncomputed result stays uncomputed.
    fresh = n + 1
    unseen = http_get(
        live.port, f"/api/fib/{fresh}/", headers={"If-None-Match": f'W/"fib-{fresh}-v1"'}
    )
    assert unseen.status == 304
    assert live.computations("fib", fresh) == []
    assert redis_server.client().exists(live.key(ResultQuery("fib", fresh).cache_key)) == 0
    assert log_rows(live, "fib", fresh) == 0


def test_without_redis_each_process_computes_at_most_once(tmp_path_factory, request):
    """Threads of one process share its lock; processes meet again at the result log.

    4 blocking threads per worker so requests overlap inside a process:
    without the per-process fallback lock, every thread of a process that
    arrives during the computation would compute too.
    """
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = LiveServer(
        tmp_path_factory.mktemp("no-redis-web"),
        redis_url=down,
        workers=WORKERS,
        threads=4,
        env=LIVE_ENV,
    )
    try:
        server.start()
        n = 15_002
        replies = burst(server.port, f"/api/fib/{n}/", 24)
        assert [r.status for r in replies] == [200] * 24, [r.error for r in replies]
        assert all(r.data["result"] == fib_reference(n) for r in replies)

        computed = finished_by_pid(server, n)
        assert 1 <= sum(computed.values()) <= WORKERS
        assert max(computed.values()) == 1  # never twice in one process
        assert Counter(r.data["cached"] for r in replies)[False] == sum(computed.values())
        assert log_rows(server, "fib", n) == 1

        # The check could not pass by accident: in a computing process, some
        # other thread's request overlapped the computation and waited for it.
        served = server.accesses_of(replies)
        waited_in_process = [
            r
            for r in replies
            if r.data["cached"]
            and served[r.test_id].pid in computed
            and served[r.test_id].seconds >= SLOW_SECONDS / 2
        ]
        assert waited_in_process
        outage_lines = server.log_lines("Redis unreachable")
        assert 1 <= len(outage_lines) <= WORKERS  # once per process, not per request
        record(request, "Redis down, 24 concurrent requests: computations", sum(computed.values()))
        record(request, "Redis down: worker processes", WORKERS, "(4 threads each)")
        record(request, "Redis down: outage log lines", len(outage_lines))
    finally:
        server.stop()
