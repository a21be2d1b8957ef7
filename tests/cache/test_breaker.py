"""The breaker (``compute.cache.breaker``): open on outages, never on one key's bad value.

Its outage behaviour against paused and missing servers is in
``test_store.py``; here, what it does with an error Redis gives about a
key's value (``compute.cache.values.is_data_error``), taken from the run's
real Redis.
"""

from __future__ import annotations

import redis

from compute.cache import REDIS_ERRORS, result_cache
from compute.cache.breaker import Breaker
from compute.cache.values import is_data_error
from tests.support.caches import FakeClock
from tests.support.junk import malformed_count


def breaker(clock: FakeClock) -> Breaker:
    return Breaker(errors=REDIS_ERRORS, backoff=lambda: 2.0, clock=clock, data_error=is_data_error)


def test_a_data_error_returns_the_default_and_leaves_the_breaker_closed(redis_client):
    key = result_cache.make_key("breaker-test:counter")
    redis_client.set(key, b"x")
    heard: list[BaseException] = []
    tripped: list[BaseException] = []
    guard = breaker(FakeClock())
    guard.on_data_error(heard.append)
    guard.on_trip(tripped.append)
    assert guard.call(lambda: redis_client.incr(key), "default") == "default"
    assert guard.available and not tripped
    assert len(heard) == 1 and "not an integer" in str(heard[0])
    assert guard.call(lambda: redis_client.exists(key), None) == 1  # Redis still used


def test_an_outage_opens_it_as_before():
    clock = FakeClock()
    guard = breaker(clock)
    tripped: list[BaseException] = []
    guard.on_trip(tripped.append)
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise redis.ConnectionError("Connection refused")

    assert guard.call(refused, "default") == "default"
    assert not guard.available and len(tripped) == 1
    assert guard.call(refused, "default") == "default"
    assert calls == [1]  # not tried while open
    clock.advance(2.0)
    assert guard.available


def test_a_server_side_refusal_still_opens_it():
    """READONLY (a demoted master), OOM: about the server, not a key's value."""
    guard = breaker(FakeClock())

    def read_only() -> None:
        raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")

    guard.call(read_only, None)
    assert not guard.available


def test_the_caches_breaker_counts_a_stray_data_error_as_other(redis_client):
    """Every reader handles its keys' data errors; one that reached the breaker anyway
    (a reader that forgot) is counted, never an outage."""
    key = result_cache.make_key("breaker-test:stray")
    redis_client.rpush(key, "1")
    before = malformed_count("other")
    assert result_cache.breaker.call(lambda: redis_client.get(key), None) is None
    assert result_cache.available
    assert malformed_count("other") - before == 1
