"""ResultCache against a real Redis: what is stored, whose keys go, and what happens on faults.

Mirrors ``compute/cache/`` (the store and its pieces: ``local``, ``breaker``,
``invalidation``, ``locks``, ``stats``, ``serializer``). The Redis is the test run's own (see
``tests/settings.py``); a paused or missing Redis is a dedicated server or
socket of the test's. Time is stepped with a fake clock, never slept, except
for the real socket timeouts the breaker exists to bound.
"""

from __future__ import annotations

import decimal
import gc
import gzip
import logging
import pickle
import threading
import time
import tracemalloc

import pytest
from django.core.cache import caches
from django.db import connection, transaction
from django.test import override_settings

from compute import services
from compute.cache import MISSING, ResultCache, result_cache
from compute.cache.local import ENTRY_BYTES, LocalTier
from compute.cache.serializer import TaggedSerializer
from compute.conf import app_settings
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery, parse_query
from compute.models import ComputedResult
from tests.support.caches import FakeClock, PointedCache, backend_at
from tests.support.callers import SETUP
from tests.support.entries import unsigned
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import RedisServer

pytestmark = pytest.mark.django_db

OUTAGE = "Redis unreachable"
RECOVERY = "Redis is reachable again"

# Set by ``_Exploit`` if anything ever unpickles a planted value.
UNPICKLED: list[str] = []


def _mark_unpickled(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class _Exploit:
    """Unpickling this calls ``_mark_unpickled``: a harmless stand-in for code execution."""

    def __reduce__(self):
        return (_mark_unpickled, ("pwned",))


def fib_query(n: int) -> ResultQuery:
    return ResultQuery("fib", n)


def never_compute(query: ResultQuery) -> str:
    raise AssertionError(f"{query} was recomputed")


# --- what is stored ---------------------------------------------------------------------


def stored(redis_client, query: ResultQuery) -> bytes:
    """Return the data of ``query``'s entry, checking its MAC is the documented one."""
    key = result_cache.make_key(query.cache_key)
    return unsigned(key, redis_client.get(key))


def test_small_results_are_stored_as_tagged_literals_and_signed(redis_client):
    services.result_get(caller=SETUP, query=fib_query(90))
    services.result_get(caller=SETUP, query=ResultQuery("pi", 1))
    services.result_get(caller=SETUP, query=ResultQuery("pi", 100, digits=5))
    assert stored(redis_client, fib_query(90)) == b"r" + str(fib_reference(90)).encode()
    assert stored(redis_client, ResultQuery("pi", 1)) == b"r0.0"
    assert stored(redis_client, ResultQuery("pi", 100, digits=5)) == b'r"3.1320"'
    # The documented key: <prefix>:<version>:<kind>:<n>[:d<digits>]:fmt2
    prefix = result_cache.namespace  # "<prefix>:1:"
    assert prefix.endswith(":1:")
    assert redis_client.exists(f"{prefix}fib:90:fmt2", f"{prefix}pi:100:d5:fmt2") == 2


def test_large_results_are_stored_as_the_gzip_of_the_cached_body(redis_client):
    n = 20_000  # 4,180 digits: above the 4 kB threshold for compressed storage
    services.result_get(caller=SETUP, query=fib_query(n))
    raw = stored(redis_client, fib_query(n))
    assert raw[:1] == b"z"
    assert raw[1:3] == b"\x1f\x8b"  # gzip magic
    body = gzip.decompress(raw[1:])
    assert body == b'{"cached":true,"result":%s,"n":%d}' % (str(fib_reference(n)).encode(), n)


def test_no_stored_value_is_a_pickle(redis_client):
    for n in (0, 1, 93, 5_000, 30_000):
        services.result_get(caller=SETUP, query=fib_query(n))
    services.result_get(caller=SETUP, query=ResultQuery("pi", 10**6, digits=100))
    result_cache.delete(fib_query(0))  # writes the generation counter too
    keys = list(redis_client.scan_iter(match=result_cache.namespace + "*"))
    assert len(keys) >= 6
    for key in keys:
        if key.endswith(b"{meta}:stats"):  # a hash of integer counters (flushed once a second)
            assert all(v.isdigit() for v in redis_client.hgetall(key).values())
            continue
        raw = redis_client.get(key)
        if key.endswith(b"{meta}:generation"):
            assert raw.isdigit()
        else:
            assert raw[:1] in (b"r", b"z"), (key, raw[:20])
            with pytest.raises(pickle.UnpicklingError):
                pickle.loads(raw)


def test_a_planted_pickle_is_discarded_not_unpickled(redis_client, caplog):
    planted = pickle.dumps(_Exploit())
    UNPICKLED.clear()
    key = result_cache.make_key(fib_query(12).cache_key)
    redis_client.set(key, planted)
    assert result_cache.get_shared(fib_query(12)) is MISSING
    assert redis_client.exists(key) == 0  # discarded
    assert "Discarding cache entry fib:12:fmt2 (bad_mac" in caplog.text
    # The framework's own cache API (serializer for anything else) refuses it too.
    backend = caches["default"]
    redis_client.set(backend.make_key("planted"), planted)
    with pytest.raises(ValueError, match="TaggedSerializer"):
        backend.get("planted")
    assert UNPICKLED == []
    redis_client.delete(backend.make_key("planted"))


def test_the_framework_serializer_writes_tagged_bytes_and_json(redis_client):
    backend = caches["default"]
    backend.set("blob", b"\x00\x01")
    backend.set("doc", {"a": [1, 2]})
    assert redis_client.get(backend.make_key("blob")) == b"b\x00\x01"
    assert redis_client.get(backend.make_key("doc")) == b'j{"a":[1,2]}'
    assert backend.get("blob") == b"\x00\x01"
    assert backend.get("doc") == {"a": [1, 2]}
    serializer = TaggedSerializer({})
    with pytest.raises(ValueError):
        serializer.loads(b"\x80\x04K\x01.")  # pickle of 1


# --- namespaces -------------------------------------------------------------------------


def test_clear_namespace_leaves_other_deployments_keys(redis_client):
    own = result_cache.namespace  # "<prefix>:1:"
    prefix = own.split(":")[0]
    foreign = {
        f"other-{prefix}:1:fib:10": b"rforeign",  # another deployment
        f"{prefix}:2:fib:10": b"rnext-version",  # this deployment's next format version
        f"{prefix}x:1:fib:10": b"rlonger-prefix",  # a prefix that starts like ours
        f"unrelated-{prefix}": b"plain",  # another application
    }
    redis_client.mset(foreign)
    try:
        for n in range(5):
            services.result_get(caller=SETUP, query=fib_query(n))
        assert result_cache.clear_namespace() >= 5
        for key, value in foreign.items():
            assert redis_client.get(key) == value
        left = [k for k in redis_client.scan_iter(match=own + "*")]
        assert left == [(own + "{meta}:generation").encode()]
    finally:
        redis_client.delete(*foreign)


def test_clear_namespace_matches_its_prefix_literally(redis_client):
    run = result_cache.namespace.split(":")[0]  # unique to this test run

    class GlobPrefix(PointedCache):
        def make_key(self, key: str) -> str:
            return f"{run}-t*st[1]?:{key}"

    own = f"{run}-t*st[1]?:fib:1"
    lookalike = f"{run}-tXst1Y:fib:1"  # what the unescaped pattern ...t*st[1]?:* would match
    redis_client.set(own, b"r1")
    redis_client.set(lookalike, b"r1")
    try:
        assert GlobPrefix().clear_namespace() == 1
        assert redis_client.exists(own) == 0
        assert redis_client.get(lookalike) == b"r1"
    finally:
        redis_client.delete(lookalike, own, f"{run}-t*st[1]?:meta:generation")


# --- statistics -------------------------------------------------------------------------


def test_hits_and_fills_reach_redis_at_most_once_a_second(redis_client):
    cache = PointedCache()
    stats_key = cache.make_key("{meta}:stats")
    query = fib_query(33)
    services.result_get(
        caller=SETUP, query=query, cache=cache
    )  # a fill (flushes nothing yet: first call)
    for _ in range(5):
        services.result_get(caller=SETUP, query=query, cache=cache)  # hits, local tier or Redis
    assert redis_client.hget(stats_key, "hits") is None  # pending: no round trip of its own
    cache.fake_clock.advance(1.0)
    services.result_get(
        caller=SETUP, query=ResultQuery("pi", 10**12), cache=cache
    )  # a lookup in Redis
    assert int(redis_client.hget(stats_key, "hits")) == 5
    assert int(redis_client.hget(stats_key, "fills")) == 1
    cache.flush_stats()  # the pi fill, sent now
    assert int(redis_client.hget(stats_key, "fills")) == 2


# --- the in-process tier ----------------------------------------------------------------


def _counted(key: str, size: int) -> int:
    """What the tier counts for a value of ``size`` bytes under ``key``."""
    return size + len(key) + ENTRY_BYTES


def test_local_tier_is_bounded_and_evicts_least_recently_used():
    entry = _counted("k0", 200)
    tier = LocalTier(max_bytes=5 * entry)
    for i in range(4):
        tier.put(f"k{i}", i, 200)
    assert tier.nbytes == 4 * entry  # the values, their keys and the tier's own objects
    assert tier.get("k0") == 0  # k0 is now the most recent
    tier.put("k4", 4, 200)
    tier.put("k5", 5, 200)  # six entries asked: the oldest (k1) goes
    assert tier.nbytes <= 5 * entry
    assert tier.get("k1") is MISSING
    assert [tier.get(k) for k in ("k0", "k2", "k3", "k4", "k5")] == [0, 2, 3, 4, 5]
    tier.put("huge", "x", 5 * entry // 4 - _counted("huge", 0) + 1)  # over a quarter: never kept
    assert tier.get("huge") is MISSING
    tier.put("k2", "again", 100)  # replacing an entry re-counts its size
    assert tier.nbytes == 4 * entry + _counted("k2", 100)


# (kind, n, digits, mod, the result's text): a small double, digits, a residue, a large integer.
_SHAPES = [
    ("pi", 10**12, None, None, "3.141592653589793"),
    ("pi", 10**6, "50", None, "3.1415916986605494"[:18] + "0" * 33),
    ("fib", 10, None, "7", "6"),
    ("fib", 10**4, None, None, "3" * 2090),
]


@pytest.mark.parametrize(("kind", "n", "digits", "mod", "text"), _SHAPES)
def test_the_tier_counts_at_least_the_memory_its_entries_hold(kind, n, digits, mod, text):
    """Measured by tracemalloc, not taken from the code's own estimate: 500 entries of each
    shape, every body a payload can memoise built (plain and string forms, each also gzip),
    hold no more than the tier counts for them. (Before PAYLOAD_BYTES and ENTRY_BYTES a
    small result here held about 2.4 times its count: 626,896 bytes against 262,500.)"""
    queries = [
        parse_query(kind, str(n + i), digits, None, mod, limits=app_settings.limits)
        for i in range(500)
    ]
    tier = LocalTier(max_bytes=10**12)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for query in queries:
            payload = Payload.from_text(query, text)
            for as_string in (False, True):
                for compressed in (False, True):
                    payload.body(cached=True, as_string=as_string, gzip=compressed)
            tier.put(query.cache_key, payload, payload.nbytes)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(tier) == len(queries)
    assert held <= tier.nbytes


@override_settings(LOCAL_CACHE_MAX_BYTES=200_000)
def test_result_cache_local_tier_stays_within_its_budget():
    cache = PointedCache()
    for n in range(2_000, 2_200):  # about 2 kB each in the tier's accounting
        services.result_get(caller=SETUP, query=fib_query(n), cache=cache)
    for n in range(2_000, 2_200):
        assert cache.get(fib_query(n)) is not MISSING
    assert 0 < cache.local.nbytes <= 200_000
    assert len(cache.local) < 200  # the budget, not the count, decided


def test_the_tiers_change_count_moves_whenever_an_entry_leaves_or_is_replaced():
    """What lets a kept answer skip the lookup (``ResultCache.serves``): no move, no change."""
    entry = _counted("a", 200)
    tier = LocalTier(max_bytes=5 * entry)
    moves = []

    def step(action) -> None:
        before = tier.changes
        action()
        moves.append(tier.changes - before)

    step(lambda: tier.put("a", 1, 200))  # a new key, room left: nothing left the tier
    step(lambda: tier.get("a"))
    step(lambda: tier.holds("a", 1))
    step(lambda: tier.put("b", 2, 200))
    step(lambda: tier.put("a", 3, 200))  # replaced
    step(lambda: tier.discard("b"))
    step(lambda: tier.discard("absent"))  # even absent: a read of it may be in flight
    for key in ("c", "d", "e"):
        step(lambda key=key: tier.put(key, 0, 200))
    step(lambda: tier.put("f", 0, 250))  # more than the budget asked: the oldest goes
    step(lambda: tier.clear())
    assert moves == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1]


def test_an_eviction_reaches_another_process_within_the_sync_interval(redis_client, settings):
    clock = FakeClock()
    reader, writer = PointedCache(clock=clock), PointedCache(clock=clock)
    query = fib_query(345)
    services.result_get(caller=SETUP, query=query, cache=writer)
    assert reader.get(query) is not MISSING  # now held in the reader's own tier
    # Proof the reader serves from its tier: remove the Redis copy behind its back.
    redis_client.delete(result_cache.make_key(query.cache_key))
    assert reader.get(query) is not MISSING
    services.result_delete(query=query, cache=writer)  # the DELETE path: log row, tiers, generation
    assert writer.get(query) is MISSING
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert reader.get(query) is MISSING
    assert services.result_get(caller=SETUP, query=query, cache=reader).cached is False


def test_a_delete_in_a_transaction_evicts_again_once_it_commits(
    django_capture_on_commit_callbacks,
):
    """The admin deletes in a transaction: until it commits, other requests still find the
    row and may refill Redis from it, after the service's second eviction."""
    query = fib_query(349)
    services.result_get(caller=SETUP, query=query)
    text = str(fib_reference(349))
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        assert services.result_delete(query=query) is True
        # Another request, which still sees the row, refills Redis from it.
        result_cache.set(query, Payload.from_text(query, text))
        assert result_cache.get_shared(query) is not MISSING
    assert len(callbacks) == 1
    assert result_cache.get(query) is MISSING
    assert not ComputedResult.objects.filter(kind="fib", n=349).exists()


def test_an_eviction_on_this_host_is_seen_at_once_even_by_a_new_process():
    """The host's shared counter is read before the first entry enters a tier, so a
    DELETE right after a process's very first lookup is not missed."""
    clock = FakeClock()  # never advanced: the Redis generation is not re-read
    reader, writer = PointedCache(clock=clock), PointedCache(clock=clock)
    query = fib_query(347)
    services.result_get(caller=SETUP, query=query, cache=writer)
    assert reader.get_shared(query) is not MISSING  # its first lookup fills its tier
    services.result_delete(query=query, cache=writer)
    assert reader.get(query) is MISSING


def test_a_namespace_clear_reaches_another_process_within_the_sync_interval(settings):
    """The generation counter must survive the clear: a reset counter can repeat a value."""
    clock = FakeClock()
    reader, operator = PointedCache(clock=clock), PointedCache(clock=clock)
    query = fib_query(346)
    operator.clear_namespace()  # e.g. yesterday's clear_cache
    services.result_get(caller=SETUP, query=query, cache=reader)
    assert reader.get(query) is not MISSING  # held locally at the current generation
    operator.clear_namespace()  # today's
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert reader.get(query) is MISSING


def test_a_lost_generation_counter_does_not_come_back_equal(redis_client):
    cache = PointedCache()
    key = cache.make_key("{meta}:generation")
    seen = set()
    for _ in range(3):
        redis_client.delete(key)  # Redis lost its data (restart without persistence)
        cache.delete(fib_query(1))
        seen.add(int(redis_client.get(key)))
    assert len(seen) == 3
    assert min(seen) > 1_000  # random base, not 1


# --- the breaker ------------------------------------------------------------------------


@pytest.fixture
def paused_redis(tmp_path):
    """A real redis-server of this test's, stopped with SIGSTOP (accepts, never answers)."""
    server = RedisServer(tmp_path / "paused").start()
    server.pause()
    try:
        yield server
    finally:
        server.stop()


def _outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(OUTAGE)]


def _recovery_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(RECOVERY)]


def _every_operation(cache: ResultCache, query: ResultQuery) -> None:
    payload = Payload.from_text(query, "8")
    assert cache.get(query) is MISSING
    assert cache.get_shared(query) is MISSING
    assert cache.set(query, payload) is False
    assert cache.delete(query) is False
    assert cache.exists_many([query]) is None
    assert cache.count_hit("throttle:x", 60) is None
    with cache.compute_lock(query) as lease:
        assert lease.held is True  # the per-process fallback lock


def test_a_paused_redis_costs_one_short_timeout_then_nothing(
    paused_redis, caplog, settings, request
):
    caplog.set_level(logging.WARNING, logger="compute.cache")
    cache = PointedCache(backend_at(paused_redis.url()))
    query = fib_query(6)

    started = time.monotonic()
    assert cache.get(query) is MISSING
    first = time.monotonic() - started
    assert first < settings.REDIS_SOCKET_TIMEOUT + settings.REDIS_CONNECT_TIMEOUT + 0.2
    assert len(_outage_lines(caplog)) == 1

    started = time.monotonic()
    for _ in range(50):  # within the back-off: Redis is not tried at all
        _every_operation(cache, query)
    within = time.monotonic() - started
    assert within < 0.1
    assert len(_outage_lines(caplog)) == 1

    cache.fake_clock.advance(settings.REDIS_BACKOFF_SECONDS)  # one retry, one more timeout
    started = time.monotonic()
    assert cache.get(query) is MISSING
    assert time.monotonic() - started < settings.REDIS_SOCKET_TIMEOUT + 0.2
    assert len(_outage_lines(caplog)) == 1  # still the same outage: no new line

    paused_redis.resume()
    cache.fake_clock.advance(settings.REDIS_BACKOFF_SECONDS)
    assert cache.set(query, Payload.from_text(query, "8")) is True
    assert cache.get_shared(query).literal == b"8"
    assert len(_recovery_lines(caplog)) == 1
    assert len(_outage_lines(caplog)) == 1
    record(request, "paused Redis: first call (one socket timeout)", round(first, 3), "s")
    record(request, "paused Redis: 350 calls within the back-off", round(within, 4), "s")


def test_a_lock_held_when_redis_hangs_is_released_without_a_second_timeout(tmp_path, settings):
    server = RedisServer(tmp_path / "hangs").start()
    try:
        cache = PointedCache(backend_at(server.url()))
        query = fib_query(8)
        with cache.compute_lock(query) as lease:
            assert lease.held is True
            lock = cache.lock_key(query)
            assert server.client().exists(lock) == 1  # the Redis lock
            server.pause()
            started = time.monotonic()
            assert cache.set(query, Payload.from_text(query, "21")) is False  # pays the timeout
            assert time.monotonic() - started >= settings.REDIS_SOCKET_TIMEOUT * 0.8
            leaving = time.monotonic()
        assert time.monotonic() - leaving < 0.05  # the release went through the open breaker
    finally:
        server.stop()


def test_a_missing_redis_fails_fast_and_is_logged_once(tmp_path, caplog, settings):
    caplog.set_level(logging.WARNING, logger="compute.cache")
    dead = tmp_path / "gone.sock"
    cache = PointedCache(backend_at(f"unix://{dead}"))
    query = fib_query(7)
    started = time.monotonic()
    for _ in range(3):
        assert cache.get(query) is MISSING
        _every_operation(cache, query)
        cache.fake_clock.advance(settings.REDIS_BACKOFF_SECONDS)
    assert time.monotonic() - started < 0.5  # refused at once, three outage windows
    assert len(_outage_lines(caplog)) == 1
    assert "retrying every" in _outage_lines(caplog)[0]


def test_only_a_real_round_trip_ends_an_outage(tmp_path, caplog, settings):
    """After the back-off, a request whose first Redis step is the lock must not log a
    recovery (building a lock does no I/O) and then a second outage."""
    caplog.set_level(logging.WARNING, logger="compute.cache")
    cache = PointedCache(backend_at(f"unix://{tmp_path / 'gone.sock'}"))
    assert cache.get(fib_query(9)) is MISSING
    for _ in range(3):
        cache.fake_clock.advance(settings.REDIS_BACKOFF_SECONDS)
        with cache.compute_lock(fib_query(9)) as lease:
            assert lease.held is True
    assert _recovery_lines(caplog) == []
    cache.fake_clock.advance(settings.REDIS_BACKOFF_SECONDS)
    assert cache.exists_many([]) == []  # nothing to ask: no round trip either
    assert cache.get(fib_query(9)) is MISSING
    assert _recovery_lines(caplog) == []
    assert len(_outage_lines(caplog)) == 1


def test_services_keep_answering_without_redis(tmp_path):
    cache = PointedCache(backend_at(f"unix://{tmp_path / 'gone.sock'}"))
    query = fib_query(250)
    first = services.result_get(caller=SETUP, query=query, cache=cache)
    again = services.result_get(caller=SETUP, query=query, cache=cache, compute=never_compute)
    assert (first.cached, again.cached) == (False, True)  # the second came from the log
    assert first.payload.text == again.payload.text == str(fib_reference(250))


@pytest.mark.django_db(transaction=True)
def test_without_redis_concurrent_identical_requests_compute_once_per_process(tmp_path):
    cache = PointedCache(backend_at(f"unix://{tmp_path / 'gone.sock'}"))
    query = fib_query(4_321)
    calls: list[int] = []
    guard = threading.Lock()

    def slow_compute(q: ResultQuery) -> str:
        with guard:
            calls.append(threading.get_ident())
        time.sleep(0.3)  # the window in which the others arrive
        return str(fib_reference(q.n))

    outcomes: list[services.Outcome] = []
    barrier = threading.Barrier(6)

    def request() -> None:
        try:
            barrier.wait(timeout=5)
            outcomes.append(
                services.result_get(caller=SETUP, query=query, cache=cache, compute=slow_compute)
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(outcomes) == 6
    assert len(calls) == 1
    assert sorted(o.cached for o in outcomes) == [False] + [True] * 5
    # Not stored (no Redis); the others read the log once the process's lock was theirs.
    assert sorted(o.source.value for o in outcomes) == ["computed-unstored"] + ["log"] * 5
    assert {o.payload.text for o in outcomes} == {str(fib_reference(4_321))}
    assert ComputedResult.objects.filter(kind="fib", n=4_321).count() == 1


# --- sizes and refills ------------------------------------------------------------------


def _fib_edges(n: int, width: int = 30) -> tuple[str, str]:
    """Return the first and last ``width`` digits of fib(n) without converting it whole.

    Last digits: fast doubling modulo 10**width. First digits: Binet's
    formula phi**n / sqrt(5) in decimal arithmetic with ample precision.
    """
    modulus = 10**width
    a, b = 0, 1
    for bit in bin(n)[2:]:
        c = a * (2 * b - a) % modulus
        d = (a * a + b * b) % modulus
        a, b = (d, (c + d) % modulus) if bit == "1" else (c, d)
    context = decimal.Context(prec=width + 30)
    five = decimal.Decimal(5)
    phi = context.divide(context.add(1, context.sqrt(five)), 2)
    value = context.divide(context.power(phi, n), context.sqrt(five))
    return format(value, "f")[:width], str(a).zfill(width)


def test_fib_million_entry_is_compact(redis_client, request):
    n = 1_000_000
    outcome = services.result_get(caller=SETUP, query=fib_query(n))
    text = outcome.payload.text
    head, tail = _fib_edges(n)
    assert (len(text), text[:30], text[-30:]) == (208_988, head, tail)
    size = redis_client.strlen(result_cache.make_key(fib_query(n).cache_key))
    per_digit = size / len(text)
    record(request, "fib(1,000,000) entry in Redis", size, "bytes")
    record(request, "fib(1,000,000) bytes per digit", round(per_digit, 4), "bytes/digit")
    assert per_digit <= 0.5
    # A hit decodes the stored gzip back into the same digits.
    fresh = PointedCache()
    assert fresh.get(fib_query(n)).text == text


def test_a_flushed_namespace_is_refilled_from_the_log_without_recomputing(redis_client):
    queries = [fib_query(700), ResultQuery("pi", 10**9), ResultQuery("pi", 10**9, digits=40)]
    first = [services.result_get(caller=SETUP, query=q) for q in queries]
    assert [o.cached for o in first] == [False] * 3
    result_cache.clear_namespace()  # this deployment's share of a FLUSHDB
    for query, before in zip(queries, first, strict=True):
        assert redis_client.exists(result_cache.make_key(query.cache_key)) == 0
        again = services.result_get(caller=SETUP, query=query, compute=never_compute)
        assert again.cached is True
        assert again.payload.literal == before.payload.literal
        assert redis_client.exists(result_cache.make_key(query.cache_key)) == 1
    assert ComputedResult.objects.count() == 3


def test_a_call_overtaken_by_another_threads_failure_does_not_end_the_outage(caplog):
    """Two threads: one's Redis call succeeds just after the other's failed.

    The outage is logged once, and not ended by the late success: only a round
    trip that began after the failure shows Redis is back.
    """
    from compute.cache.breaker import Breaker

    caplog.set_level(logging.WARNING, logger="compute.cache")
    clock = FakeClock()
    breaker = Breaker(errors=(OSError,), backoff=lambda: 2.0, clock=clock)

    def slow_success():
        clock.advance(0.1)
        breaker.trip(OSError("another thread's call failed meanwhile"))
        return "ok"

    assert breaker.call(slow_success, default=None) == "ok"
    clock.advance(2.0)
    assert breaker.call(lambda: (_ for _ in ()).throw(OSError("down")), default="x") == "x"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert not any("reachable again" in m for m in messages)
    clock.advance(2.0)
    assert breaker.call(lambda: "back", default=None) == "back"
    assert sum("reachable again" in r.getMessage() for r in caplog.records) == 1
