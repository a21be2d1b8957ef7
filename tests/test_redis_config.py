"""The Redis topology configuration: one server, a cluster or Sentinel, chosen by variables.

Mirrors ``mathsite/redis_config.py``; start-up refusals run in a subprocess
with a controlled environment (settings are read once per process).
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from launcher.serve import redis_configured
from mathsite.redis_config import RedisTopology, parse_nodes
from tests.test_settings import PRODUCTION, run_django


def entry(**values):
    return RedisTopology(**values).cache_entry(prefix="p", version=1, ttl=None)


def test_one_server_is_django_redis_default_client():
    cache = entry(url="redis://10.0.0.5:6379/2")
    assert cache["LOCATION"] == "redis://10.0.0.5:6379/2"
    assert cache["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.DefaultClient"


def test_cluster_seed_nodes_become_the_location_of_the_cluster_client():
    cache = entry(cluster_nodes="10.0.0.1:7000, 10.0.0.2:7001", password="pw", tls=True)
    assert cache["LOCATION"] == "rediss://10.0.0.1:7000,rediss://10.0.0.2:7001"
    assert cache["OPTIONS"]["CLIENT_CLASS"] == "compute.cache.cluster.ClusterClient"
    assert cache["OPTIONS"]["PASSWORD"] == "pw"


def test_sentinel_uses_django_redis_sentinel_client_and_factory():
    cache = entry(
        sentinels="10.0.0.1:26379,10.0.0.2:26379",
        sentinel_master="main",
        username="app",
        sentinel_password="spw",
    )
    options = cache["OPTIONS"]
    assert cache["LOCATION"] == "redis://main/0"
    assert options["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["SENTINELS"] == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert options["SENTINEL_KWARGS"]["password"] == "spw"
    assert options["USERNAME"] == "app"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "redis://x/0", "cluster_nodes": "a:1"}, "REDIS_URL and REDIS_CLUSTER_NODES"),
        ({"url": "redis://x/0", "sentinels": "a:1"}, "REDIS_URL and REDIS_SENTINELS"),
        ({"sentinels": "a:1"}, "REDIS_SENTINEL_MASTER"),
        ({"cluster_nodes": "a:b"}, "host:port"),
        ({"cluster_nodes": " , "}, "REDIS_CLUSTER_NODES is empty"),
    ],
)
def test_bad_configurations_name_what_to_set(values, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        entry(**values)


def test_ipv6_seed_nodes():
    assert parse_nodes("X", "[::1]:7000") == [("::1", 7000)]
    assert entry(cluster_nodes="[::1]:7000")["LOCATION"] == "redis://[::1]:7000"


def test_settings_refuse_two_topologies_at_start_up(tmp_path):
    env = {**PRODUCTION, "REDIS_CLUSTER_NODES": "127.0.0.1:7000"}
    done = run_django(tmp_path, env, "check")
    assert done.returncode != 0
    assert "REDIS_URL and REDIS_CLUSTER_NODES are both set" in done.stderr


def test_make_run_starts_no_embedded_redis_when_a_topology_is_configured():
    assert not redis_configured({})
    assert redis_configured({"REDIS_CLUSTER_NODES": "10.0.0.1:7000"})
    assert redis_configured({"REDIS_SENTINELS": "10.0.0.1:26379"})
    assert redis_configured({"REDIS_URL": "redis://x/0"})
