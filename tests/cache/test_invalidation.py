"""The eviction broadcast: the per-host counter (instant for the local tier) and the Redis
generation (within the sync interval elsewhere), whatever a writer to the Redis left there."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from typing import Any

import pytest
from django.test import Client

from compute.cache import MISSING, ResultCache, Tier, result_cache
from compute.cache.host_counter import HostCounter, private_folder
from compute.cache.integrity import EntrySeal
from compute.cache.values import parse_counter
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.caches import FakeClock, PointedCache, backend_at
from tests.support.junk import JUNK, junk_id, malformed_count, plant
from tests.support.reference import fib_reference
from tests.support.servers import RedisServer


def _bump_many(path: str, times: int) -> None:
    from pathlib import Path

    counter = HostCounter(Path(path))
    for _ in range(times):
        counter.bump()


def test_concurrent_bumps_from_processes_all_count(tmp_path):
    path = tmp_path / "gen"
    counter = HostCounter(path)
    start = counter.read()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump_many, args=(str(path), 300)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert counter.read() == start + 1200


def test_private_folder_is_only_ours():
    folder = private_folder()
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.django_db
def test_eviction_is_seen_at_once_by_another_process_tier(clean_cache):
    """Two ResultCache objects stand for two workers of one host.

    B has the value in its in-process tier and has just synced with Redis,
    so only the shared-memory counter can tell it about A's deletion.
    """
    query = ResultQuery("fib", 12)
    worker_a, worker_b = clean_cache, ResultCache()
    worker_a.set(query, Payload.from_text(query, "144"))
    assert worker_b.get(query) is not MISSING  # fetched from Redis into B's tier
    assert worker_b.get(query) is not MISSING  # now served from B's tier
    worker_a.delete(query)
    assert worker_b.get(query) is MISSING


@pytest.mark.django_db
def test_lookups_do_not_read_the_eviction_generation(tmp_path):
    """No key is read by every request (on a cluster it would be one hot shard).

    A Redis of the test's own counts the commands (INFO commandstats): 500
    lookups of distinct results by a fresh process read 500 result keys and
    the generation only when the periodic sync is due (its clock never moves
    here: once, whether it exists and its first bytes). The old design read
    the generation with every lookup.
    """
    server = RedisServer(tmp_path / "redis").start()
    try:
        writer = PointedCache(backend_at(server.url(), prefix="gen-reads"))
        queries = [ResultQuery("fib", n) for n in range(500)]
        for query in queries:
            writer.set(query, Payload.from_text(query, str(fib_reference(query.n))))
        writer.delete(ResultQuery("fib", 10_000))  # the generation exists from now on
        client = server.client()
        client.config_resetstat()
        reader = PointedCache(backend_at(server.url(), prefix="gen-reads"))
        for query in queries:
            assert reader.get(query).text == str(fib_reference(query.n))
        for query in queries:  # from the tier now: no Redis read at all
            assert reader.get(query) is not MISSING
        stats = client.info("commandstats")
        assert stats["cmdstat_get"]["calls"] == 500
        assert stats["cmdstat_exists"]["calls"] == stats["cmdstat_getrange"]["calls"] == 1
        assert client.info("stats")["keyspace_hits"] == 500 + 2
    finally:
        server.stop()


@pytest.mark.django_db
def test_serves_exactly_while_get_would_serve_that_payload_from_the_tier(
    clean_cache,
):
    """What the front's kept answers rely on (``ResultCache.serves``)."""
    query = ResultQuery("fib", 13)
    cache = clean_cache
    cache.set(query, Payload.from_text(query, "233"))
    payload = cache.get(query)
    assert payload is not MISSING
    hits = cache.tally.counts()["hits"]
    assert cache.serves(query.cache_key, payload, -1) >= 0
    assert cache.tally.counts()["hits"] == hits + 1  # counted as the lookup would
    another = Payload.from_text(query, "233")
    assert cache.serves(query.cache_key, another, -1) == -1  # another object

    other = ResultCache()  # another worker of this host evicts it
    other.delete(query)
    assert cache.serves(query.cache_key, payload, -1) == -1
    assert cache.tally.counts()["hits"] == hits + 1  # nothing counted

    cache.set(query, Payload.from_text(query, "233"))
    again = cache.get(query)
    assert cache.serves(query.cache_key, again, -1) >= 0
    sync_due = cache.evictions.clock() + cache.evictions.sync_seconds() + 1
    cache.evictions.clock = lambda: sync_due  # the periodic sync is due: ask Redis first
    assert cache.serves(query.cache_key, again, -1) == -1


def test_serves_looks_at_the_entry_again_only_after_something_left_the_tier(clean_cache):
    """A kept answer's hit: the count it got back spares the next lookup until the tier moves."""
    cache = clean_cache
    query, other = ResultQuery("fib", 13), ResultQuery("fib", 14)
    for each, text in ((query, "233"), (other, "377")):
        cache.set(each, Payload.from_text(each, text))
    payload = cache.get(query)
    checked = cache.serves(query.cache_key, payload, -1)
    assert checked == cache.local.changes >= 0
    looked = []
    holds = cache.local.holds
    cache.local.holds = lambda *args: looked.append(args) or holds(*args)
    hits = cache.tally.counts()["hits"]
    assert cache.serves(query.cache_key, payload, checked) == checked
    assert looked == []  # nothing moved: the entry was not looked at
    assert cache.tally.counts()["hits"] == hits + 1

    cache.local.discard(other.cache_key)  # another entry leaves: look again, still held
    again = cache.serves(query.cache_key, payload, checked)
    assert again == cache.local.changes == checked + 1
    assert looked == [(query.cache_key, payload)]

    cache.local.discard(query.cache_key)  # this one leaves
    assert cache.serves(query.cache_key, payload, again) == -1
    assert cache.tally.counts()["hits"] == hits + 2


def test_serves_refuses_at_once_after_a_bump_on_this_host_or_when_a_sync_is_due(clean_cache):
    query = ResultQuery("fib", 15)
    cache = clean_cache
    cache.set(query, Payload.from_text(query, "610"))
    payload = cache.get(query)
    checked = cache.serves(query.cache_key, payload, -1)
    assert checked >= 0
    ResultCache().evictions.bump_host()  # another worker of this host evicted something
    assert cache.serves(query.cache_key, payload, checked) == -1
    assert cache.get(query) is not MISSING  # from Redis again: the tier is refilled
    payload = cache.get(query)
    checked = cache.serves(query.cache_key, payload, -1)
    assert checked >= 0
    sync_due = cache.evictions.clock() + cache.evictions.sync_seconds() + 1
    cache.evictions.clock = lambda: sync_due
    assert cache.serves(query.cache_key, payload, checked) == -1


# --- an eviction that arrives while a read of the same key is in flight ----------------


class PausedOpen:
    """An ``EntrySeal`` whose first ``open`` waits for the test: the point of a read
    between Redis's reply and the in-process fill (``ResultCache._accept``)."""

    def __init__(self, seal: EntrySeal) -> None:
        self.seal = seal
        self.reached, self.go = threading.Event(), threading.Event()

    def open(self, full_key: str, entry: bytes, **options: Any) -> bytes:
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(10), "the test never let the read go on"
        return self.seal.open(full_key, entry, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.seal, name)


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["this host", "another host"])
def test_an_eviction_during_a_read_leaves_no_old_value_in_the_tier(clean_cache, settings, where):
    """The read got the value from Redis; the eviction (DEL, then the generation's and the
    host counter's bumps) lands before it fills the tier, and another request of the same
    process hears of it meanwhile (emptying the tier). The fill must not put the value back:
    that request has used up the signal, so nothing would empty the tier again and the
    process would serve the evicted value until its LRU drops it.

    On this host the signal is the shared-memory counter; from another host, the Redis
    generation at the next periodic sync (the reader's clock is stepped to it).
    """
    clock = FakeClock()
    evictor, reader = PointedCache(clock=clock), PointedCache(clock=clock)
    if where == "another host":
        reader.evictions.host_name += "|another host"  # before its first use maps the counter
    query = ResultQuery("fib", 14)
    evictor.set(query, Payload.from_text(query, "377"))
    evictor.delete(ResultQuery("fib", 15))  # a real generation to begin with
    paused = reader.seal = PausedOpen(reader.seal)

    read: list[Any] = []
    thread = threading.Thread(target=lambda: read.append(reader.find(query)))
    thread.start()
    try:
        assert paused.reached.wait(10)  # Redis answered "377"; the tier is not filled yet
        evictor.delete(query)
        clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
        assert reader.find(query) is MISSING  # another request hears of it: the tier emptied
    finally:
        paused.go.set()
        thread.join(10)
    assert not thread.is_alive()
    ((payload, tier),) = read
    assert (payload.text, tier) == ("377", Tier.REDIS)  # read before the eviction: fine
    assert reader.find(query) is MISSING  # but not kept: the eviction took effect


# --- a generation that is not one ------------------------------------------------------
# (``compute.services`` is imported in the tests: the processes that the first test
# spawns import this module before Django is set up, and the service needs its models.)


@pytest.mark.django_db
def test_issue_20_one_set_of_the_generation_no_longer_stops_the_service(
    redis_client, monkeypatch, settings, caplog
):
    """``SET <prefix>:{meta}:generation x``: half a second later every result request,
    hits included, answered 500 (``int(b'x')`` in ``adopt``, outside the breaker), on
    every worker, until someone deleted the key, while /readyz said ok."""
    from compute import services

    caplog.set_level(logging.WARNING, logger="compute.cache")
    clock = FakeClock()  # the process's cache syncs when this clock says it is due
    monkeypatch.setattr(result_cache.evictions, "clock", clock)
    client = Client()
    assert client.get("/api/fib/30/").json() == {"cached": False, "result": 832040, "n": 30}
    key = result_cache.make_key("{meta}:generation")
    redis_client.execute_command("SET", key, "x")
    before = malformed_count("generation")
    for _ in range(3):
        clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)  # the sync is due: it reads the junk
        response = client.get("/api/fib/30/")
        assert response.status_code == 200
        assert response.json() == {"cached": True, "result": 832040, "n": 30}
    assert malformed_count("generation") - before == 3  # every read counted
    warnings = [r.getMessage() for r in caplog.records if "malformed generation" in r.message]
    assert len(warnings) == 1  # logged once in this process
    assert result_cache.available  # not an outage: the breaker stayed closed
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    metrics = client.get("/metrics").content.decode()
    assert 'mathsite_cache_malformed_total{key="generation"}' in metrics

    # Recovery: the next eviction replaces the junk with a counter, read from then on.
    services.result_delete(query=ResultQuery("fib", 30))
    assert parse_counter(redis_client.get(key)) > 1_000  # a fresh random base, not 1
    counted = malformed_count("generation")
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert client.get("/api/fib/30/").json() == {"cached": False, "result": 832040, "n": 30}
    assert client.get("/api/fib/30/").json()["cached"] is True
    assert malformed_count("generation") == counted


@pytest.mark.django_db
@pytest.mark.parametrize("junk", JUNK, ids=junk_id)
def test_an_eviction_still_reaches_another_host_through_a_junk_generation(
    redis_client, settings, junk
):
    """The reader stands for a process on another host: no shared-memory counter in
    common with the writer, so only the Redis generation can tell it of the eviction."""
    from compute import services
    from tests.support.callers import SETUP

    clock = FakeClock()
    writer, reader = PointedCache(clock=clock), PointedCache(clock=clock)
    reader.evictions.host_name += "|another host"  # before its first use maps the counter
    query = ResultQuery("fib", 348)
    services.result_get(caller=SETUP, query=query, cache=writer)
    writer.delete(ResultQuery("fib", 349))  # a real generation to begin with
    assert reader.get(query) is not MISSING  # now in the reader's tier
    plant(redis_client, writer.evictions.generation_key, junk)
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    before = malformed_count("generation")
    assert reader.get(query).text == str(fib_reference(348))  # junk reads as "no generation"
    assert malformed_count("generation") - before == 1
    assert reader.get(query) is not MISSING  # served from its tier again
    services.result_delete(query=query, cache=writer)  # the bump resets the junk
    assert parse_counter(redis_client.get(writer.evictions.generation_key)) is not None
    assert malformed_count("generation") - before == 2
    assert reader.get(query) is not MISSING  # not synced yet: the bound, not at once
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert reader.get(query) is MISSING  # the eviction arrived
    assert reader.available and writer.available


@pytest.mark.django_db
def test_a_sync_reads_only_the_first_bytes_of_whatever_the_generation_holds(
    redis_client, settings, monkeypatch
):
    """Every process reads the generation twice a second: megabytes left under its key by
    a writer to the Redis must not be fetched each time (a counter has at most 18 digits)."""
    clock = FakeClock()
    cache = PointedCache(clock=clock)
    key = cache.evictions.generation_key
    read: list[Any] = []
    real = cache.evictions.read_value

    def seen(replies):
        read.append(replies[1])  # the value's bytes as they came back from Redis
        return real(replies)

    monkeypatch.setattr(cache.evictions, "read_value", seen)
    query = ResultQuery("fib", 347)
    cache.set(query, Payload.from_text(query, str(fib_reference(347))))
    cases = [
        (b"7" * 4_000_000, True),  # 4 MB of digits: longer than any counter
        (b"123456789012345678", False),  # the longest counter: read whole, well-formed
        (b"", True),  # an empty string is no missing key
    ]
    for value, malformed in cases:
        redis_client.set(key, value)
        before = malformed_count("generation")
        clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
        assert cache.get(query) is not MISSING
        assert len(read[-1]) <= 19 and read[-1] == value[:19]
        assert malformed_count("generation") - before == (1 if malformed else 0)
    redis_client.delete(key)
    before = malformed_count("generation")
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert cache.get(query) is not MISSING
    assert malformed_count("generation") == before  # missing: no generation yet, not junk
