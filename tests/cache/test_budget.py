"""The digit budget's ledger (``compute.cache.budget``) in the run's real Redis.

Each test builds a ledger on the run's Redis and key namespace with its own
clock (a fixed instant inside a window), so window ends are exact and
nothing sleeps. "Redis down" is a client for a port where nothing listens.
Junk under a budget key (written with the raw client) is reset by the charge.
"""

from __future__ import annotations

import dataclasses

import pytest
import redis

from compute.cache import REDIS_ERRORS, result_cache
from compute.cache.breaker import Breaker
from compute.cache.budget import BudgetLedger
from compute.cache.values import BUDGET, THROTTLE
from tests.support.junk import JUNK, junk_id, malformed_count, plant
from tests.support.servers import free_port

HOUR = 3600
T0 = HOUR * 500_000 + 600.0  # 600 s into an hour: 3000 s left of it


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock, client=None) -> BudgetLedger:
    return BudgetLedger(
        client=client or result_cache.redis,
        breaker=Breaker(errors=REDIS_ERRORS, backoff=lambda: 60.0),
        make_key=result_cache.make_key,
        malformed=result_cache.malformed,
        clock=clock,
    )


def test_charges_fit_until_the_limit_and_a_refused_charge_adds_nothing(redis_client):
    book = ledger(Clock(T0))
    first = book.charge("198.51.100.1", 600, limit=1000, window_seconds=HOUR)
    second = book.charge("198.51.100.1", 400, limit=1000, window_seconds=HOUR)
    refused = book.charge("198.51.100.1", 1, limit=1000, window_seconds=HOUR)
    assert (first.allowed, first.spent) == (True, 600)
    assert (second.allowed, second.spent) == (True, 1000)
    assert (refused.allowed, refused.spent) == (False, 1000)
    assert refused.retry_after == 3000.0
    key = result_cache.make_key(f"budget:198.51.100.1:{int(T0 // HOUR)}")
    assert refused.key == key
    assert int(redis_client.get(key)) == 1000
    assert 0 < redis_client.ttl(key) <= HOUR + 1  # it goes away with its window
    # Another client has a budget of its own.
    assert book.charge("198.51.100.2", 1000, limit=1000, window_seconds=HOUR).allowed


def test_the_first_charge_of_a_window_always_fits_and_the_next_window_starts_empty():
    clock = Clock(T0)
    book = ledger(clock)
    big = book.charge("c", 5000, limit=1000, window_seconds=HOUR)
    assert (big.allowed, big.spent) == (True, 5000)  # larger than the whole budget
    assert not book.charge("c", 1, limit=1000, window_seconds=HOUR).allowed
    clock.now = T0 + 3000.0  # the next hour
    again = book.charge("c", 10, limit=1000, window_seconds=HOUR)
    assert (again.allowed, again.spent) == (True, 10)


def test_a_refund_gives_the_digits_back(redis_client):
    book = ledger(Clock(T0))
    charge = book.charge("c", 700, limit=1000, window_seconds=HOUR)
    book.refund(charge, 700)
    assert int(redis_client.get(charge.key)) == 0
    assert book.charge("c", 1000, limit=1000, window_seconds=HOUR).allowed


def test_with_redis_down_the_budget_holds_in_this_process():
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.25)
    clock = Clock(T0)
    book = ledger(clock, client=lambda: dead)
    assert book.charge("c", 800, limit=1000, window_seconds=HOUR).allowed
    assert not book.breaker.available  # the charge really missed Redis
    refused = book.charge("c", 300, limit=1000, window_seconds=HOUR)
    assert (refused.allowed, refused.spent) == (False, 800)
    allowed = book.charge("c", 200, limit=1000, window_seconds=HOUR)
    book.refund(allowed, 200)
    assert book.charge("c", 200, limit=1000, window_seconds=HOUR).spent == 1000
    clock.now = T0 + 3000.0
    assert book.charge("c", 900, limit=1000, window_seconds=HOUR).spent == 900


# --- junk under a budget key -----------------------------------------------------------


@pytest.mark.parametrize("junk", JUNK, ids=junk_id)
def test_junk_under_a_budget_key_is_reset_and_the_charge_counts_from_nothing(redis_client, junk):
    """INCRBY on junk is refused by Redis; that refusal opened the breaker (the ledger
    then charged in-process). Now the script deletes the junk and charges afresh."""
    book = ledger(Clock(T0))
    key = result_cache.make_key(f"budget:198.51.100.7:{int(T0 // HOUR)}")
    plant(redis_client, key, junk)
    before = malformed_count("budget")
    charge = book.charge("198.51.100.7", 600, limit=1000, window_seconds=HOUR)
    assert (charge.allowed, charge.spent) == (True, 600)
    assert book.breaker.available  # the charge reached Redis: not the in-process fallback
    assert redis_client.get(key) == b"600"
    assert 0 < redis_client.ttl(key) <= HOUR + 1
    assert malformed_count("budget") - before == 1
    assert not book.charge("198.51.100.7", 401, limit=1000, window_seconds=HOUR).allowed
    assert malformed_count("budget") - before == 1  # a count from then on


@pytest.mark.parametrize("junk", [b"x", "list"], ids=junk_id)
def test_a_refund_meeting_junk_neither_fails_nor_opens_the_breaker(redis_client, junk):
    book = ledger(Clock(T0))
    charge = book.charge("c", 700, limit=1000, window_seconds=HOUR)
    plant(redis_client, charge.key, junk)
    book.refund(charge, 700)
    assert book.breaker.available
    assert redis_client.exists(charge.key) == 0  # nothing left to give back: the junk went


def test_junk_under_a_rate_key_is_reported_as_the_rates_on_charge_and_refund(redis_client):
    """The ledger makes the compute rate's counts too (``counter=THROTTLE``): junk met in
    a rate's key, by the charge or by the refund, is reported under the rate's name."""
    book = ledger(Clock(T0))
    request = book.request("198.51.100.8", 1, limit=5, window_seconds=HOUR)
    rate = dataclasses.replace(
        request, key=result_cache.make_key("throttle:t:c:1"), counter=THROTTLE
    )
    before = {name: malformed_count(name) for name in (BUDGET, THROTTLE)}
    plant(redis_client, rate.key, b"x")
    charge = book.charge_request(rate)
    assert (charge.allowed, charge.counter) == (True, THROTTLE)
    plant(redis_client, rate.key, b"x")
    book.refund(charge, 1)
    assert malformed_count(THROTTLE) - before[THROTTLE] == 2
    assert malformed_count(BUDGET) == before[BUDGET]


def test_a_refund_after_the_window_ended_leaves_no_key_behind(redis_client):
    book = ledger(Clock(T0))
    charge = book.charge("c", 700, limit=1000, window_seconds=HOUR)
    redis_client.delete(charge.key)  # expired with its window meanwhile
    book.refund(charge, 700)
    assert redis_client.exists(charge.key) == 0  # DECRBY would have left -700, forever


def test_a_well_formed_hostile_count_refuses_its_client_until_the_window_ends(redis_client):
    """The most a well-formed value can do (docs/operations.md, "No client can exhaust
    the service")."""
    clock = Clock(T0)
    book = ledger(clock)
    key = result_cache.make_key(f"budget:198.51.100.8:{int(T0 // HOUR)}")
    redis_client.set(key, b"1000")  # the limit, with no expiry
    refused = book.charge("198.51.100.8", 1, limit=1000, window_seconds=HOUR)
    assert (refused.allowed, refused.spent, refused.retry_after) == (False, 1000, 3000.0)
    assert book.charge("198.51.100.9", 1, limit=1000, window_seconds=HOUR).allowed  # others
    clock.now = T0 + 3000.0  # the next window is another key
    assert book.charge("198.51.100.8", 1, limit=1000, window_seconds=HOUR).allowed
