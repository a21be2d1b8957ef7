"""The cache, its eviction broadcast, lock, counters, statistics and commands on each topology.

The same behaviour as on one server (``tests/cache``, ``tests/test_commands.py``),
checked on a Redis Cluster (keys on three masters) and on Sentinel. Values
are compared with ``fib_reference``, an independent computation; what Redis
holds is read with raw clients on each master, not through the code under test.
"""

from __future__ import annotations

import json
import threading
import time
from io import StringIO

import pytest
import redis
from django.core.management import call_command

from compute import services
from compute.cache import MISSING, ResultCache
from compute.cache.stats import STATS_FLUSH_SECONDS
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.caches import FakeClock, PointedCache
from tests.support.callers import SETUP
from tests.support.entries import MAC_BYTES
from tests.support.junk import junk_id, malformed_count, plant
from tests.support.reference import fib_reference

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.topologies]


def fib_query(n: int) -> ResultQuery:
    return ResultQuery("fib", n)


def raw_keys(topology, namespace: str) -> dict[int, set[bytes]]:
    """Return the namespace's keys on each master (port -> keys), read by plain clients."""
    masters = (
        topology.master_servers() if hasattr(topology, "master_servers") else [topology.master()]
    )
    found = {}
    for server in masters:
        client = redis.Redis(port=server.port, socket_timeout=2)
        found[server.port] = set(client.scan_iter(match=namespace + "*", count=1000))
    return found


def test_get_set_round_trip_with_the_reference_value(on_topology):
    for n in (0, 1, 90, 5_000):
        assert services.result_get(caller=SETUP, query=fib_query(n)).cached is False
    other = ResultCache()  # another process: nothing in its tier
    for n in (0, 1, 90, 5_000):
        payload = other.get(fib_query(n))
        assert payload is not MISSING
        assert payload.text == str(fib_reference(n))
        assert services.result_get(caller=SETUP, query=fib_query(n)).cached is True


def test_keys_land_on_every_master_of_a_cluster(on_topology, topology):
    for n in range(60):
        on_topology.set(fib_query(n), Payload.from_text(fib_query(n), str(fib_reference(n))))
    per_master = raw_keys(topology, on_topology.namespace)
    results = {k for keys in per_master.values() for k in keys if b":fib:" in k}
    assert len(results) == 60
    if topology.__class__.__name__ == "ValkeyCluster":
        assert all(sum(b":fib:" in k for k in keys) > 5 for keys in per_master.values())


def test_delete_reaches_redis_and_the_next_get_computes(on_topology):
    query = fib_query(77)
    services.result_get(caller=SETUP, query=query)
    assert services.result_get(caller=SETUP, query=query).cached is True
    services.result_delete(query=query)
    assert on_topology.get(query) is MISSING
    outcome = services.result_get(caller=SETUP, query=query)
    assert outcome.cached is False and outcome.payload.text == str(fib_reference(77))


def test_an_eviction_reaches_another_host_within_the_sync_interval(on_topology, settings):
    """The reader stands for a process on another host: only the Redis generation tells it."""
    clock = FakeClock()
    reader = PointedCache(clock=clock)
    reader.evictions.host_name += "|another-host"  # not this host's shared counter
    query = fib_query(346)
    services.result_get(caller=SETUP, query=query)
    assert reader.get(query) is not MISSING
    assert reader.get(query) is not MISSING  # from its tier now
    services.result_delete(query=query)
    assert reader.get(query) is not MISSING  # not synced yet: the bound is the interval
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert reader.get(query) is MISSING
    reader.evictions.host.path.unlink(missing_ok=True)


def test_a_namespace_clear_reaches_another_host(on_topology, settings):
    clock = FakeClock()
    reader = PointedCache(clock=clock)
    reader.evictions.host_name += "|another-host"
    query = fib_query(347)
    services.result_get(caller=SETUP, query=query)
    assert reader.get(query) is not MISSING
    call_command("clear_cache", stdout=StringIO())
    clock.advance(settings.LOCAL_CACHE_SYNC_SECONDS)
    assert reader.get(query) is MISSING
    reader.evictions.host.path.unlink(missing_ok=True)


def test_the_stampede_lock_lets_one_computation_through(on_topology):
    query = fib_query(4321)
    calls = []

    def slow_compute(q: ResultQuery) -> str:
        calls.append(q)
        time.sleep(0.3)
        return str(fib_reference(q.n))

    results = []

    def request() -> None:
        results.append(services.result_get(caller=SETUP, query=query, compute=slow_compute))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(calls) == 1
    assert len(results) == 8
    assert {r.payload.text for r in results} == {str(fib_reference(4321))}
    assert not any(b":lock:" in k for keys in raw_keys_of(on_topology) for k in keys)


def raw_keys_of(cache) -> list[set[bytes]]:
    client = cache.redis()
    return [set(client.scan_iter(match=cache.namespace + "*"))]


def test_throttle_counters_count_per_key_with_an_expiry(on_topology):
    for client in ("a", "b", "c", "d"):
        key = f"throttle:compute:{client}:0"
        assert [on_topology.count_hit(key, 60) for _ in range(3)] == [1, 2, 3]
        assert 0 < on_topology.redis().ttl(on_topology.make_key(key)) <= 61


def test_stats_count_every_master(on_topology, topology):
    for n in range(40):
        services.result_get(caller=SETUP, query=fib_query(n))
    for n in range(40):
        services.result_get(caller=SETUP, query=fib_query(n))
    on_topology.flush_stats()
    stats = on_topology.stats()
    assert stats["entries_by_kind"] == {"fib": 40}
    assert stats["stored_bytes"] == sum(  # each entry: its data and its MAC
        len(b"r" + str(fib_reference(n)).encode()) + MAC_BYTES for n in range(40)
    )
    assert stats["hits"] >= 40 and stats["fills"] == 40
    assert stats["used_memory"] > 0


def test_clear_cache_empties_the_namespace_on_every_master_only(on_topology, topology):
    for n in range(30):
        services.result_get(caller=SETUP, query=fib_query(n))
    neighbour = on_topology.redis()
    neighbour.set("neighbour:1:fib:3", b"r2")
    try:
        out = StringIO()
        call_command("clear_cache", stdout=out)
        left = [k for keys in raw_keys(topology, on_topology.namespace).values() for k in keys]
        assert left == [on_topology.make_key("{meta}:generation").encode()]
        assert neighbour.get("neighbour:1:fib:3") == b"r2"
    finally:
        neighbour.delete("neighbour:1:fib:3")


def test_warm_cache_fills_every_shard(on_topology, topology):
    out = StringIO()
    call_command("warm_cache", "fib", "0", "99", "--no-progress", stdout=out, stderr=StringIO())
    assert "Warmed 100 fib results" in out.getvalue()
    other = ResultCache()
    for n in range(100):
        assert other.get(fib_query(n)).text == str(fib_reference(n))


def test_readiness_and_the_stats_command(on_topology):
    assert on_topology.ping() == (True, "ok", "ok")
    for n in range(12):
        services.result_get(caller=SETUP, query=fib_query(n))
    out = StringIO()
    call_command("cache_stats", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["entries_by_kind"]["fib"] == 12


@pytest.mark.parametrize("junk", [b"x", "list"], ids=junk_id)
def test_junk_under_every_bookkeeping_key_is_read_with_care(on_topology, settings, junk):
    """The scripts that read those keys with care (``compute.cache.values``) run on
    every topology: each kind is reset or ignored, counted, and the breaker stays closed."""
    clock = FakeClock()
    cache = PointedCache(clock=clock)  # the same topology and namespace, a clock of its own
    query = fib_query(4330)
    services.result_get(caller=SETUP, query=query, cache=cache)
    client = cache.redis()
    keys = {
        "generation": cache.make_key("{meta}:generation"),
        "stats": cache.make_key("{meta}:stats"),
        "budget": cache.make_key(f"budget:203.0.113.5:{int(time.time() // 3600)}"),
        "throttle": cache.make_key("throttle:compute:203.0.113.5:1"),
        "lock": cache.lock_key(fib_query(4331)),
    }
    for key in keys.values():
        plant(client, key, junk)
    before = {kind: malformed_count(kind) for kind in keys}
    cache.tally.add("hits")
    clock.advance(max(settings.LOCAL_CACHE_SYNC_SECONDS, STATS_FLUSH_SECONDS))
    assert cache.get(query).text == str(fib_reference(4330))  # the sync: generation, stats
    budget = cache.budget.charge("203.0.113.5", 10, limit=100, window_seconds=3600)
    assert budget.allowed and budget.spent == 10  # counted afresh in Redis
    assert cache.count_hit("throttle:compute:203.0.113.5:1", 60) == 1
    started = time.monotonic()
    outcome = services.result_get(caller=SETUP, query=fib_query(4331), cache=cache)
    assert time.monotonic() - started < 1 and outcome.cached is False
    cache.delete(fib_query(4332))  # the bump resets the generation
    assert cache.available
    assert client.type(keys["stats"]) == b"hash"
    assert client.get(keys["generation"]).isdigit()
    assert client.get(keys["throttle"]) == b"1"
    for kind in keys:
        assert malformed_count(kind) > before[kind], kind
    cache.evictions.host.path.unlink(missing_ok=True)
