"""django-redis on a Redis Cluster: a ``DefaultClient`` whose raw client is ``RedisCluster``.

django-redis has no cluster client (its issues #208, #606, #710: a plain
``redis.Redis`` on a cluster node answers ``MOVED`` for other slots). This
class keeps everything of ``DefaultClient`` (serializer, compressor, the
backend's ``make_key``) and replaces only how the raw client is made:
``LOCATION`` lists the seed nodes (``redis://h1:p1,redis://h2:p2``; TLS
with ``rediss://``) and one ``redis.cluster.RedisCluster`` on all of them
is the client for every index, so reads and writes alike follow the
cluster's slot map (refreshed by redis-py on ``MOVED`` and after a node
fails). Plugged in through the documented ``OPTIONS["CLIENT_CLASS"]``::

    "OPTIONS": {"CLIENT_CLASS": "compute.cache.cluster.ClusterClient", ...}

redis-py refuses a ``retry`` in a cluster's per-node keyword arguments
(each node connection never retries); the cluster-level retry is set to
none here, so a dead master costs one failed call and the breaker
(``compute.cache.breaker``) takes over, instead of seconds of backoff.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

from django_redis.client import DefaultClient
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry


class ClusterClient(DefaultClient):
    """A django-redis client on one ``RedisCluster`` built from every seed node of LOCATION."""

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        super().__init__(server, params, backend)
        self._cluster: RedisCluster | None = None
        self._cluster_guard = threading.Lock()

    def get_next_client_index(self, write: bool = True, tried: list[int] | None = None) -> int:
        """Return 0: the seed nodes are not replicas to choose from, one client covers them."""
        return 0

    def connect(self, index: int = 0) -> RedisCluster:
        """Return the process's ``RedisCluster`` on the seed nodes (made on first use)."""
        with self._cluster_guard:
            if self._cluster is None:
                self._cluster = make_cluster(self._server, self._options)
            return self._cluster

    def disconnect(self, index: int = 0, client: Any = None) -> None:
        """Close every node's connections (django-redis's factory expects one pool)."""
        with self._cluster_guard:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()


def make_cluster(seeds: list[str], options: dict[str, Any]) -> RedisCluster:
    """Return a ``RedisCluster`` on the seed URLs with django-redis's ``OPTIONS``."""
    parsed = [urlparse(seed.strip()) for seed in seeds if seed.strip()]
    nodes = [ClusterNode(url.hostname, url.port or 6379) for url in parsed]
    kwargs: dict[str, Any] = {
        "socket_timeout": options.get("SOCKET_TIMEOUT"),
        "socket_connect_timeout": options.get("SOCKET_CONNECT_TIMEOUT"),
        "ssl": any(url.scheme == "rediss" for url in parsed),
    }
    if options.get("USERNAME"):
        kwargs["username"] = options["USERNAME"]
    if options.get("PASSWORD"):
        kwargs["password"] = options["PASSWORD"]
    pool = dict(options.get("CONNECTION_POOL_KWARGS", {}))
    pool.pop("retry", None)  # not allowed per node on a cluster (see the module's docstring)
    kwargs.update(pool)
    return RedisCluster(
        startup_nodes=nodes,
        retry=Retry(NoBackoff(), 0),
        # Serve the slots that still have a master while one fails over.
        require_full_coverage=False,
        **kwargs,
    )
