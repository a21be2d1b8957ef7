"""The per-host eviction counter: shared by processes, instant for the local tier."""

from __future__ import annotations

import multiprocessing

import pytest

from compute.cache import MISSING, ResultCache
from compute.cache.host_counter import HostCounter, private_folder
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.caches import PointedCache, backend_at
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
    here: once). The old design read the generation with every lookup.
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
        assert stats["cmdstat_get"]["calls"] == 500 + 1
        assert client.info("stats")["keyspace_hits"] == 500 + 1
    finally:
        server.stop()


@pytest.mark.django_db
def test_still_holds_is_true_exactly_while_get_would_serve_that_payload_from_the_tier(
    clean_cache,
):
    """What the front's kept answers rely on (``ResultCache.still_holds``)."""
    query = ResultQuery("fib", 13)
    cache = clean_cache
    cache.set(query, Payload.from_text(query, "233"))
    payload = cache.get(query)
    assert payload is not MISSING
    hits = cache.tally._counts["hits"]
    assert cache.still_holds(query, payload) is True
    assert cache.tally._counts["hits"] == hits + 1  # counted as the lookup would
    assert cache.still_holds(query, Payload.from_text(query, "233")) is False  # another object

    other = ResultCache()  # another worker of this host evicts it
    other.delete(query)
    assert cache.still_holds(query, payload) is False
    assert cache.tally._counts["hits"] == hits + 1  # nothing counted

    cache.set(query, Payload.from_text(query, "233"))
    again = cache.get(query)
    assert cache.still_holds(query, again) is True
    sync_due = cache.evictions.clock() + cache.evictions.sync_seconds() + 1
    cache.evictions.clock = lambda: sync_due  # the periodic sync is due: ask Redis first
    assert cache.still_holds(query, again) is False
