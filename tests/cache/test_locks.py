"""The stampede lock (compute.cache.locks) against the test run's Redis.

The lock's time to live is short and renewed while its holder computes: a
long computation keeps it, a holder that stops renewing (a killed worker)
loses it within the time to live.
"""

from __future__ import annotations

import threading
import time

from compute.cache import result_cache
from compute.domain.query import ResultQuery


def test_a_computation_longer_than_the_ttl_keeps_its_lock(settings, redis_client):
    settings.COMPUTE_LOCK_TIMEOUT = 0.3
    settings.COMPUTE_LOCK_WAIT = 0.2
    query = ResultQuery("fib", 4242)
    key = result_cache.make_key(f"lock:{query.cache_key}")
    outsider: list[bool] = []
    with result_cache.compute_lock(query) as held:
        assert held
        for _ in range(5):  # 1 s: more than three times the time to live
            time.sleep(0.2)
            assert 0 < redis_client.pttl(key) <= 300
        thread = threading.Thread(
            target=lambda: outsider.append(result_cache.compute_lock(query).__enter__())
        )
        thread.start()
        thread.join()
    assert outsider == [False]  # a waiter could not take a live holder's lock
    assert redis_client.exists(key) == 0  # released at the end


def test_a_holder_that_stops_renewing_loses_the_lock_within_the_ttl(settings, redis_client):
    settings.COMPUTE_LOCK_TIMEOUT = 0.4
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4243)
    key = result_cache.make_key(f"lock:{query.cache_key}")
    # A dead holder: the lock as a killed process leaves it, nobody renewing it.
    redis_client.set(key, b"dead-holder-token", px=400)
    started = time.monotonic()
    with result_cache.compute_lock(query) as held:
        waited = time.monotonic() - started
        assert held
    assert waited <= 0.4 + 0.1
