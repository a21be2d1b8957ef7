"""The result cache: the only module that talks to Django's cache and Redis.

Two tiers: a bounded in-process LRU (``LocalTier``) in front of Redis
(django-redis, configured in ``settings.CACHES``). Misses are the
``MISSING`` sentinel, never a falsy value, so 0 and 0.0 are cached like
anything else.

Redis failures are translated here, once: a connection error or timeout
opens a breaker for ``REDIS_BACKOFF_SECONDS`` during which Redis is not
tried at all (so a dead or paused server costs one short timeout, not one
per request), the outage is logged once, and the first success after it
is logged as the recovery. While Redis is unreachable every read is a
miss, writes are dropped, locks fall back to per-process locks and the
in-process tier is bypassed (its evictions could not be heard).

Evictions reach every process through a generation counter in Redis:
each process re-reads it at most every ``LOCAL_CACHE_SYNC_SECONDS`` before
serving from its own tier, and reads it in the same round trip as every
Redis lookup, so a deleted result stops being served everywhere within
that interval. The Redis counter starts from a random base and survives
a namespace clear, so a lost or cleared counter can never come back equal
to a value some process still holds. On one host the eviction is
immediate: a counter in shared memory (``HostGeneration``), checked before
every in-process hit, tells the other workers at once.

Statistics for ``cache_stats`` are tallied per process (hits: served by a
cache tier; fills: stored after a miss, from the log or a computation) and
added to a namespace hash at most once a second, in a round trip the
process makes anyway (a process's last second of counts is lost when it
exits, unless it calls ``flush_stats``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import secrets
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted

from compute import metrics
from compute.cache.host_counter import HostGeneration
from compute.cache.local import MISSING, LocalTier
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery

logger = logging.getLogger(__name__)

T = TypeVar("T")

REDIS_ERRORS = (redis.RedisError, ConnectionInterrupted, OSError)
_GENERATION_KEY = "meta:generation"
_STATS_KEY = "meta:stats"
# How often a process adds its tallied hits and fills to the shared hash.
STATS_FLUSH_SECONDS = 1.0
# What a raw (``b"r"``) stored literal may look like: a JSON number for a
# double or an integer, a quoted decimal for a pi with digits. Anything else
# is a malformed entry, never served.
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rb"0|[1-9][0-9]*")
_DECIMAL_STRING = re.compile(rb'"[0-9]+(?:\.[0-9]+)?"')

__all__ = ["MISSING", "ResultCache", "result_cache"]


class ResultCache:
    """Result payloads in a local tier and Redis, with a breaker around Redis."""

    cache_alias = "default"
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.local = LocalTier(settings.LOCAL_CACHE_MAX_BYTES)
        self._generation: int | None = None
        self._host_seen = 0
        self._synced_at = float("-inf")
        self._down_until = float("-inf")
        self._in_outage = False
        self._process_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._process_locks_guard = threading.Lock()
        self._outage_guard = threading.Lock()
        self._tally = {"hits": 0, "fills": 0}
        self._tally_guard = threading.Lock()
        self._tally_flushed_at = float("-inf")

    # --- plumbing -------------------------------------------------------------

    @property
    def backend(self) -> Any:
        """Return the django-redis cache backend."""
        return caches[self.cache_alias]

    def _client(self) -> redis.Redis:
        return self.backend.client.get_client(write=True)

    def _key(self, key: str) -> str:
        return self.backend.make_key(key)

    @functools.cached_property
    def host(self) -> HostGeneration:
        """Return this host's shared eviction counter for this Redis and namespace."""
        counter = HostGeneration.for_name(f"{self.backend._server}|{self.namespace}")
        self._host_seen = counter.read()
        return counter

    @property
    def namespace(self) -> str:
        """Return the prefix every key of this deployment starts with (``prefix:version:``)."""
        return self._key("")

    @property
    def available(self) -> bool:
        """Return False while the breaker is open after a Redis failure."""
        return self.clock() >= self._down_until

    def _call(self, operation: Callable[[], T], default: T) -> T:
        """Run a Redis operation through the breaker; return ``default`` on failure.

        ``operation`` must make a round trip: its success closes an outage.
        """
        if self.clock() < self._down_until:
            return default
        try:
            result = operation()
        except REDIS_ERRORS as exc:
            self._trip(exc)
            return default
        if self._in_outage:
            with self._outage_guard:
                recovered, self._in_outage = self._in_outage, False
            if recovered:
                logger.warning("Redis is reachable again; caching resumed")
        return result

    def _trip(self, exc: BaseException) -> None:
        metrics.redis_error(exc)
        self._down_until = self.clock() + settings.REDIS_BACKOFF_SECONDS
        self.local.clear()
        self._generation = None
        with self._outage_guard:  # threads of one process log an outage once
            first = not self._in_outage
            self._in_outage = True
        if first:
            logger.warning(
                "Redis unreachable (%s: %s); serving without it, retrying every %.1fs",
                type(exc).__name__,
                exc,
                settings.REDIS_BACKOFF_SECONDS,
            )

    def _bump_generation(self, pipe: Any) -> None:
        """Queue the increment of the eviction generation on ``pipe``.

        A missing counter (first eviction, or a Redis that lost its data)
        restarts from a random 48-bit base rather than from 1, so it cannot
        come back equal to the value an idle process last saw.
        """
        key = self._key(_GENERATION_KEY)
        pipe.set(key, secrets.randbits(48), nx=True)
        pipe.incr(key)

    def _tally_add(self, field: str) -> None:
        with self._tally_guard:
            self._tally[field] += 1

    def _queue_tally(self, pipe: Any) -> None:
        """Queue this process's pending hit/fill counts on ``pipe`` if a flush is due.

        Counts handed to a pipeline that then fails are lost: statistics are
        best effort and never cost a round trip of their own.
        """
        now = self.clock()
        if now - self._tally_flushed_at < STATS_FLUSH_SECONDS:
            return
        with self._tally_guard:
            pending = {k: v for k, v in self._tally.items() if v}
            self._tally = dict.fromkeys(self._tally, 0)
        self._tally_flushed_at = now
        if not pending:
            return
        key = self._key(_STATS_KEY)
        pipe.hsetnx(key, "since", int(time.time()))
        for field, count in pending.items():
            pipe.hincrby(key, field, count)

    def flush_stats(self) -> None:
        """Add this process's pending hit/fill counts to the namespace now.

        For short-lived processes (management commands) that would exit
        before their next periodic flush; one round trip, through the breaker.
        """
        with self._tally_guard:
            if not any(self._tally.values()):
                return  # nothing to send: no round trip (and no false recovery)
        self._tally_flushed_at = float("-inf")

        def flush() -> None:
            pipe = self._client().pipeline(transaction=False)
            self._queue_tally(pipe)
            pipe.execute()

        self._call(flush, None)

    def _note_generation(self, value: Any) -> None:
        """Adopt the shared eviction generation; a change empties the local tier."""
        generation = int(value or 0)
        if generation != self._generation:
            self.local.clear()
            self._generation = generation
        self._synced_at = self.clock()

    # --- results ----------------------------------------------------------------

    def get(self, query: ResultQuery) -> Payload | Any:
        """Return the cached payload of ``query`` (local tier, then Redis) or ``MISSING``."""
        if self._generation is not None:
            seen = self.host.read()  # evictions by any process of this host
            if seen != self._host_seen:
                self.local.clear()
                self._host_seen = seen
            if self.clock() - self._synced_at >= settings.LOCAL_CACHE_SYNC_SECONDS:
                self._sync()
            found = self.local.get(query.cache_key)
            if found is not MISSING and self._generation is not None:
                self._tally_add("hits")
                return found
        return self.get_shared(query)

    def _sync(self) -> None:
        """Re-read the eviction generation (one small GET); failure empties the tier."""

        def fetch() -> Any:
            pipe = self._client().pipeline(transaction=False)
            pipe.get(self._key(_GENERATION_KEY))
            self._queue_tally(pipe)
            return pipe.execute()[0]

        generation = self._call(fetch, MISSING)
        if generation is not MISSING:
            self._note_generation(generation)

    def get_shared(self, query: ResultQuery) -> Payload | Any:
        """Return the payload from Redis (refreshing the local tier) or ``MISSING``."""
        key = query.cache_key
        # Map the host's eviction counter (first use reads its value) before
        # anything can enter the local tier, so every later bump is noticed.
        self.host.read()

        def fetch() -> tuple[Any, Any]:
            pipe = self._client().pipeline(transaction=False)
            pipe.get(self._key(_GENERATION_KEY))
            pipe.get(self._key(key))
            self._queue_tally(pipe)
            found = pipe.execute()
            return found[0], found[1]

        generation, data = self._call(fetch, (None, None))
        if data is None:
            return MISSING
        self._note_generation(generation)
        try:
            payload = Payload.from_redis(query, data)
            _check_literal(query, data, payload)
        except (ValueError, zlib.error):
            logger.warning("Discarding malformed cache entry %s", key)
            self._call(lambda: self._client().delete(self._key(key)), None)
            return MISSING
        self.local.put(key, payload, payload.nbytes)
        self._tally_add("hits")
        return payload

    def set(self, query: ResultQuery, payload: Payload) -> bool:
        """Store ``payload`` in Redis (with the configured TTL) and the local tier."""
        data = payload.to_redis()
        ttl = settings.CACHE_TTL
        self._tally_add("fills")

        def store() -> bool:
            pipe = self._client().pipeline(transaction=False)
            pipe.set(self._key(query.cache_key), data, ex=ttl)
            self._queue_tally(pipe)
            pipe.execute()
            return True

        stored = self._call(store, False)
        if stored and self._generation is not None:
            self.local.put(query.cache_key, payload, payload.nbytes)
        return stored

    def delete(self, query: ResultQuery) -> bool:
        """Delete ``query``'s entry everywhere and tell other processes; False if Redis was down."""
        self.local.discard(query.cache_key)
        return self.delete_keys([query.cache_key])

    def delete_keys(self, keys: Iterable[str]) -> bool:
        """Delete cache entries by key and bump the eviction generation."""
        full = [self._key(k) for k in keys]
        for key in keys:
            self.local.discard(key)

        def drop() -> bool:
            pipe = self._client().pipeline(transaction=True)
            if full:
                pipe.delete(*full)
            self._bump_generation(pipe)
            pipe.execute()
            return True

        dropped = self._call(drop, False)
        # After the Redis delete, so no process of this host can refill its
        # tier from Redis with a value it is told to forget.
        self.host.bump()
        return dropped

    def exists_many(self, queries: list[ResultQuery]) -> list[bool] | None:
        """Return, in one round trip, whether each query is in Redis; None if Redis is down."""
        if not queries:  # no round trip: it must not count as Redis answering
            return []

        def check() -> list[bool]:
            pipe = self._client().pipeline(transaction=False)
            for query in queries:
                pipe.exists(self._key(query.cache_key))
            return [bool(v) for v in pipe.execute()]

        return self._call(check, None)

    def count_hit(self, key: str, window_seconds: int) -> int | None:
        """Increment a windowed counter and return it; None if Redis is down."""

        def incr() -> int:
            pipe = self._client().pipeline(transaction=False)
            full = self._key(key)
            pipe.incr(full)
            pipe.expire(full, window_seconds + 1)
            return int(pipe.execute()[0])

        return self._call(incr, None)

    # --- stampede locks -----------------------------------------------------------

    @contextlib.contextmanager
    def compute_lock(self, query: ResultQuery) -> Iterator[bool]:
        """Hold the lock for computing ``query``; yield False if it could not be had in time.

        The Redis lock expires after ``COMPUTE_LOCK_TIMEOUT`` so a worker
        killed mid-computation blocks the key no longer than that. With Redis
        down, a per-process lock still stops a stampede within the process.
        """
        name = self._key(f"lock:{query.cache_key}")
        lock = acquired = None
        if self.available:
            # Building the lock does no I/O, so it stays outside ``_call``:
            # only a real round trip may count as Redis being reachable again.
            lock = self._client().lock(
                name,
                timeout=settings.COMPUTE_LOCK_TIMEOUT,
                sleep=0.002,  # a waiter sees the result within 2 ms
                blocking_timeout=settings.COMPUTE_LOCK_WAIT,
            )
            acquired = self._call(lock.acquire, None)
        if acquired is None or lock is None:
            with self._process_lock(name) as held:
                yield held
            return
        try:
            yield bool(acquired)
        finally:
            if acquired:
                # Through the breaker: if Redis failed during the computation,
                # the release must not pay a second timeout (the key expires).
                self._call(lambda: _release(lock), None)

    @contextlib.contextmanager
    def _process_lock(self, name: str) -> Iterator[bool]:
        with self._process_locks_guard:
            lock = self._process_locks.get(name)
            if lock is None:
                lock = threading.Lock()
                self._process_locks[name] = lock
        held = lock.acquire(timeout=settings.COMPUTE_LOCK_WAIT)
        try:
            yield held
        finally:
            if held:
                lock.release()

    # --- operations ---------------------------------------------------------------

    def ping(self) -> tuple[bool, str]:
        """Return (reachable, detail) for the readiness check; bypasses the breaker."""
        try:
            self._client().ping()
        except REDIS_ERRORS as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, "ok"

    def _scan_namespace(self, client: redis.Redis) -> Iterator[bytes]:
        """Yield every key of this deployment's prefix and version (SCAN, not KEYS)."""
        # The prefix is matched literally: glob characters in it are escaped.
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self.namespace) + "*"
        yield from client.scan_iter(match=pattern, count=1000)

    def clear_namespace(self) -> int:
        """Delete every key of this deployment's prefix and version (and nothing else).

        Return the number of keys deleted. The eviction generation is kept
        and incremented rather than deleted, so every process drops its
        in-process tier within ``LOCAL_CACHE_SYNC_SECONDS``; raise a Redis
        error if Redis is unreachable (an operator command should say so).
        """
        client = self._client()
        generation = self._key(_GENERATION_KEY).encode()
        deleted = 0
        batch: list[bytes] = []
        for key in self._scan_namespace(client):
            if key == generation:
                continue
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
        pipe = client.pipeline(transaction=True)
        self._bump_generation(pipe)
        pipe.execute()
        self.host.bump()
        self.local.clear()
        with self._tally_guard:
            self._tally = dict.fromkeys(self._tally, 0)
        return deleted

    def stats(self) -> dict[str, Any]:
        """Return this namespace's entries (by kind), their size, hit ratio and Redis memory.

        ``hits`` counts lookups a cache tier answered and ``fills`` the
        entries stored after a miss (from the log or a computation), as
        tallied by every process since ``since`` (the first flush after a
        start or a clear). Raise a Redis error if Redis is unreachable.
        """
        client = self._client()
        prefix = self.namespace.encode()
        by_kind: dict[str, int] = {}
        other = 0
        stored_bytes = 0
        batch: list[bytes] = []

        def measure() -> int:
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.strlen(key)
            return sum(pipe.execute())

        for key in self._scan_namespace(client):
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
        tally = {k.decode(): int(v) for k, v in client.hgetall(self._key(_STATS_KEY)).items()}
        hits, fills = tally.get("hits", 0), tally.get("fills", 0)
        memory = client.info("memory")
        server = client.info("stats")
        return {
            "namespace": prefix.decode(),
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


def _release(lock: Any) -> None:
    """Release a Redis lock; one that expired meanwhile (a computation that outlived
    ``COMPUTE_LOCK_TIMEOUT``) has nothing to release and is not a Redis failure."""
    with contextlib.suppress(redis.exceptions.LockError):
        lock.release()


def _check_literal(query: ResultQuery, data: bytes, payload: Payload) -> None:
    """Raise ValueError unless a raw stored literal has the shape ``query``'s result has.

    Compressed entries carry their own body and are checked against the key
    when decoded; raw ones are short, so a regular expression is cheap.
    """
    if data[:1] != b"r":
        return
    if query.digits is not None:
        pattern = _DECIMAL_STRING
    elif query.kind == "fib":
        pattern = _INTEGER
    else:
        pattern = _NUMBER
    if pattern.fullmatch(payload.literal) is None:
        raise ValueError("stored literal is not a result of this kind")


result_cache = ResultCache()
