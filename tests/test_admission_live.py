"""Admission of computations on a real granian worker: caps, the stampede, hits flowing.

One granian worker (4 blocking threads, the default) and a Redis of its
own; fib(n) for 20000 <= n <= 20999 is made slow (2 s) by the probe of
``tests.support.live_wsgi``, so computations overlap for certain. Clients
are told apart by ``X-Forwarded-For`` behind one trusted proxy
(``NUM_PROXIES=1``). Shown here, with the production defaults for the caps
(2 computations per process, 1 per client, a queue of 1):

- identical concurrent requests of one client compute once and are charged
  once (the waiters get the result: cached, never refused);
- a client's second computation is refused at once (429, Retry-After: 1)
  while another client's runs beside its first; with both slots taken one
  more request waits ``COMPUTE_QUEUE_WAIT`` and the next is refused at once
  (503); nothing refused leaves a log row or a cache entry;
- cached hits are answered in milliseconds all the while (a thread is
  always free for them);
- a large computation runs in a computation process of the worker.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from compute.domain.kinds.fib import digit_count as fib_digits
from compute.domain.query import ResultQuery
from tests.support.figures import record
from tests.support.reference import fib_reference, unlimited_int_digits
from tests.support.servers import LiveServer, RedisServer, http_get, spawned_children, wait_until

pytestmark = pytest.mark.slow

SLOW_SECONDS = 2.0
QUEUE_WAIT = 0.5
HIT = "/api/fib/90/"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("admission-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, redis_server):
    server = LiveServer(
        tmp_path_factory.mktemp("admission-web"),
        redis_url=redis_server.url(),
        workers=1,
        env={
            "MATHSITE_TEST_SLOW": f"20000-20999:{SLOW_SECONDS}",
            "NUM_PROXIES": "1",
            "COMPUTE_QUEUE_WAIT": str(QUEUE_WAIT),
        },
    )
    try:
        yield server.start()
    finally:
        server.stop()


def as_client(live: LiveServer, path: str, client: str):
    return http_get(live.port, path, headers={"X-Forwarded-For": client}, timeout=20)


def in_background(live: LiveServer, path: str, client: str) -> tuple[threading.Thread, list]:
    replies: list = []
    thread = threading.Thread(target=lambda: replies.append(as_client(live, path, client)))
    thread.start()
    return thread, replies


def started(live: LiveServer, n: int) -> bool:
    return any(event == "start" for event, _ in live.computations("fib", n))


def log_rows(server: LiveServer, n: int) -> int:
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True, timeout=10) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM compute_computedresult WHERE kind = 'fib' AND n = ?", (n,)
        ).fetchone()
    return count


def charged(redis_server: RedisServer, live: LiveServer, client: str) -> int:
    redis = redis_server.client()
    return sum(int(redis.get(key)) for key in redis.scan_iter(live.key(f"budget:{client}:*")))


def test_identical_requests_of_one_client_compute_once_and_are_charged_once(live, redis_server):
    n = 20_001
    threads = [in_background(live, f"/api/fib/{n}/", "198.51.100.1") for _ in range(5)]
    for thread, _ in threads:
        thread.join(30)
    replies = [replies[0] for _, replies in threads]
    assert [r.status for r in replies] == [200] * 5
    assert sorted(r.data["cached"] for r in replies) == [False, True, True, True, True]
    assert all(r.data["result"] == fib_reference(n) for r in replies)
    assert [e for e, _ in live.computations("fib", n)] == ["start", "end"]
    assert charged(redis_server, live, "198.51.100.1") == fib_digits(n)


def test_caps_refuse_what_would_queue_and_hits_keep_flowing(live, redis_server, request):
    for _ in range(3):  # a warm hit, answered by the front once it has learned
        assert live.get(HIT).status == 200
    first, first_reply = in_background(live, "/api/fib/20002/", "198.51.100.2")
    assert wait_until(lambda: started(live, 20002), 10)

    own_second = as_client(live, "/api/fib/20003/", "198.51.100.2")
    assert own_second.status == 429 and own_second.headers["retry-after"] == "1"
    assert own_second.elapsed < SLOW_SECONDS / 2  # refused at once, not queued
    assert "COMPUTE_CONCURRENCY_PER_CLIENT" in own_second.data["detail"]

    other, other_reply = in_background(live, "/api/fib/20004/", "198.51.100.3")
    assert wait_until(lambda: started(live, 20004), 10)  # the second slot: another client

    busy = [
        in_background(live, f"/api/fib/{n}/", f"198.51.100.{n - 19_995}") for n in (20005, 20006)
    ]
    hits = [live.get(HIT) for _ in range(20)]  # while both slots compute and one waits
    for thread, _ in busy:
        thread.join(30)
    refused = sorted((replies[0] for _, replies in busy), key=lambda r: r.elapsed)
    assert [r.status for r in refused] == [503, 503]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert refused[0].elapsed < QUEUE_WAIT  # the queue was full: at once
    assert QUEUE_WAIT <= refused[1].elapsed < SLOW_SECONDS  # waited its turn, then gave up

    assert all(h.status == 200 and h.data["cached"] is True for h in hits)
    worst = max(h.elapsed for h in hits)
    assert worst < 0.5, worst

    first.join(30)
    other.join(30)
    assert first_reply[0].status == 200 and first_reply[0].data["result"] == fib_reference(20002)
    assert other_reply[0].status == 200 and other_reply[0].data["result"] == fib_reference(20004)
    redis = redis_server.client()
    for n, computed in ((20002, 1), (20003, 0), (20004, 1), (20005, 0), (20006, 0)):
        assert log_rows(live, n) == computed, n
        assert redis.exists(live.key(ResultQuery("fib", n).cache_key)) == computed, n
        assert started(live, n) == bool(computed), n
    # A refused computation was not charged (the queue's refusal refunds).
    assert charged(redis_server, live, "198.51.100.10") == 0
    assert charged(redis_server, live, "198.51.100.11") == 0
    metrics = live.get("/metrics").body.decode()
    assert 'mathsite_compute_refusals_total{kind="fib",reason="client_busy"} 1.0' in metrics
    assert 'mathsite_compute_refusals_total{kind="fib",reason="busy"} 2.0' in metrics
    record(
        request, "admission: cached-hit max while both slots compute", round(worst * 1000, 1), "ms"
    )


def test_a_large_computation_runs_in_a_computation_process_of_the_worker(live):
    n = 300_000  # 62,696 digits: above COMPUTE_OFFLOAD_DIGITS (50,000)
    (worker,) = live.worker_pids()
    # The worker started its computation processes as it started, one per slot
    # (COMPUTE_CONCURRENCY, 2), so the first large request does not spawn one.
    started = wait_until(
        lambda: sorted(spawned_children(worker)) if len(spawned_children(worker)) == 2 else None, 30
    )
    reply = as_client(live, f"/api/fib/{n}/?format=string", "198.51.100.20")
    assert reply.status == 200 and reply.data["cached"] is False
    with unlimited_int_digits():
        assert reply.data["result"] == str(fib_reference(n))
    # The probe wraps the maths in the worker only: a computation made there
    # would have logged its start. It ran in a spawned child of the worker.
    assert live.computations("fib", n) == []
    assert sorted(spawned_children(worker)) == started  # no other was spawned for it
    assert live.worker_pids() == {worker}  # computation processes are not workers
