"""The stampede lock (compute.cache.locks) against the test run's Redis.

The lock's time to live is short and renewed while its holder computes: a
long computation keeps it, a holder that stops renewing (a killed worker)
loses it within the time to live.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from redis.connection import AbstractConnection

from compute import services
from compute.cache import result_cache
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.reference import fib_reference


def test_a_computation_longer_than_the_ttl_keeps_its_lock(settings, redis_client):
    settings.COMPUTE_LOCK_TIMEOUT = 0.3
    settings.COMPUTE_LOCK_WAIT = 0.2
    query = ResultQuery("fib", 4242)
    key = result_cache.lock_key(query)
    outsider: list[bool] = []
    with result_cache.compute_lock(query) as lease:
        assert lease.held
        for _ in range(5):  # 1 s: more than three times the time to live
            time.sleep(0.2)
            assert 0 < redis_client.pttl(key) <= 300
        thread = threading.Thread(
            target=lambda: outsider.append(result_cache.compute_lock(query).__enter__().held)
        )
        thread.start()
        thread.join()
    assert outsider == [False]  # a waiter could not take a live holder's lock
    assert redis_client.exists(key) == 0  # released at the end


def test_a_holder_that_stops_renewing_loses_the_lock_within_the_ttl(settings, redis_client):
    settings.COMPUTE_LOCK_TIMEOUT = 0.4
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4243)
    key = result_cache.lock_key(query)
    # A dead holder: the lock as a killed process leaves it, nobody renewing it.
    redis_client.set(key, b"dead-holder-token", px=400)
    started = time.monotonic()
    with result_cache.compute_lock(query) as lease:
        waited = time.monotonic() - started
        assert lease.held
    assert waited <= 0.4 + 0.1


@contextlib.contextmanager
def counted_round_trips() -> Iterator[list[int]]:
    """Count the round trips this process makes to Redis meanwhile (one per command or pipeline).

    A spy on redis-py's real connection: every request, single command or
    pipeline, is sent by one call of ``send_packed_command``.
    """
    sent = [0]
    real = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent[0] += 1
        return real(self, command, check_health)

    AbstractConnection.send_packed_command = counting
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = real


def test_a_waiter_gets_the_value_the_holder_stores_without_taking_the_lock(settings, redis_client):
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4244)
    leases: list = []
    with result_cache.compute_lock(query) as lease:
        assert lease.held and lease.found is None
        waiter = threading.Thread(
            target=lambda: leases.append(
                (result_cache.compute_lock(query).__enter__(), time.monotonic())
            )
        )
        waiter.start()
        time.sleep(0.1)  # the waiter is polling
        assert not leases
        stored_at = time.monotonic()
        assert (
            result_cache.set(query, Payload.from_text(query, str(fib_reference(4244))), lease=lease)
            is True
        )
    waiter.join(timeout=5)
    ((waited, returned_at),) = leases
    assert waited.held is False  # it did not take the lock: it found the value
    assert waited.found is not None and waited.found.text == str(fib_reference(4244))
    assert returned_at - stored_at < 0.1
    assert redis_client.exists(result_cache.lock_key(query)) == 0


def test_storing_with_the_lease_releases_the_lock_in_the_same_round_trip(redis_client):
    query = ResultQuery("fib", 4245)
    with result_cache.compute_lock(query) as lease:
        assert redis_client.exists(result_cache.lock_key(query)) == 1
        with counted_round_trips() as sent:
            assert (
                result_cache.set(
                    query, Payload.from_text(query, str(fib_reference(4245))), lease=lease
                )
                is True
            )
        assert sent == [1]
        assert redis_client.exists(result_cache.lock_key(query)) == 0  # released already
        with counted_round_trips() as after:
            pass
    assert after == [0]
    assert result_cache.get_shared(query).text == str(fib_reference(4245))


def test_taking_the_lock_reads_the_entry_in_the_same_round_trip(redis_client):
    query = ResultQuery("fib", 4246)
    with counted_round_trips() as sent, result_cache.compute_lock(query) as lease:
        assert lease.held and lease.found is None
        assert sent == [1]  # SET NX and GET of the entry together
    assert sent == [2]  # and the release
    result_cache.set(query, Payload.from_text(query, str(fib_reference(4246))))
    result_cache.local.clear()
    with result_cache.compute_lock(query) as lease:
        assert lease.held is False and lease.found.text == str(
            fib_reference(4246)
        )  # nothing to compute
        assert redis_client.exists(result_cache.lock_key(query)) == 0  # given back at once


def test_a_forged_entry_seen_while_taking_the_lock_is_not_served(redis_client):
    query = ResultQuery("fib", 4247)
    key = result_cache.make_key(query.cache_key)
    redis_client.set(key, b"r6766" + bytes(16))  # no valid MAC
    with result_cache.compute_lock(query) as lease:
        assert lease.held is True and lease.found is None  # compute it, under the lock
        assert redis_client.exists(key) == 0  # and the forged entry is gone


def test_one_thread_renews_every_lock_the_process_holds(settings, redis_client):
    settings.COMPUTE_LOCK_TIMEOUT = 0.3
    queries = [ResultQuery("fib", 4250 + i) for i in range(3)]
    with contextlib.ExitStack() as stack:
        leases = [stack.enter_context(result_cache.compute_lock(q)) for q in queries]
        assert all(lease.held for lease in leases)
        for _ in range(4):  # 0.8 s: more than twice the time to live
            time.sleep(0.2)
            for query in queries:
                assert 0 < redis_client.pttl(result_cache.lock_key(query)) <= 300
        renewing = [t for t in threading.enumerate() if t.name == "lock-renewal"]
        assert len(renewing) == 1
    assert not any(redis_client.exists(result_cache.lock_key(q)) for q in queries)


@pytest.mark.django_db
def test_a_cold_computation_makes_three_round_trips_to_redis():
    """Look up (miss), take the lock reading the entry, store and release; nothing else
    (no gate or throttle here: those are the view's)."""
    services.result_get(query=ResultQuery("fib", 4260))  # a first one may sync the tier
    with counted_round_trips() as sent:
        outcome = services.result_get(query=ResultQuery("fib", 4261))
    assert outcome.cached is False and outcome.payload.text == str(fib_reference(4261))
    assert sent == [3]
