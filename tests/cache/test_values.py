"""Bookkeeping values read with care (``compute.cache.values``), and the whole service under junk.

Mirrors ``compute/cache/values.py``: the counter rule (Python and the Lua
the scripts share, checked against each other and against what the real
Redis's ``INCR`` accepts), which Redis errors are data errors (taken from
the run's real Redis, not made up), the once-per-process report. Then
the SPEC's rule end to end: junk under every bookkeeping key at once, and
the service, through Django's test client, keeps answering right, stays
ready, keeps its breaker closed and counts what it met.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.test import Client

from compute.cache import result_cache
from compute.cache.values import (
    LUA_COUNTERS,
    MalformedValue,
    ReportedOnce,
    execute,
    is_data_error,
    parse_counter,
    returning_data_errors,
)
from compute.domain.query import ResultQuery
from tests.support.caches import FakeClock
from tests.support.junk import MALFORMED, WRONG_TYPES, junk_id, malformed_count, plant
from tests.support.reference import fib_reference

WELL_FORMED = [b"0", b"1", b"42", b"9" * 18, b"100000000000000000"]


def key(name: str) -> str:
    return result_cache.make_key(f"values-test:{name}")


# --- the counter rule -----------------------------------------------------------------


@pytest.mark.parametrize("raw", WELL_FORMED)
def test_a_well_formed_counter_parses(raw):
    assert parse_counter(raw) == int(raw)


@pytest.mark.parametrize("raw", [*MALFORMED, "42", 42], ids=junk_id)
def test_anything_else_is_malformed(raw):
    with pytest.raises(MalformedValue):
        parse_counter(raw)


def test_absent_is_none_and_a_maximum_applies():
    assert parse_counter(None) is None
    assert parse_counter(b"10", maximum=10) == 10
    with pytest.raises(MalformedValue):
        parse_counter(b"11", maximum=10)


@pytest.mark.parametrize("raw", [*WELL_FORMED, *MALFORMED], ids=junk_id)
def test_python_lua_and_incr_agree_on_what_a_counter_is(redis_client, raw):
    """One rule written twice (Python, Lua): both say the same, and INCR accepts all they do."""
    name = key("rule")
    redis_client.set(name, raw)
    script = LUA_COUNTERS + "local value, reset = read_counter(KEYS[1]); return reset"
    lua_says_junk = redis_client.eval(script, 1, name) == 1
    try:
        parse_counter(raw)
        python_says_junk = False
    except MalformedValue:
        python_says_junk = True
    assert lua_says_junk == python_says_junk
    assert redis_client.exists(name) == (0 if lua_says_junk else 1)  # junk deleted in the script
    if not python_says_junk:
        redis_client.set(name, raw)
        assert redis_client.incr(name) == int(raw) + 1  # never an overflow: at most 18 digits


@pytest.mark.parametrize("junk", WRONG_TYPES)
def test_a_wrong_type_is_malformed_for_both(redis_client, junk):
    name = key("typed")
    plant(redis_client, name, junk)
    reply = returning_data_errors(lambda: redis_client.get(name))
    with pytest.raises(MalformedValue, match="not a string"):
        parse_counter(reply)
    script = LUA_COUNTERS + "local value, reset = read_counter(KEYS[1]); return reset"
    assert redis_client.eval(script, 1, name) == 1
    assert redis_client.exists(name) == 0


# --- data errors and outages ----------------------------------------------------------------


def _error_of(operation) -> redis.RedisError:
    with pytest.raises(redis.RedisError) as caught:
        operation()
    return caught.value


def test_what_redis_says_about_a_keys_value_is_a_data_error(redis_client):
    name = key("data")
    redis_client.set(name, b"x")
    assert is_data_error(_error_of(lambda: redis_client.incr(name)))  # not an integer
    assert is_data_error(_error_of(lambda: redis_client.hgetall(name)))  # WRONGTYPE
    redis_client.set(name, str(2**63 - 1))
    assert is_data_error(_error_of(lambda: redis_client.incr(name)))  # would overflow
    redis_client.delete(name)
    redis_client.hset(name, "hits", "x")
    assert is_data_error(_error_of(lambda: redis_client.hincrby(name, "hits", 1)))
    assert is_data_error(_error_of(lambda: redis_client.get(name)))
    in_script = _error_of(lambda: redis_client.eval("return redis.call('GET', KEYS[1])", 1, name))
    assert is_data_error(in_script)


def test_outages_and_other_refusals_are_not_data_errors(redis_client):
    assert not is_data_error(redis.ConnectionError("Connection refused"))
    assert not is_data_error(redis.TimeoutError("Timeout reading from socket"))
    # Subclasses name the server's state, not a key's value.
    assert not is_data_error(redis.exceptions.ReadOnlyError("You can't write against a replica."))
    assert not is_data_error(
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")
    )
    assert not is_data_error(_error_of(lambda: redis_client.execute_command("NO-SUCH-COMMAND")))
    assert not is_data_error(_error_of(lambda: redis_client.eval("return 1 + nil", 0)))


def test_a_pipeline_hands_back_data_errors_and_raises_the_rest(redis_client):
    name = key("pipe")
    redis_client.hset(name, "a", "1")
    pipe = redis_client.pipeline(transaction=False)
    pipe.get(name)
    pipe.exists(name)
    wrong_type, exists = execute(pipe)
    assert is_data_error(wrong_type) and exists == 1
    pipe = redis_client.pipeline(transaction=False)
    pipe.exists(name)
    pipe.execute_command("NO-SUCH-COMMAND")
    with pytest.raises(redis.ResponseError):
        execute(pipe)


# --- reported once per process ------------------------------------------------------------


def test_each_reason_is_logged_once_and_counted_every_time(caplog):
    caplog.set_level(logging.WARNING, logger="compute.cache")
    counted: list[str] = []
    report = ReportedOnce(counted.append)
    for _ in range(3):
        report("budget", "budget junk %s", 1)
        report("lock", "lock junk %s", 2)
    assert counted == ["budget", "lock"] * 3
    assert [r.getMessage() for r in caplog.records] == ["budget junk 1", "lock junk 2"]
    report.reset()
    report("budget", "budget junk %s", 3)
    assert caplog.records[-1].getMessage() == "budget junk 3"


def test_the_caches_report_names_the_key_and_the_metric(caplog):
    caplog.set_level(logging.WARNING, logger="compute.cache")
    before = malformed_count("throttle")
    for _ in range(4):
        result_cache.malformed.report("throttle", "p:1:throttle:c:1", "b'x' is not a counter")
    assert malformed_count("throttle") - before == 4
    (line,) = [r.getMessage() for r in caplog.records]
    assert "malformed throttle value" in line and "p:1:throttle:c:1" in line
    assert 'mathsite_cache_malformed_total{key="throttle"}' in line


# --- the whole service ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("junk", [b"x", "hash"], ids=junk_id)
def test_junk_under_every_bookkeeping_key_at_once_changes_no_answer(
    redis_client, monkeypatch, settings, junk
):
    """Generation, statistics, the client's budget and throttle counters, a stampede lock:
    all junk, and hits and computations are still answered right, at once, with the
    breaker closed and /readyz ok; each kind is counted in /metrics."""
    clock = FakeClock()  # the eviction sync's clock: time passes when the test says so
    monkeypatch.setattr(result_cache.evictions, "clock", clock)
    client = Client()
    assert client.get("/api/fib/30/").json() == {"cached": False, "result": 832040, "n": 30}
    # The keys this client's computation made: its budget and throttle counters.
    counters = {
        kind: next(redis_client.scan_iter(match=result_cache.make_key(f"{kind}:*")))
        for kind in ("budget", "throttle")
    }
    keys = {
        "generation": result_cache.make_key("{meta}:generation"),
        "stats": result_cache.make_key("{meta}:stats"),
        **counters,
        # No expiry: it would hold fib(31) back for good.
        "lock": result_cache.lock_key(ResultQuery("fib", 31)),
    }
    for name in keys.values():
        plant(redis_client, name, junk)
    before = {kind: malformed_count(kind) for kind in keys}

    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    hit = client.get("/api/fib/30/")  # the sync is due: it reads the generation
    assert hit.status_code == 200 and hit.json() == {"cached": True, "result": 832040, "n": 30}
    started = time.monotonic()
    computed = client.get("/api/fib/31/")
    assert time.monotonic() - started < 1  # no wait on the junk lock (COMPUTE_LOCK_WAIT: 20 s)
    assert computed.status_code == 200
    assert computed.json() == {"cached": False, "result": fib_reference(31), "n": 31}

    result_cache.flush_stats()  # the hit and the computation, added to the statistics hash
    assert result_cache.available  # the breaker never opened
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert ready.json()["redis"]["ok"] is True
    after = {kind: malformed_count(kind) for kind in keys}
    assert all(after[kind] > before[kind] for kind in keys), (before, after)
    exposition = client.get("/metrics").content.decode()
    for kind in keys:
        assert f'mathsite_cache_malformed_total{{key="{kind}"}}' in exposition
    # Repaired where a writer needs the key: counters restarted, statistics a hash again.
    assert parse_counter(redis_client.get(keys["budget"])) == len(str(fib_reference(31)))
    assert parse_counter(redis_client.get(keys["throttle"])) == 1
    assert redis_client.type(keys["stats"]) == b"hash"
