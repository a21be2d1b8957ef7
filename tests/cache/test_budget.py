"""The digit budget's ledger (``compute.cache.budget``) in the run's real Redis.

Each test builds a ledger on the run's Redis and key namespace with its own
clock (a fixed instant inside a window), so window ends are exact and
nothing sleeps. "Redis down" is a client for a port where nothing listens.
"""

from __future__ import annotations

import redis

from compute.cache import REDIS_ERRORS, result_cache
from compute.cache.breaker import Breaker
from compute.cache.budget import BudgetLedger
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
