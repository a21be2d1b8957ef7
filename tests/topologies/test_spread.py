"""Spread over a cluster: keys per master, and no key read by every request.

10,000 results are warmed on the cluster (3 masters); each master must hold
within 10 % of a third of them. Then a fresh process-level cache looks every
result up twice (20,000 hits: the first round from Redis, the second from its
in-process tier). Reads are counted by the servers themselves: each master's
``keyspace_hits`` (INFO stats, reset with CONFIG RESETSTAT before the
lookups) counts every read of an existing key on it. The results account
for exactly one read each (the test knows which master owns which key); the
rest are reads of other keys, chiefly the eviction generation, and must be
fewer than one per hundred hits, so no key is read by every request.
"""

from __future__ import annotations

import time

import pytest
import redis

from compute.cache import MISSING, ResultCache
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.topologies import ValkeyCluster

pytestmark = [pytest.mark.django_db, pytest.mark.topologies]

RESULTS = 10_000


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    cluster = ValkeyCluster(tmp_path_factory.mktemp("spread")).start()
    yield cluster
    cluster.stop()


def test_results_spread_evenly_and_no_key_is_read_by_every_hit(on_topology, topology, request):
    queries = [ResultQuery("fib", n) for n in range(RESULTS)]
    for query in queries:
        on_topology.set(query, Payload.from_text(query, str(fib_reference(query.n))))

    masters = {
        s.port: redis.Redis(port=s.port, socket_timeout=5) for s in topology.master_servers()
    }
    per_master = {
        port: sum(1 for _ in client.scan_iter(match=on_topology.namespace + "fib:*", count=1000))
        for port, client in masters.items()
    }
    assert sum(per_master.values()) == RESULTS
    even = RESULTS / len(masters)
    deviation = max(abs(count - even) / even for count in per_master.values())
    assert deviation <= 0.10, per_master

    for client in masters.values():
        client.config_resetstat()
    reader = ResultCache()
    started = time.monotonic()
    for _round in range(2):
        for query in queries:
            assert reader.get(query) is not MISSING
    elapsed = time.monotonic() - started
    hits = 2 * RESULTS
    reads = {port: client.info("stats")["keyspace_hits"] for port, client in masters.items()}
    other_reads = sum(reads.values()) - RESULTS  # each result was read from Redis once
    assert other_reads >= 0
    assert other_reads * 100 <= hits, (reads, other_reads)

    record(request, "cluster spread: results per master", sorted(per_master.values()))
    record(request, "cluster spread: worst deviation from even", round(100 * deviation, 1), "%")
    record(request, "cluster spread: reads per master during 20,000 hits", sorted(reads.values()))
    record(request, "cluster spread: reads of non-result keys", f"{other_reads} in {elapsed:.1f} s")
