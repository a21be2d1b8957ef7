"""Cache statistics: a per-process tally of hits and fills, and the namespace's figures.

Each process counts hits (lookups a cache tier answered) and fills (entries
stored after a miss) in memory and adds them to a hash in Redis at most
once every ``flush_seconds``, queued on a round trip the process makes
anyway: statistics never cost a round trip of their own. A process's last
second of counts is lost when it exits unless it calls the cache's
``flush_stats`` (management commands do).

``namespace_stats`` reports what the namespace holds at a cost that does
not grow with it: exact by a scan while the database is small, estimated
from a bounded random sample (and labelled so) once it is large. Counters
maintained on set and delete would drift anyway: LRU eviction and TTLs
remove keys behind the application's back.

The hash is shared with whoever else can write to the Redis, so it is
read with care (``compute.cache.values``): another type under its key,
or a field that is not a well-formed count, reads as no figure (reported
once, counted) rather than failing the page or the command. The flush
stays plain ``HSETNX`` and ``HINCRBY`` on a pipeline (a cluster's pipeline
runs no scripts); when Redis refuses them because of junk, or a reader
finds some, one script (``repair_tally``) removes it and adds the counts
that were refused.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from compute.cache.values import (
    LUA_COUNTERS,
    STATS,
    MalformedValue,
    MalformedValues,
    execute,
    parse_counter,
    returning_data_errors,
)
from compute.domain.kinds import registry

# How often a process adds its tallied hits and fills to the shared hash.
STATS_FLUSH_SECONDS = 1.0
FIELDS = ("hits", "fills")
# What the statistics read of the hash: the counts, and since when they count.
TALLY_FIELDS = (*FIELDS, "since")
# The latest "since" a reader accepts: 9999-12-31 23:59:59 UTC, where datetime ends.
LATEST_SINCE = 253_402_300_799

# KEYS[1]: the statistics hash. ARGV: now (the "since" of a new hash), LATEST_SINCE,
# then a field and its count (possibly 0) for each of FIELDS. Removes junk first
# (another type under the key, a field that is not a well-formed count), so HINCRBY
# never meets a value it refuses; returns 1 if there was any.
_REPAIR = (
    LUA_COUNTERS
    + """
local reset = 0
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'hash' then
  local since = redis.call('HGET', KEYS[1], 'since')
  if since and not (is_counter(since) and tonumber(since) <= tonumber(ARGV[2])) then
    redis.call('HDEL', KEYS[1], 'since')
    reset = 1
  end
  for i = 3, #ARGV, 2 do
    local count = redis.call('HGET', KEYS[1], ARGV[i])
    if count and not is_counter(count) then
      redis.call('HDEL', KEYS[1], ARGV[i])
      reset = 1
    end
  end
elseif kind ~= 'none' then
  redis.call('DEL', KEYS[1])
  reset = 1
end
redis.call('HSETNX', KEYS[1], 'since', ARGV[1])
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return reset
"""
)


class StatsTally:
    """This process's pending hit and fill counts, flushed to ``key`` on queued pipelines."""

    def __init__(
        self,
        *,
        key: str,
        malformed: MalformedValues,
        clock: Callable[[], float] = time.monotonic,
        flush_seconds: float = STATS_FLUSH_SECONDS,
    ) -> None:
        self.key = key
        self.malformed = malformed
        self.clock = clock
        self.flush_seconds = flush_seconds
        self._counts = dict.fromkeys(FIELDS, 0)
        self._guard = threading.Lock()
        self._flushed_at = float("-inf")
        # One hit at a time is counted without the lock: ``next`` on a count
        # is one atomic step under the GIL, and every call takes a number of
        # its own. ``_take_hits`` (under the lock) takes one too; the numbers
        # between its own and the one the last take got were hits.
        self._hit_numbers = itertools.count()
        self._last_taken = next(self._hit_numbers)

    def add(self, field: str, count: int = 1) -> None:
        """Count ``count`` (default one) ``field`` ("hits" or "fills")."""
        with self._guard:
            self._counts[field] += count

    def add_hit(self) -> None:
        """Count one hit (``add("hits")`` without a lock: a cached hit's path)."""
        next(self._hit_numbers)

    def _take_hits(self) -> None:
        """Move the hits ``add_hit`` counted into the counts (hold the lock)."""
        taken = next(self._hit_numbers)
        self._counts["hits"] += taken - self._last_taken - 1
        self._last_taken = taken

    def take(self) -> dict[str, int]:
        """Return the counts not sent yet (the fields that are not 0) and start again from 0."""
        with self._guard:
            self._take_hits()
            pending = {k: v for k, v in self._counts.items() if v}
            self._counts = dict.fromkeys(FIELDS, 0)
        return pending

    def counts(self) -> dict[str, int]:
        """Return the counts not sent yet, by field (a copy)."""
        with self._guard:
            self._take_hits()
            return dict(self._counts)

    @property
    def pending(self) -> bool:
        """Return True if some counts have not been sent yet."""
        with self._guard:
            self._take_hits()
            return any(self._counts.values())

    def queue(self, pipe: Any, *, force: bool = False) -> dict[str, int] | None:
        """Queue the pending counts on ``pipe`` if a flush is due (or ``force``).

        Return the counts queued (the pipeline's last commands: ``HSETNX``
        of "since", then one ``HINCRBY`` per count), to hand to ``settle``
        with the pipeline's replies; None if nothing was queued. Counts
        handed to a pipeline that then fails are lost: statistics are best
        effort.
        """
        now = self.clock()
        if not force and now - self._flushed_at < self.flush_seconds:
            return None
        pending = self.take()
        self._flushed_at = now
        if not pending:
            return None
        pipe.hsetnx(self.key, "since", int(time.time()))
        for field, count in pending.items():
            pipe.hincrby(self.key, field, count)
        return pending

    def settle(self, queued: dict[str, int] | None, replies: list[Any], client: Any) -> None:
        """Check the replies (``values.execute``'s) to what ``queue`` queued.

        Redis refused them only if the hash held junk: report it, then
        remove it and add the refused counts in one script.
        """
        if queued is None:
            return
        since, *added = replies[-1 - len(queued) :]
        errors = [reply for reply in (since, *added) if isinstance(reply, BaseException)]
        if not errors:
            return
        self.malformed.report(STATS, self.key, errors[0])
        refused = {
            field: count
            for (field, count), reply in zip(queued.items(), added, strict=True)
            if isinstance(reply, BaseException)
        }
        repair_tally(client, self.key, refused)

    def discard(self) -> None:
        """Forget the pending counts (the namespace was cleared)."""
        self.take()


def repair_tally(client: redis.Redis, key: str, counts: dict[str, int] | None = None) -> bool:
    """Remove junk from the statistics hash ``key`` and add ``counts``; True if there was junk.

    One script on one key (slot-safe), run outside any pipeline: the rare path.
    """
    counts = counts or {}
    pairs = [item for field in FIELDS for item in (field, counts.get(field, 0))]
    return bool(client.eval(_REPAIR, 1, key, int(time.time()), LATEST_SINCE, *pairs))


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


# The fields of ``namespace_stats`` that are estimates when Redis is large.
ESTIMATED_FIELDS = ("entries", "entries_by_kind", "other_keys", "stored_bytes", "memory_bytes")
# Keys measured with MEMORY USAGE (its cost grows with a value's size).
MEMORY_SAMPLE_KEYS = 200


def namespace_stats(
    client: redis.Redis,
    *,
    namespace: str,
    stats_key: str,
    exact_max_keys: int,
    sample_keys: int,
    malformed: MalformedValues,
) -> dict[str, Any]:
    """Return the namespace's entries (by kind), their size, hit ratio and Redis memory.

    The cost does not grow with what Redis holds: a database of at most
    ``exact_max_keys`` keys (DBSIZE) is scanned and every figure is exact;
    a larger one is estimated from ``sample_keys`` RANDOMKEY draws (one
    pipeline) times DBSIZE, and ``estimated`` names the fields that are
    estimates (``entries_margin``: half the width of a 95% interval of
    ``entries``). Keys of other prefixes in the same database are counted
    only as the database's size, never as ours. ``hits`` and ``fills`` are
    exact: the tallies every process has flushed since ``since``; junk in
    their hash reads as no figure (reported to ``malformed``). Raise a
    Redis error if Redis is unreachable.
    """
    dbsize = client.dbsize()
    if dbsize <= exact_max_keys:
        keys = list(scan_namespace(client, namespace))
        figures = _measure(client, keys, namespace=namespace, scale=1.0)
        figures.update(
            estimated=[],
            entries_margin=0,
            method=f"exact: every key of the database scanned ({dbsize:,} keys)",
        )
    else:
        pipe = client.pipeline(transaction=False)
        for _ in range(sample_keys):
            pipe.randomkey()
        drawn = [key for key in pipe.execute() if key is not None]
        prefix = namespace.encode()
        ours = [key for key in drawn if key.startswith(prefix)]
        figures = _measure(client, ours, namespace=namespace, scale=dbsize / max(len(drawn), 1))
        # Agresti-Coull: a 95% margin that does not collapse to 0 when every
        # draw (or none) is ours, as the plain binomial one would.
        share = (figures["entries"] * len(drawn) / dbsize + 2) / (len(drawn) + 4)
        margin = 1.96 * math.sqrt(share * (1 - share) / (len(drawn) + 4)) * dbsize
        figures.update(
            estimated=list(ESTIMATED_FIELDS),
            entries_margin=round(margin),
            method=(
                f"estimate: {len(drawn):,} random keys of the database's {dbsize:,} "
                f"(RANDOMKEY x DBSIZE), {len(ours):,} of them in this namespace"
            ),
        )
    tally, junk = read_tally(
        returning_data_errors(lambda: client.hmget(stats_key, TALLY_FIELDS)), stats_key, malformed
    )
    if junk:  # removed now rather than met by the next flush
        repair_tally(client, stats_key)
    hits, fills = tally["hits"] or 0, tally["fills"] or 0
    memory = server_info(client, "memory")
    server = server_info(client, "stats")
    if isinstance(client, redis.RedisCluster):
        memory["used_memory_human"] = _human(memory.get("used_memory", 0))
    figures.update(
        {
            "namespace": namespace,
            "dbsize": dbsize,
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
    )
    return figures


def read_tally(
    raw: Any, key: str, malformed: MalformedValues
) -> tuple[dict[str, int | None], bool]:
    """Return ``hits``, ``fills`` and ``since`` of the statistics hash, and whether any of it
    was junk.

    ``raw`` is the ``HMGET`` reply for ``TALLY_FIELDS``: only those fields
    are read, so fields that a writer to the Redis added to the hash, however
    many, cost nothing. Each is None when absent or malformed (reported); a
    data error in place of the reply (the key is not a hash) makes them all
    None.
    """
    if isinstance(raw, BaseException):
        malformed.report(STATS, key, raw)
        return dict.fromkeys(TALLY_FIELDS), True
    values = dict(zip(TALLY_FIELDS, raw, strict=True))
    tally: dict[str, int | None] = {}
    junk = False
    for field, maximum in (*((f, None) for f in FIELDS), ("since", LATEST_SINCE)):
        try:
            tally[field] = parse_counter(values[field], maximum=maximum)
        except MalformedValue as bad:
            malformed.report(STATS, key, f"{field}: {bad}")
            tally[field], junk = None, True
    return tally, junk


def _measure(client: redis.Redis, keys: list[bytes], *, namespace: str, scale: float) -> dict:
    """Count ``keys`` (of ``namespace``) by kind and measure the results among them.

    Each count and size is multiplied by ``scale`` (1 for a full scan,
    DBSIZE / draws for a sample). Sizes are STRLEN (the stored bytes) of
    every result key and MEMORY USAGE (what Redis spends on it) of at most
    ``MEMORY_SAMPLE_KEYS`` of them, extrapolated to the rest.
    """
    prefix = len(namespace.encode())
    by_kind = dict.fromkeys(sorted(registry.names()), 0)
    results: list[bytes] = []
    other = 0
    for key in keys:
        kind = key[prefix:].split(b":", 1)[0].decode("ascii", "replace")
        if kind in by_kind:
            by_kind[kind] += 1
            results.append(key)
        else:
            other += 1
    stored = memory = 0
    memory_sample = results[:: max(1, math.ceil(len(results) / MEMORY_SAMPLE_KEYS))]
    for start in range(0, len(results), 1000):
        pipe = client.pipeline(transaction=False)
        for key in results[start : start + 1000]:
            pipe.strlen(key)
        # A result key of another type (junk) has no length here; its read discards it.
        stored += sum(size for size in execute(pipe) if isinstance(size, int))
    if memory_sample:
        pipe = client.pipeline(transaction=False)
        for key in memory_sample:
            pipe.memory_usage(key, samples=0)
        sizes = [size for size in pipe.execute() if size is not None]
        memory = sum(sizes) * len(results) / len(memory_sample)
    return {
        "entries": round(len(results) * scale),
        "entries_by_kind": {kind: round(count * scale) for kind, count in by_kind.items() if count},
        "other_keys": round(other * scale),
        "stored_bytes": round(stored * scale),
        "memory_bytes": round(memory * scale),
    }
