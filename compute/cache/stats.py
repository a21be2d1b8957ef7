"""Cache statistics: a per-process tally of hits and fills, and the namespace's figures.

Each process counts hits (lookups a cache tier answered) and fills (entries
stored after a miss) in memory and adds them to a hash in Redis at most
once every ``flush_seconds``, queued on a round trip the process makes
anyway: statistics never cost a round trip of their own. A process's last
second of counts is lost when it exits unless it calls the cache's
``flush_stats`` (management commands do).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

# How often a process adds its tallied hits and fills to the shared hash.
STATS_FLUSH_SECONDS = 1.0
FIELDS = ("hits", "fills")


class StatsTally:
    """This process's pending hit and fill counts, flushed to ``key`` on queued pipelines."""

    def __init__(
        self,
        *,
        key: str,
        clock: Callable[[], float] = time.monotonic,
        flush_seconds: float = STATS_FLUSH_SECONDS,
    ) -> None:
        self.key = key
        self.clock = clock
        self.flush_seconds = flush_seconds
        self._counts = dict.fromkeys(FIELDS, 0)
        self._guard = threading.Lock()
        self._flushed_at = float("-inf")

    def add(self, field: str) -> None:
        """Count one ``field`` ("hits" or "fills")."""
        with self._guard:
            self._counts[field] += 1

    @property
    def pending(self) -> bool:
        """Return True if some counts have not been sent yet."""
        with self._guard:
            return any(self._counts.values())

    def queue(self, pipe: Any, *, force: bool = False) -> None:
        """Queue the pending counts on ``pipe`` if a flush is due (or ``force``).

        Counts handed to a pipeline that then fails are lost: statistics are
        best effort.
        """
        now = self.clock()
        if not force and now - self._flushed_at < self.flush_seconds:
            return
        with self._guard:
            pending = {k: v for k, v in self._counts.items() if v}
            self._counts = dict.fromkeys(FIELDS, 0)
        self._flushed_at = now
        if not pending:
            return
        pipe.hsetnx(self.key, "since", int(time.time()))
        for field, count in pending.items():
            pipe.hincrby(self.key, field, count)

    def discard(self) -> None:
        """Forget the pending counts (the namespace was cleared)."""
        with self._guard:
            self._counts = dict.fromkeys(FIELDS, 0)


def scan_namespace(client: redis.Redis, namespace: str) -> Iterator[bytes]:
    """Yield every key starting with ``namespace`` (SCAN, not KEYS; the prefix taken literally).

    On a cluster redis-py's ``scan_iter`` walks every master in turn.
    """
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", namespace) + "*"
    yield from client.scan_iter(match=pattern, count=1000)


def delete_each(client: redis.Redis, keys: list[bytes]) -> int:
    """Delete ``keys`` with one single-key DEL each, pipelined; return how many existed.

    Slot-safe on a cluster (redis-py sends each DEL to its key's shard).
    """
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    return sum(pipe.execute())


def server_info(client: redis.Redis, section: str) -> dict[str, Any]:
    """Return INFO ``section``; on a cluster, every master's figures added up.

    Numbers are summed over the masters (memory, hits, evictions); other
    fields (the memory policy, the human-readable size) are the first
    master's, so a cluster's ``used_memory_human`` is recomputed by the caller.
    """
    if not isinstance(client, redis.RedisCluster):
        return client.info(section)
    per_node = client.info(section, target_nodes=redis.RedisCluster.PRIMARIES)
    merged: dict[str, Any] = {}
    for info in per_node.values():
        for field, value in info.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                merged[field] = merged.get(field, 0) + value
            else:
                merged.setdefault(field, value)
    return merged


def _human(size: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.2f}{unit}" if unit != "B" else f"{size}B"
        size /= 1024
    return f"{size}"


def namespace_stats(client: redis.Redis, *, namespace: str, stats_key: str) -> dict[str, Any]:
    """Return the namespace's entries (by kind), their size, hit ratio and Redis memory.

    ``hits`` and ``fills`` are the tallies every process has flushed since
    ``since``. Raise a Redis error if Redis is unreachable.
    """
    prefix = namespace.encode()
    by_kind: dict[str, int] = {}
    other = 0
    stored_bytes = 0
    batch: list[bytes] = []

    def measure() -> int:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.strlen(key)
        return sum(pipe.execute())

    for key in scan_namespace(client, namespace):
        kind = key[len(prefix) :].split(b":", 1)[0].decode("ascii", "replace")
        if kind in ("pi", "fib"):
            by_kind[kind] = by_kind.get(kind, 0) + 1
            batch.append(key)
            if len(batch) >= 1000:
                stored_bytes += measure()
                batch.clear()
        else:
            other += 1
    if batch:
        stored_bytes += measure()
    tally = {k.decode(): int(v) for k, v in client.hgetall(stats_key).items()}
    hits, fills = tally.get("hits", 0), tally.get("fills", 0)
    memory = server_info(client, "memory")
    server = server_info(client, "stats")
    if isinstance(client, redis.RedisCluster):
        memory["used_memory_human"] = _human(memory.get("used_memory", 0))
    return {
        "namespace": namespace,
        "entries": sum(by_kind.values()),
        "entries_by_kind": dict(sorted(by_kind.items())),
        "other_keys": other,
        "stored_bytes": stored_bytes,
        "hits": hits,
        "fills": fills,
        "hit_ratio": (hits / (hits + fills)) if hits + fills else None,
        "since": tally.get("since"),
        "used_memory": memory.get("used_memory"),
        "used_memory_human": memory.get("used_memory_human"),
        "maxmemory": memory.get("maxmemory"),
        "maxmemory_policy": memory.get("maxmemory_policy"),
        "keyspace_hits": server.get("keyspace_hits", 0),
        "keyspace_misses": server.get("keyspace_misses", 0),
        "evicted_keys": server.get("evicted_keys", 0),
    }
