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
that interval.
"""

from __future__ import annotations

import contextlib
import logging
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

from .local_tier import MISSING, LocalTier
from .payloads import Payload
from .queries import ResultQuery

logger = logging.getLogger(__name__)

T = TypeVar("T")

REDIS_ERRORS = (redis.RedisError, ConnectionInterrupted, OSError)
_GENERATION_KEY = "meta:generation"

__all__ = ["MISSING", "ResultCache", "result_cache"]


class ResultCache:
    """Result payloads in a local tier and Redis, with a breaker around Redis."""

    cache_alias = "default"
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.local = LocalTier(settings.LOCAL_CACHE_MAX_BYTES)
        self._generation: int | None = None
        self._synced_at = float("-inf")
        self._down_until = float("-inf")
        self._in_outage = False
        self._process_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._process_locks_guard = threading.Lock()

    # --- plumbing -------------------------------------------------------------

    @property
    def backend(self) -> Any:
        """Return the django-redis cache backend."""
        return caches[self.cache_alias]

    def _client(self) -> redis.Redis:
        return self.backend.client.get_client(write=True)

    def _key(self, key: str) -> str:
        return self.backend.make_key(key)

    @property
    def available(self) -> bool:
        """Return False while the breaker is open after a Redis failure."""
        return self.clock() >= self._down_until

    def _call(self, operation: Callable[[], T], default: T) -> T:
        """Run a Redis operation through the breaker; return ``default`` on failure."""
        if self.clock() < self._down_until:
            return default
        try:
            result = operation()
        except REDIS_ERRORS as exc:
            self._trip(exc)
            return default
        if self._in_outage:
            self._in_outage = False
            logger.warning("Redis is reachable again; caching resumed")
        return result

    def _trip(self, exc: BaseException) -> None:
        self._down_until = self.clock() + settings.REDIS_BACKOFF_SECONDS
        self.local.clear()
        self._generation = None
        if not self._in_outage:
            self._in_outage = True
            logger.warning(
                "Redis unreachable (%s: %s); serving without it, retrying every %.1fs",
                type(exc).__name__,
                exc,
                settings.REDIS_BACKOFF_SECONDS,
            )

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
            if self.clock() - self._synced_at >= settings.LOCAL_CACHE_SYNC_SECONDS:
                self._sync()
            found = self.local.get(query.cache_key)
            if found is not MISSING and self._generation is not None:
                return found
        return self.get_shared(query)

    def _sync(self) -> None:
        """Re-read the eviction generation (one small GET); failure empties the tier."""
        generation = self._call(lambda: self._client().get(self._key(_GENERATION_KEY)), MISSING)
        if generation is not MISSING:
            self._note_generation(generation)

    def get_shared(self, query: ResultQuery) -> Payload | Any:
        """Return the payload from Redis (refreshing the local tier) or ``MISSING``."""
        key = query.cache_key

        def fetch() -> tuple[Any, Any]:
            pipe = self._client().pipeline(transaction=False)
            pipe.get(self._key(_GENERATION_KEY))
            pipe.get(self._key(key))
            return tuple(pipe.execute())

        generation, data = self._call(fetch, (None, None))
        if data is None:
            return MISSING
        self._note_generation(generation)
        try:
            payload = Payload.from_redis(query, data)
        except (ValueError, zlib.error):
            logger.warning("Discarding malformed cache entry %s", key)
            self._call(lambda: self._client().delete(self._key(key)), None)
            return MISSING
        self.local.put(key, payload, payload.nbytes)
        return payload

    def set(self, query: ResultQuery, payload: Payload) -> bool:
        """Store ``payload`` in Redis (with the configured TTL) and the local tier."""
        data = payload.to_redis()
        ttl = settings.CACHE_TTL

        def store() -> bool:
            self._client().set(self._key(query.cache_key), data, ex=ttl)
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
            pipe.incr(self._key(_GENERATION_KEY))
            pipe.execute()
            return True

        return self._call(drop, False)

    def exists_many(self, queries: list[ResultQuery]) -> list[bool] | None:
        """Return, in one round trip, whether each query is in Redis; None if Redis is down."""

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
        lock = self._call(
            lambda: self._client().lock(
                name,
                timeout=settings.COMPUTE_LOCK_TIMEOUT,
                sleep=0.005,
                blocking_timeout=settings.COMPUTE_LOCK_WAIT,
            ),
            None,
        )
        acquired = lock is not None and self._call(lock.acquire, None)
        if acquired is None or lock is None:
            with self._process_lock(name) as held:
                yield held
            return
        try:
            yield bool(acquired)
        finally:
            if acquired:
                with contextlib.suppress(*REDIS_ERRORS, redis.exceptions.LockError):
                    lock.release()

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

    def clear_namespace(self) -> int:
        """Delete every key of this deployment's prefix and version (and nothing else)."""
        pattern = self._key("*")
        client = self._client()
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
        client.incr(self._key(_GENERATION_KEY))
        self.local.clear()
        return deleted

    def stats(self) -> dict[str, Any]:
        """Return namespace entry count, Redis memory and keyspace hit ratio."""
        client = self._client()
        entries = sum(1 for _ in client.scan_iter(match=self._key("*"), count=1000))
        memory = client.info("memory")
        counters = client.info("stats")
        hits, misses = counters.get("keyspace_hits", 0), counters.get("keyspace_misses", 0)
        return {
            "namespace": self._key(""),
            "entries": entries,
            "used_memory_human": memory.get("used_memory_human"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
            "keyspace_hits": hits,
            "keyspace_misses": misses,
            "hit_ratio": (hits / (hits + misses)) if hits + misses else None,
        }


result_cache = ResultCache()
