"""Namespace statistics (``compute.cache.stats``): exact when small, bounded estimates when large.

A Redis server of the test's own, so its size and command counters are
known: ``ResultCache.stats()`` on a database of 120,000 keys (half of them
another deployment's) sends no SCAN and a bounded number of commands, and
its labelled estimates fall within a few standard errors of the truth the
test planted. On a small database every figure is exact and keys of other
prefixes are never counted as ours. The tally's hash, which anyone who can
write to the Redis can fill with junk, is read as no figure and repaired by
the next flush, without failing a request, the command or opening the breaker.
"""

from __future__ import annotations

import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from compute import services
from compute.cache import result_cache
from compute.cache.stats import LATEST_SINCE, STATS_FLUSH_SECONDS
from compute.domain.query import ResultQuery
from tests.support.caches import PointedCache, backend_at
from tests.support.callers import SETUP
from tests.support.junk import MALFORMED, junk_id, malformed_count, plant
from tests.support.servers import RedisServer

FIB, PI, FOREIGN = 40_000, 20_000, 60_000
FIB_VALUE, PI_VALUE = b"r" + b"7" * 99, b"r3.14159265358979"


@pytest.fixture(scope="module")
def big_redis(tmp_path_factory):
    """A Redis holding 40,000 fib and 20,000 pi entries of ours and 60,000 keys of another."""
    server = RedisServer(tmp_path_factory.mktemp("stats-redis")).start()
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for n in range(FIB):
        pipe.set(f"ours:1:fib:{n}", FIB_VALUE)
    for n in range(PI):
        pipe.set(f"ours:1:pi:{n}", PI_VALUE)
    for n in range(FOREIGN):
        pipe.set(f"ours-not:1:fib:{n}", FIB_VALUE)  # a neighbour whose prefix starts like ours
    pipe.execute()
    yield server
    server.stop()


def command_calls(client) -> dict[str, int]:
    return {name: row["calls"] for name, row in client.info("commandstats").items()}


@override_settings(CACHE_STATS_EXACT_MAX_KEYS=10_000, CACHE_STATS_SAMPLE_KEYS=4_000)
def test_a_large_database_is_estimated_with_a_bounded_cost(big_redis):
    cache = PointedCache(backend_at(big_redis.url(), prefix="ours"))
    client = big_redis.client()
    before = command_calls(client)
    stats = cache.stats()
    after = command_calls(client)
    sent = {name: after[name] - before.get(name, 0) for name in after}
    assert "cmdstat_scan" not in sent or sent["cmdstat_scan"] == 0
    assert sent["cmdstat_randomkey"] == 4_000
    # RANDOMKEY draws, a STRLEN and at most 200 MEMORY USAGE per result drawn, a few INFOs.
    assert sum(sent.values()) < 2 * 4_000 + 200 + 20

    assert stats["dbsize"] == FIB + PI + FOREIGN
    assert stats["method"].startswith("estimate: 4,000 random keys of the database's 120,000")
    assert set(stats["estimated"]) >= {"entries", "entries_by_kind", "stored_bytes"}
    # Binomial standard error of a count: sqrt(p (1 - p) / draws) * DBSIZE, about 0.9 % of
    # the database here; 6 % of the truth is more than four of them.
    assert stats["entries"] == pytest.approx(FIB + PI, rel=0.06)
    assert stats["entries_by_kind"]["fib"] == pytest.approx(FIB, rel=0.08)
    assert stats["entries_by_kind"]["pi"] == pytest.approx(PI, rel=0.12)
    assert 0 < stats["entries_margin"] < 0.05 * (FIB + PI)
    truth = FIB * len(FIB_VALUE) + PI * len(PI_VALUE)
    assert stats["stored_bytes"] == pytest.approx(truth, rel=0.08)
    assert stats["memory_bytes"] > stats["stored_bytes"] * 0.9
    assert stats["other_keys"] == 0  # the neighbour's keys are not "other keys of ours"


@override_settings(CACHE_STATS_EXACT_MAX_KEYS=200_000)
def test_a_small_enough_database_is_scanned_exactly_and_only_our_prefix_counts(big_redis):
    stats = PointedCache(backend_at(big_redis.url(), prefix="ours")).stats()
    assert stats["estimated"] == [] and stats["entries_margin"] == 0
    assert stats["method"] == "exact: every key of the database scanned (120,000 keys)"
    assert stats["entries_by_kind"] == {"fib": FIB, "pi": PI}
    assert stats["stored_bytes"] == FIB * len(FIB_VALUE) + PI * len(PI_VALUE)
    neighbour = PointedCache(backend_at(big_redis.url(), prefix="ours-not")).stats()
    assert neighbour["entries_by_kind"] == {"fib": FOREIGN}


@override_settings(CACHE_STATS_EXACT_MAX_KEYS=10_000, CACHE_STATS_SAMPLE_KEYS=1_000)
def test_cache_stats_command_marks_its_estimates(big_redis, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    from compute.management.commands import cache_stats

    monkeypatch.setattr(
        cache_stats, "result_cache", PointedCache(backend_at(big_redis.url(), prefix="ours"))
    )
    out = StringIO()
    call_command("cache_stats", stdout=out)
    text = out.getvalue()
    assert "Figures:    estimate: 1,000 random keys of the database's 120,000" in text
    assert "; ~ marks an estimate" in text
    assert "Entries:    ~" in text and " +/- " in text and "(fib ~" in text


@override_settings(CACHE_STATS_EXACT_MAX_KEYS=10, CACHE_STATS_SAMPLE_KEYS=500)
def test_the_margin_covers_a_namespace_that_is_all_of_the_database(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = server.client()
        client.mset({f"solo:1:pi:{n}": PI_VALUE for n in range(5_000)})
        client.set("solo:1:meta:generation", b"7")  # a key of ours that is not a result
        stats = PointedCache(backend_at(server.url(), prefix="solo")).stats()
    finally:
        server.stop()
    assert stats["estimated"] and stats["entries_margin"] > 0
    assert abs(stats["entries"] - 5_000) <= stats["entries_margin"]


# --- junk in the tally's hash ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("junk", [b"x", b"", "list", "set", "zset"], ids=junk_id)
def test_a_flush_that_meets_another_type_replaces_it_and_loses_no_count(redis_client, junk):
    """HSETNX and HINCRBY on a string or a list: WRONGTYPE, which used to open the breaker
    (each sync's pipeline carries the flush, so every half second)."""
    cache = PointedCache()
    key = cache.make_key("{meta}:stats")
    query = ResultQuery("fib", 33)
    services.result_get(caller=SETUP, query=query, cache=cache)  # a fill, pending
    for _ in range(3):
        services.result_get(caller=SETUP, query=query, cache=cache)  # hits
    plant(redis_client, key, junk)
    before = malformed_count("stats")
    cache.fake_clock.advance(STATS_FLUSH_SECONDS)
    services.result_get(caller=SETUP, query=ResultQuery("fib", 34), cache=cache)  # a sync: flush
    assert cache.available  # Redis refused the flush because of one key: not an outage
    assert malformed_count("stats") - before == 1
    assert redis_client.type(key) == b"hash"
    figures = cache.stats()
    assert (figures["hits"], figures["fills"]) == (3, 1)  # the refused counts were added
    assert abs(figures["since"] - time.time()) < 60
    assert malformed_count("stats") - before == 1  # well formed from then on


@pytest.mark.django_db
@pytest.mark.parametrize("junk", ["list", "zset"])
def test_statistics_read_another_type_as_no_figure_and_remove_it(redis_client, junk):
    cache = PointedCache()
    key = cache.make_key("{meta}:stats")
    plant(redis_client, key, junk)
    before = malformed_count("stats")
    figures = cache.stats()  # HGETALL of a list: WRONGTYPE
    assert (figures["hits"], figures["fills"], figures["since"]) == (0, 0, None)
    assert figures["hit_ratio"] is None
    assert malformed_count("stats") - before == 1
    assert redis_client.type(key) == b"hash"  # removed: counting starts again from now
    assert cache.stats()["hits"] == 0 and malformed_count("stats") - before == 1
    assert cache.available


def test_statistics_read_only_their_fields_of_a_hash_others_filled(redis_client, monkeypatch):
    """A writer to the Redis can add any number of fields to the statistics hash; the
    statistics read the three they use (HMGET), not the whole hash (HGETALL) every time."""
    from compute.cache import stats

    cache = PointedCache()
    key = cache.make_key("{meta}:stats")
    redis_client.delete(key)
    redis_client.hset(key, mapping={"hits": "7", "fills": "3", "since": "1700000000"})
    for batch in range(4):
        redis_client.hset(key, mapping={f"junk{batch}-{i}": "x" * 100 for i in range(5000)})
    read: list = []
    real = stats.read_tally

    def seen(raw, *args):
        read.append(raw)
        return real(raw, *args)

    monkeypatch.setattr(stats, "read_tally", seen)
    before = malformed_count("stats")
    figures = cache.stats()
    assert (figures["hits"], figures["fills"], figures["since"]) == (7, 3, 1_700_000_000)
    assert read == [[b"7", b"3", b"1700000000"]]  # what came back from Redis: three values
    assert malformed_count("stats") == before  # extra fields are no junk in what it reads
    redis_client.delete(key)


@pytest.mark.django_db
def test_junk_fields_read_as_no_figure_in_the_command_and_are_removed(
    redis_client,
):
    key = result_cache.make_key("{meta}:stats")
    redis_client.hset(
        key, mapping={"hits": "x", "fills": "12", "since": str(LATEST_SINCE + 1), "other": "?"}
    )
    before = malformed_count("stats")
    out = StringIO()
    call_command("cache_stats", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert (figures["hits"], figures["fills"], figures["since"]) == (0, 12, None)
    assert malformed_count("stats") - before == 2  # hits and since; an unknown field is ignored
    text = StringIO()
    call_command("cache_stats", stdout=text)  # the junk went with the first reading
    assert "Hit ratio:  0.0% (0 hits, 12 fills, since " in text.getvalue()
    assert malformed_count("stats") - before == 2

    result_cache.tally.add("hits", 5)
    result_cache.flush_stats()
    assert redis_client.hget(key, "hits") == b"5"
    assert redis_client.hget(key, "fills") == b"12"  # a well-formed count is kept
    assert abs(int(redis_client.hget(key, "since")) - time.time()) < 60
    assert result_cache.available


@pytest.mark.django_db
@pytest.mark.parametrize("junk", [j for j in MALFORMED if j != b"-5"], ids=junk_id)
def test_a_flush_that_meets_a_malformed_count_resets_it(redis_client, junk):
    """HINCRBY refuses a field that is not an integer ("hash value is not an integer")."""
    key = result_cache.make_key("{meta}:stats")
    redis_client.hset(key, mapping={"hits": junk, "fills": junk, "since": junk})
    result_cache.tally.add("fills", 2)
    result_cache.flush_stats()
    assert result_cache.available
    assert redis_client.hget(key, "fills") == b"2"  # removed, and the refused count added
    assert redis_client.hget(key, "hits") is None  # removed: no hits to add
    assert abs(int(redis_client.hget(key, "since")) - time.time()) < 60


@pytest.mark.django_db
def test_a_count_that_redis_accepts_but_mathsite_never_writes_is_removed_by_the_reader(
    redis_client,
):
    key = result_cache.make_key("{meta}:stats")
    redis_client.hset(key, mapping={"hits": "-5", "fills": "3", "since": "-5"})
    before = malformed_count("stats")
    figures = result_cache.stats()
    assert (figures["hits"], figures["fills"], figures["since"]) == (0, 3, None)
    assert malformed_count("stats") - before == 2
    assert redis_client.hget(key, "hits") is None and redis_client.hget(key, "fills") == b"3"
    assert abs(result_cache.stats()["since"] - time.time()) < 60


def test_hits_counted_by_many_threads_at_once_are_all_taken_once(clean_cache):
    """``add_hit`` takes no lock: each hit is a number of its own, taken by exactly one flush."""
    tally = clean_cache.tally
    tally.take()
    taken = []
    go = threading.Barrier(9)

    def count() -> None:
        go.wait()
        for _ in range(200):
            for _ in range(100):
                tally.add_hit()
            time.sleep(0.0001)  # let the taker in between bursts

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    go.wait()
    while any(thread.is_alive() for thread in threads):  # takes while the threads count
        taken.append(tally.take().get("hits", 0))
        time.sleep(0.0001)
    for thread in threads:
        thread.join()
    taken.append(tally.take().get("hits", 0))
    assert len([count for count in taken if count]) > 2  # taken while counting, more than once
    assert sum(taken) == 8 * 200 * 100
