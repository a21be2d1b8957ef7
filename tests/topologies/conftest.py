"""Fixtures of the topology tests: a cluster or a Sentinel set per module, the cache on it.

``topology`` is module-scoped and parametrized, so each module starts each
topology once (pytest orders a module's tests by parameter) and stops it
afterwards, also when a test fails. ``on_topology`` points the process's
cache at it (``CACHES`` built by ``mathsite.redis_config`` exactly as from
the environment, with a key prefix of the test's own) and clears that
namespace around the test.
"""

from __future__ import annotations

import uuid

import pytest

from compute.cache import result_cache
from tests.support.topologies import SentinelSet, ValkeyCluster

TOPOLOGIES = {"cluster": ValkeyCluster, "sentinel": SentinelSet}


@pytest.fixture(scope="module", params=sorted(TOPOLOGIES))
def topology(request, tmp_path_factory):
    started = TOPOLOGIES[request.param](tmp_path_factory.mktemp(request.param)).start()
    request.addfinalizer(started.stop)
    return started


@pytest.fixture
def on_topology(topology, settings):
    """The process's ``result_cache`` on ``topology``, in an empty namespace of its own."""
    settings.CACHES = {
        "default": topology.topology().cache_entry(
            prefix="topo-" + uuid.uuid4().hex[:8], version=1, ttl=None
        )
    }
    result_cache.reset()
    result_cache.clear_namespace()
    yield result_cache
    result_cache.reset()
    result_cache.clear_namespace()
    result_cache.evictions.host.path.unlink(missing_ok=True)
