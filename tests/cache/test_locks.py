"""The stampede lock (compute.cache.locks) against the test run's Redis.

The lock's time to live is short and renewed while its holder computes: a
long computation keeps it, a holder that stops renewing (a killed worker)
loses it within the time to live. A lock no holder would set (junk, another
type, no expiry, a longer one) is taken over at once, never waited for.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from prometheus_client import REGISTRY

from compute import services
from compute.cache import result_cache
from compute.cache.budget import ChargeRequest
from compute.cache.locks import new_token
from compute.cache.values import THROTTLE
from compute.domain.payload import MALFORMED, Payload
from compute.domain.query import ResultQuery
from tests.support.caches import counted_round_trips
from tests.support.callers import SETUP
from tests.support.junk import WRONG_TYPES, malformed_count, plant
from tests.support.reference import fib_reference
from tests.support.servers import wait_until


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("mathsite_cache_rejected_total", {"reason": reason}) or 0.0


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
    redis_client.set(key, new_token(), px=400)
    started = time.monotonic()
    with result_cache.compute_lock(query) as lease:
        waited = time.monotonic() - started
        assert lease.held
    assert waited <= 0.4 + 0.1


def test_a_waiter_gets_the_value_another_process_stores_without_taking_the_lock(
    settings, redis_client
):
    """The holder elsewhere: its lock set in Redis with its own token, its value stored there."""
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4244)
    key = result_cache.lock_key(query)
    redis_client.set(key, new_token(), px=2000)  # as its holder set it (COMPUTE_LOCK_TIMEOUT)
    leases: list = []
    waiter = threading.Thread(
        target=lambda: leases.append(
            (result_cache.compute_lock(query).__enter__(), time.monotonic())
        )
    )
    waiter.start()
    time.sleep(0.1)  # the waiter is polling Redis
    assert not leases
    stored_at = time.monotonic()
    assert result_cache.set(query, Payload.from_text(query, str(fib_reference(4244)))) is True
    result_cache.local.clear()  # the value reaches the waiter through Redis, not this tier
    redis_client.delete(key)
    waiter.join(timeout=5)
    ((waited, returned_at),) = leases
    assert waited.held is False  # it did not take the lock: it found the value
    assert waited.found is not None and waited.found.text == str(fib_reference(4244))
    assert returned_at - stored_at < 0.1
    assert redis_client.exists(key) == 0


def _enter_lock(query: ResultQuery, into: list, guard: threading.Lock) -> None:
    """Enter ``query``'s lock and keep (lease, context): the caller leaves it (a taken lock
    stays held until then; a dropped context would release it when collected)."""
    context = result_cache.compute_lock(query)
    lease = context.__enter__()
    with guard:
        into.append((lease, context))


def test_threads_of_one_process_wait_for_its_holder_without_going_to_redis(settings, redis_client):
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4248)
    value = str(fib_reference(4248))
    leases: list = []
    guard = threading.Lock()
    with result_cache.compute_lock(query) as lease:
        assert lease.held
        with counted_round_trips() as sent:
            waiters = [
                threading.Thread(target=_enter_lock, args=(query, leases, guard)) for _ in range(6)
            ]
            for waiter in waiters:
                waiter.start()
            time.sleep(0.2)  # polling every 2 ms, six threads would have made ~600 round trips
            assert sent == [0] and leases == []
            stored_at = time.monotonic()
            assert result_cache.set(query, Payload.from_text(query, value), lease=lease) is True
            for waiter in waiters:
                waiter.join(timeout=5)
            woken = time.monotonic() - stored_at
        assert sent == [1]  # the holder's store and release; the six waiters none
    assert len(leases) == 6
    assert all(not w.held and w.found is not None and w.found.text == value for w, _ in leases)
    assert woken < 0.1
    assert redis_client.exists(result_cache.lock_key(query)) == 0


def test_when_the_holder_fails_one_waiting_thread_computes_and_the_rest_take_its_value(
    settings, redis_client
):
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4249)
    value = str(fib_reference(4249))
    leases: list = []
    guard = threading.Lock()
    waiters = [threading.Thread(target=_enter_lock, args=(query, leases, guard)) for _ in range(4)]
    with pytest.raises(ZeroDivisionError), result_cache.compute_lock(query) as lease:
        assert lease.held
        for waiter in waiters:
            waiter.start()
        time.sleep(0.1)
        raise ZeroDivisionError  # the computation failed: nothing stored
    assert wait_until(lambda: len(leases) >= 1, 5)
    time.sleep(0.1)  # the others wait for the new holder
    ((successor, context),) = leases
    assert successor.held and successor.found is None
    assert result_cache.set(query, Payload.from_text(query, value), lease=successor) is True
    for waiter in waiters:
        waiter.join(timeout=5)
    context.__exit__(None, None, None)
    assert len(leases) == 4
    assert [w.found.text for w, _ in leases[1:]] == [value] * 3
    assert not any(w.held for w, _ in leases[1:])
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


def test_a_lock_due_sooner_than_the_renewal_thread_wakes_is_renewed_in_time(settings, redis_client):
    """The renewal thread is woken only for a lock due before its next wake-up: one taken
    with a shorter time to live while it sleeps for a longer one must still be renewed."""
    settings.COMPUTE_LOCK_TIMEOUT = 3  # renewed every second
    slow, quick = ResultQuery("fib", 4253), ResultQuery("fib", 4254)
    with result_cache.compute_lock(slow) as first:
        assert first.held
        time.sleep(0.05)  # the thread now sleeps until the first renewal, a second away
        settings.COMPUTE_LOCK_TIMEOUT = 0.3  # renewed every 0.1 s
        with result_cache.compute_lock(quick) as second:
            assert second.held
            for _ in range(4):  # 0.8 s: more than twice the quick one's time to live
                time.sleep(0.2)
                assert 0 < redis_client.pttl(result_cache.lock_key(quick)) <= 300
    assert not redis_client.exists(result_cache.lock_key(quick))


@pytest.mark.django_db
def test_a_cold_computation_makes_two_round_trips_to_redis():
    """Take the lock reading the entry (the in-process tier was looked at first), then
    store and release; nothing else (no gate or throttle here: those are the view's)."""
    services.result_get(
        caller=SETUP, query=ResultQuery("fib", 4260)
    )  # a first one may sync the tier
    with counted_round_trips() as sent:
        outcome = services.result_get(caller=SETUP, query=ResultQuery("fib", 4261))
    assert outcome.cached is False and outcome.payload.text == str(fib_reference(4261))
    assert sent == [2]


# --- junk under a lock's name ------------------------------------------------------------

TOKEN = new_token()
UNSOUND = [
    ("junk, no expiry", b"x", None),
    ("junk with a holder's expiry", b"x", 1000),
    ("a token with no expiry", TOKEN, None),
    ("a token expiring later than any holder's", TOKEN, 60_000),
    ("a token in capitals", TOKEN.upper(), 1000),
    *[(f"a {kind}", kind, None) for kind in WRONG_TYPES],
]


def charge_of(cost: int = 100, limit: int = 1_000) -> ChargeRequest:
    """A client's budget charge, for the lock's attempt to make."""
    return result_cache.budget.request(CLIENT, cost, limit=limit, window_seconds=3600)


CLIENT = "203.0.113.41"


@pytest.mark.parametrize("charging", [False, True], ids=["plain", "charging"])
@pytest.mark.parametrize(("what", "value", "px"), UNSOUND, ids=[u[0] for u in UNSOUND])
def test_an_unsound_lock_is_taken_over_at_once(settings, redis_client, what, value, px, charging):
    """Junk, another type or a lock no holder would set (one that would outlive
    COMPUTE_LOCK_TIMEOUT): each used to hold the value back until COMPUTE_LOCK_WAIT.
    The charging attempt (one script) judges it as the plain one does."""
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4270)
    key = result_cache.lock_key(query)
    plant(redis_client, key, value)
    if px is not None:
        redis_client.pexpire(key, px)
    before = malformed_count("lock")
    started = time.monotonic()
    charges = [charge_of()] if charging else []
    with result_cache.compute_lock(query, charges=charges) as lease:
        waited = time.monotonic() - started
        assert lease.held and lease.found is None
        assert (lease.charges is not None) is charging
        assert redis_client.type(key) == b"string" and 0 < redis_client.pttl(key) <= 2000
    assert waited < 0.1
    assert malformed_count("lock") - before == 1
    assert result_cache.available
    assert redis_client.exists(key) == 0  # released: it was ours


def test_a_sound_lock_is_waited_for_not_taken_over(settings, redis_client):
    """What a holder elsewhere writes: a token and at most COMPUTE_LOCK_TIMEOUT to live."""
    settings.COMPUTE_LOCK_WAIT = 0.2
    query = ResultQuery("fib", 4273)
    key = result_cache.lock_key(query)
    redis_client.set(key, TOKEN, px=2000)
    before = malformed_count("lock")
    with result_cache.compute_lock(query) as lease:
        assert lease.held is False  # waited out COMPUTE_LOCK_WAIT: the holder's lock stands
    assert redis_client.get(key) == TOKEN
    assert malformed_count("lock") == before


@pytest.mark.parametrize("charging", [False, True], ids=["plain", "charging"])
@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_a_watched_entry_of_another_type_reads_as_missing(redis_client, junk, charging):
    query = ResultQuery("fib", 4271)
    plant(redis_client, result_cache.make_key(query.cache_key), junk)
    before = rejected(MALFORMED)
    value = str(fib_reference(4271))
    charges = [charge_of()] if charging else []
    with result_cache.compute_lock(query, charges=charges) as lease:
        assert lease.held and lease.found is None
        assert result_cache.set(query, Payload.from_text(query, value), lease=lease) is True
    assert rejected(MALFORMED) - before == 1
    assert result_cache.available
    result_cache.local.clear()
    assert result_cache.get_shared(query).text == value  # the store overwrote the junk


def test_a_lock_replaced_by_another_type_while_held_is_left_alone_without_an_error(
    settings, redis_client
):
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4272)
    key = result_cache.lock_key(query)
    value = str(fib_reference(4272))
    with result_cache.compute_lock(query) as lease:
        plant(redis_client, key, "hash")
        assert result_cache.set(query, Payload.from_text(query, value), lease=lease) is True
    assert result_cache.available  # the release's script checked the type first
    assert redis_client.type(key) == b"hash"  # not ours: not deleted
    result_cache.local.clear()
    started = time.monotonic()
    with result_cache.compute_lock(query) as again:  # the value is there: nothing to take
        assert again.held is False and again.found.text == value and not again.waited
    assert time.monotonic() - started < 0.1
    redis_client.delete(result_cache.make_key(query.cache_key))  # evicted: a taker needs it
    started = time.monotonic()
    with result_cache.compute_lock(query) as taker:  # and takes the junk over at once
        assert taker.held is True and taker.found is None
    assert time.monotonic() - started < 0.1
    assert redis_client.exists(key) == 0


@pytest.mark.django_db(transaction=True)
def test_a_request_that_waited_for_another_computation_says_it_collapsed(settings):
    """The service's outcome says where the value came from: here, the lock's holder."""
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4262)
    value = str(fib_reference(4262))
    outcomes: list[services.Outcome] = []

    def never_compute(q: ResultQuery) -> str:
        raise AssertionError("the waiter must take the holder's value")

    waiter = threading.Thread(
        target=lambda: outcomes.append(
            services.result_get(caller=SETUP, query=query, compute=never_compute)
        )
    )
    with result_cache.compute_lock(query) as lease:
        assert lease.held
        waiter.start()
        time.sleep(0.2)  # it looked in the cache and the log, and waits for the lock
        assert outcomes == []
        assert result_cache.set(query, Payload.from_text(query, value), lease=lease) is True
    waiter.join(timeout=5)
    ((outcome,),) = [outcomes]
    assert outcome.source is services.Source.COLLAPSED
    assert outcome.cached is True and outcome.payload.text == value


# --- the charging attempt: the lock, the compute rate and the budget in one round trip ---


def rate_of(limit: int = 3) -> ChargeRequest:
    """A client's compute-rate count (one request), as the throttle asks for it."""
    key = result_cache.make_key(f"throttle:compute:{CLIENT}:1")
    return ChargeRequest(key, 1, limit, 61, 1, 30.0, counter=THROTTLE)


def test_the_attempt_that_takes_the_lock_makes_the_charges_in_its_round_trip(redis_client):
    query = ResultQuery("fib", 4280)
    rate, budget = rate_of(), charge_of(cost=120)
    with (
        counted_round_trips() as sent,
        result_cache.compute_lock(query, charges=[rate, budget]) as lease,
    ):
        assert sent == [1]  # the entry read, the lock, the rate and the budget: one script
        assert lease.held and lease.found is None
        assert lease.charges is not None
        assert [(c.allowed, c.spent) for c in lease.charges] == [(True, 1), (True, 120)]
        assert redis_client.get(rate.key) == b"1" and 0 < redis_client.ttl(rate.key) <= 61
        assert redis_client.get(budget.key) == b"120"
        assert 0 < redis_client.ttl(budget.key) <= 3601
        assert redis_client.exists(result_cache.lock_key(query)) == 1


def test_a_charge_that_does_not_fit_gives_the_lock_back_and_charges_nothing(redis_client):
    query = ResultQuery("fib", 4281)
    rate, budget = rate_of(), charge_of(cost=100, limit=1_000)
    redis_client.set(budget.key, 950, ex=3600)
    with result_cache.compute_lock(query, charges=[rate, budget]) as lease:
        assert not lease.held and lease.found is None
        assert lease.charges is not None
        assert [(c.allowed, c.spent) for c in lease.charges] == [(True, 1), (False, 950)]
        assert redis_client.exists(result_cache.lock_key(query)) == 0  # given back at once
    assert redis_client.get(budget.key) == b"950"
    assert redis_client.get(rate.key) == b"1"  # counted before the budget, as the throttle was


def test_a_full_rate_window_stops_before_the_budget(redis_client):
    query = ResultQuery("fib", 4286)
    rate, budget = rate_of(limit=3), charge_of()
    redis_client.set(rate.key, 3, ex=60)
    with result_cache.compute_lock(query, charges=[rate, budget]) as lease:
        assert not lease.held
        assert lease.charges is not None
        assert [(c.allowed, c.spent) for c in lease.charges] == [(False, 3)]
    assert redis_client.get(rate.key) == b"3"
    assert redis_client.exists(budget.key) == 0
    assert redis_client.exists(result_cache.lock_key(query)) == 0


def test_the_first_charge_of_a_window_fits_whatever_the_limit(redis_client):
    """As the ledger's own script: a limit below one result must not make it unreachable."""
    charge = charge_of(cost=5_000, limit=1_000)
    with result_cache.compute_lock(ResultQuery("fib", 4282), charges=[charge]) as lease:
        assert lease.held and lease.charges is not None and lease.charges[0].allowed
    assert redis_client.get(charge.key) == b"5000"


def test_a_request_that_finds_the_value_is_not_charged(redis_client):
    query = ResultQuery("fib", 4283)
    value = str(fib_reference(4283))
    assert result_cache.set(query, Payload.from_text(query, value)) is True
    result_cache.local.clear()
    rate, budget = rate_of(), charge_of()
    with result_cache.compute_lock(query, charges=[rate, budget]) as lease:
        assert not lease.held and lease.found is not None and lease.found.text == value
        assert lease.charges is None
    assert redis_client.exists(rate.key) == 0 and redis_client.exists(budget.key) == 0


def test_a_waiter_is_charged_only_when_it_takes_the_lock_over(settings, redis_client):
    """A holder elsewhere that dies: its waiter computes, and only then is charged."""
    settings.COMPUTE_LOCK_WAIT = 5
    query = ResultQuery("fib", 4284)
    key = result_cache.lock_key(query)
    redis_client.set(key, new_token(), px=300)  # a killed holder's lock, expiring
    rate, budget = rate_of(), charge_of(cost=70)
    with result_cache.compute_lock(query, charges=[rate, budget]) as lease:
        assert lease.held and lease.charges is not None
    assert redis_client.get(rate.key) == b"1"  # once, however often it polled
    assert redis_client.get(budget.key) == b"70"


@pytest.mark.parametrize("junk", [b"x", "hash"])
def test_junk_under_a_counter_is_reset_by_the_charging_attempt(redis_client, junk):
    rate, budget = rate_of(), charge_of(cost=30)
    plant(redis_client, rate.key, junk)
    plant(redis_client, budget.key, junk)
    before = malformed_count("throttle"), malformed_count("budget")
    with result_cache.compute_lock(ResultQuery("fib", 4285), charges=[rate, budget]) as lease:
        assert lease.held and lease.charges is not None
        assert [c.spent for c in lease.charges] == [1, 30]
    assert redis_client.get(rate.key) == b"1" and redis_client.get(budget.key) == b"30"
    assert malformed_count("throttle") - before[0] == 1
    assert malformed_count("budget") - before[1] == 1
    assert result_cache.available
