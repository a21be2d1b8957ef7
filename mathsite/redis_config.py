"""The ``CACHES`` entry for each Redis topology: one server, a Redis Cluster, or Sentinel.

``mathsite/settings.py`` reads the environment and hands the values here;
this module only turns them into django-redis options, so the tests can
build the configuration of a topology they started themselves exactly as
production would::

    topology = RedisTopology(cluster_nodes="10.0.0.1:7000,10.0.0.2:7000", password="s3cret")
    CACHES = {"default": topology.cache_entry(prefix="mathsite", version=1, ttl=None)}

- one server: django-redis's ``DefaultClient`` on ``REDIS_URL``;
- a cluster: ``compute.cache.cluster.ClusterClient`` (a ``DefaultClient`` on
  ``redis.cluster.RedisCluster``), its ``LOCATION`` the seed nodes;
- Sentinel: django-redis's ``SentinelClient`` and ``SentinelConnectionFactory``,
  ``LOCATION`` naming the monitored master.

Setting more than one of ``REDIS_URL``, ``REDIS_CLUSTER_NODES`` and
``REDIS_SENTINELS`` raises ``ImproperlyConfigured`` naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

SERIALIZER = "compute.cache.serializer.TaggedSerializer"


def parse_nodes(name: str, value: str) -> list[tuple[str, int]]:
    """Return ``host:port,host:port`` as (host, port) pairs; raise ImproperlyConfigured if bad."""
    nodes = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"{name}={value!r}: set it to comma-separated host:port pairs "
                "(e.g. 10.0.0.1:7000,10.0.0.2:7000)."
            )
        nodes.append((host, int(port)))
    if not nodes:
        raise ImproperlyConfigured(f"{name} is empty: set it to comma-separated host:port pairs.")
    return nodes


@dataclass(frozen=True)
class RedisTopology:
    """Where Redis is and how to log in: one of ``url``, ``cluster_nodes``, ``sentinels``."""

    url: str = ""
    cluster_nodes: str = ""
    sentinels: str = ""
    sentinel_master: str = ""
    username: str = ""
    password: str = ""
    sentinel_password: str = ""
    tls: bool = False
    socket_timeout: float = 0.25
    connect_timeout: float = 0.25
    max_connections: int = 64

    @property
    def kind(self) -> str:
        """Return "cluster", "sentinel" or "single"; raise ImproperlyConfigured if ambiguous."""
        named = [
            name
            for name, value in (
                ("REDIS_URL", self.url),
                ("REDIS_CLUSTER_NODES", self.cluster_nodes),
                ("REDIS_SENTINELS", self.sentinels),
            )
            if value
        ]
        if len(named) > 1:
            raise ImproperlyConfigured(
                f"{' and '.join(named)} are {'both' if len(named) == 2 else 'all'} set: "
                "set only one of them "
                "(REDIS_URL for one server, REDIS_CLUSTER_NODES for a cluster, "
                "REDIS_SENTINELS with REDIS_SENTINEL_MASTER for Sentinel)."
            )
        if self.sentinels and not self.sentinel_master:
            raise ImproperlyConfigured(
                "REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER: set it to the "
                "name of the master the sentinels monitor (e.g. mymaster)."
            )
        if self.cluster_nodes:
            return "cluster"
        if self.sentinels:
            return "sentinel"
        return "single"

    def cache_entry(self, *, prefix: str, version: int, ttl: int | None) -> dict[str, Any]:
        """Return the ``CACHES["default"]`` dict for this topology."""
        options: dict[str, Any] = {
            "SERIALIZER": SERIALIZER,
            "SOCKET_CONNECT_TIMEOUT": self.connect_timeout,
            "SOCKET_TIMEOUT": self.socket_timeout,
        }
        # Short timeouts and no retries: a dead or paused Redis costs a request
        # at most one timeout; compute.cache.breaker then skips Redis a while.
        pool = {"max_connections": self.max_connections}
        if self.username:
            options["USERNAME"] = self.username
        if self.password:
            options["PASSWORD"] = self.password
        kind = self.kind
        if kind == "cluster":
            scheme = "rediss" if self.tls else "redis"
            nodes = parse_nodes("REDIS_CLUSTER_NODES", self.cluster_nodes)
            location = ",".join(f"{scheme}://{_host(h)}:{p}" for h, p in nodes)
            options["CLIENT_CLASS"] = "compute.cache.cluster.ClusterClient"
            options["CONNECTION_POOL_KWARGS"] = pool
        elif kind == "sentinel":
            sentinels = parse_nodes("REDIS_SENTINELS", self.sentinels)
            scheme = "rediss" if self.tls else "redis"
            location = f"{scheme}://{quote(self.sentinel_master, safe='')}/0"
            options["CLIENT_CLASS"] = "django_redis.client.SentinelClient"
            options["CONNECTION_FACTORY"] = "django_redis.pool.SentinelConnectionFactory"
            options["SENTINELS"] = sentinels
            sentinel_kwargs: dict[str, Any] = {
                "socket_timeout": self.socket_timeout,
                "socket_connect_timeout": self.connect_timeout,
                "retry": Retry(NoBackoff(), 0),
            }
            if self.sentinel_password:
                sentinel_kwargs["password"] = self.sentinel_password
            if self.tls:
                sentinel_kwargs["ssl"] = True
            options["SENTINEL_KWARGS"] = sentinel_kwargs
            options["CONNECTION_POOL_KWARGS"] = {**pool, "retry": Retry(NoBackoff(), 0)}
        else:
            location = self.url
            options["CLIENT_CLASS"] = "django_redis.client.DefaultClient"
            options["CONNECTION_POOL_KWARGS"] = {**pool, "retry": Retry(NoBackoff(), 0)}
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
            "VERSION": version,
            "TIMEOUT": ttl,
            "OPTIONS": options,
        }


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
