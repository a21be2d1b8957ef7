"""The result cache: payloads in an in-process tier and Redis, through django-redis.

``ResultCache`` is a thin front that puts small pieces together, each
understandable alone:

- ``local.LocalTier``: the bounded in-process LRU in front of Redis;
- ``breaker.Breaker``: skips Redis for a while after a failure, logs once;
- ``invalidation.EvictionBroadcast``: when the tier may serve, and how an
  eviction reaches every other process;
- ``stats.StatsTally``: hit and fill counts, flushed on round trips made anyway;
- ``locks.ComputeLocks``: the stampede lock;
- ``integrity.EntrySeal``: the keyed MAC every entry carries (results and
  pictures), checked on each read from Redis (``integrity.Rejections``
  reports what fails);
- ``counters``: the throttle's windowed counter;
- ``pictures``: derived pictures (SVG), compressed, sealed with the same MAC,
  checked on read;
- ``budget.BudgetLedger``: the per-client digit budget's ledger;
- ``values``: how bookkeeping values are read with care (``MalformedValues``
  reports what is not), and which Redis errors are about data, not outages.

Redis is reached through django-redis's public surface only: the backend
from ``django.core.cache.caches`` (its ``make_key`` builds every key, so
the key prefix and version of ``CACHES`` apply) and the raw client its
documented client class hands out. Misses are the ``MISSING`` sentinel,
never a falsy value, so 0 and 0.0 are cached like anything else.

Whoever can write to the Redis can make mathsite slower, never wrong and
never failing: result entries and pictures are checked (``integrity``,
``pictures``), and so is every bookkeeping value (``values``). A key of
the wrong type is a problem of that key, never an outage: the breaker
opens on connection failures only (``values.is_data_error`` tells them
apart).

Nothing is built from settings at import: ``compute.cache.result_cache``
makes the process's cache on first use and again after ``CACHES`` or a
cache setting changes (``compute.conf.on_change``).
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import redis
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted

from compute import metrics
from compute.cache import pictures
from compute.cache.breaker import Breaker
from compute.cache.budget import BudgetLedger, ChargeRequest
from compute.cache.counters import count_in_window
from compute.cache.integrity import EntrySeal, Rejections
from compute.cache.invalidation import READ_REPLIES, EvictionBroadcast
from compute.cache.local import MISSING, LocalTier
from compute.cache.locks import ComputeLocks, Lease, lock_name
from compute.cache.stats import StatsTally, delete_each, namespace_stats, scan_namespace
from compute.cache.values import (
    OTHER,
    THROTTLE,
    MalformedValues,
    execute,
    is_data_error,
    returning_data_errors,
)
from compute.conf import app_settings
from compute.domain.payload import MALFORMED, Payload, UnfitEntry
from compute.domain.query import ResultQuery

REDIS_ERRORS = (redis.RedisError, ConnectionInterrupted, OSError)
# The two shared bookkeeping keys carry one hash tag, so on a cluster they live
# in one slot and the periodic sync reads one and writes the other in a single
# round trip to one shard. No request reads them: see ``get``.
GENERATION_KEY = "{meta}:generation"
STATS_KEY = "{meta}:stats"

__all__ = [
    "FAILURE_REASONS",
    "MISSING",
    "REDIS_ERRORS",
    "Ping",
    "ResultCache",
    "Tier",
    "failure_reason",
]

# What the readiness probe may tell anyone about a Redis failure: a class of
# failure, never the error's text (it names hosts, socket paths, user names).
FAILURE_REASONS = ("refused", "timeout", "unreachable", "authentication", "backing off", "error")


def failure_reason(exc: BaseException) -> str:
    """Return the class of a Redis failure (one of ``FAILURE_REASONS``, not "backing off").

    The exception and what it wraps (django-redis's ``ConnectionInterrupted``
    chains redis-py's error, which chains the socket's ``OSError``) are
    looked at by type: authentication, timeout, refused, else unreachable
    for any connection failure and error for the rest (e.g. a refused command).
    """
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    kinds = {
        "authentication": (
            redis.AuthenticationError,
            redis.exceptions.AuthorizationError,
            redis.exceptions.NoPermissionError,
        ),
        "timeout": (redis.TimeoutError, TimeoutError),
        "refused": (ConnectionRefusedError,),
        "unreachable": (redis.ConnectionError, ConnectionInterrupted, OSError),
    }
    for reason, types in kinds.items():
        if any(isinstance(error, types) for error in chain):
            return reason
    return "error"


class Ping(NamedTuple):
    """What ``ResultCache.ping`` learnt: ``reason`` may be shown to anyone, ``detail`` may not.

    ``reason`` is "ok" or one of ``FAILURE_REASONS``; ``detail`` is "ok" or
    the error's full text, for the server's log.
    """

    ok: bool
    reason: str
    detail: str


class Tier(enum.Enum):
    """The tier of the cache that held a result (``ResultCache.find``)."""

    LOCAL = "in-process"  # this process's ``LocalTier``
    REDIS = "redis"


class ResultCache:
    """Result payloads in a local tier and Redis, with a breaker around Redis."""

    def __init__(
        self,
        backend: Any = None,
        *,
        alias: str = app_settings.cache_alias,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend if backend is not None else caches[alias]
        self.clock = clock
        self.local = LocalTier(
            app_settings.LOCAL_CACHE_MAX_BYTES, on_change=metrics.local_tier_size
        )
        self.malformed = MalformedValues()
        self.breaker = Breaker(
            errors=REDIS_ERRORS,
            backoff=lambda: app_settings.REDIS_BACKOFF_SECONDS,
            clock=clock,
            data_error=is_data_error,
        )
        self.evictions = EvictionBroadcast(
            generation_key=self.make_key(GENERATION_KEY),
            # The backend's LOCATION (django-redis keeps it as ``_server``; a
            # cluster or Sentinel client has no single pool address to ask).
            host_name=f"{self.backend._server}|{self.namespace}",
            sync_seconds=lambda: app_settings.LOCAL_CACHE_SYNC_SECONDS,
            forget=self.local.clear,
            malformed=self.malformed,
            clock=clock,
        )
        self.tally = StatsTally(key=self.make_key(STATS_KEY), malformed=self.malformed, clock=clock)
        self.locks = ComputeLocks(
            client=self.redis,
            breaker=self.breaker,
            timeout=lambda: app_settings.COMPUTE_LOCK_TIMEOUT,
            wait=lambda: app_settings.COMPUTE_LOCK_WAIT,
            malformed=self.malformed,
        )
        self.seal = EntrySeal(secret=lambda: app_settings.cache_signing_secret)
        self.rejections = Rejections()
        self.budget = BudgetLedger(
            client=self.redis,
            breaker=self.breaker,
            make_key=self.make_key,
            malformed=self.malformed,
        )
        self.breaker.on_trip(metrics.redis_error)
        self.breaker.on_trip(lambda exc: self.evictions.lose_track())
        # Every reader handles its own keys' data errors; one that still reaches
        # the breaker is counted rather than lost (and never opens it).
        self.breaker.on_data_error(lambda exc: self.malformed.report(OTHER, "?", exc))

    # --- plumbing -------------------------------------------------------------

    def redis(self) -> redis.Redis:
        """Return the raw Redis client (django-redis's client class owns the pool)."""
        return self.backend.client.get_client(write=True)

    def make_key(self, key: str) -> str:
        """Return the full Redis key of ``key``: ``<prefix>:<version>:<key>``."""
        return self.backend.make_key(key)

    @property
    def namespace(self) -> str:
        """Return the prefix every key of this deployment starts with (``prefix:version:``)."""
        return self.make_key("")

    @property
    def available(self) -> bool:
        """Return False while the breaker is open after a Redis failure."""
        return self.breaker.available

    def _pipeline(self, *, transaction: bool = False) -> Any:
        return self.redis().pipeline(transaction=transaction)

    def reset(self) -> None:
        """Close the breaker and empty this process's tier (a fresh start)."""
        self.breaker.reset()
        self.evictions.lose_track()
        self.rejections.reset()
        self.malformed.reset()

    # --- results ----------------------------------------------------------------

    def find(self, query: ResultQuery) -> tuple[Payload, Tier] | Any:
        """Return (payload, the tier that held it) for ``query``, or ``MISSING``.

        The local tier first, then Redis (a payload read from Redis enters
        the local tier, so the next lookup finds it there). The eviction
        generation is read by the periodic sync only (at most once per
        ``LOCAL_CACHE_SYNC_SECONDS`` per process), never alongside a lookup:
        on a cluster a lookup reads only the shard owning its key.
        """
        found = self.find_local(query)
        if found is not MISSING:
            return found
        found = self.get_shared(query)
        return MISSING if found is MISSING else (found, Tier.REDIS)

    def find_local(self, query: ResultQuery) -> tuple[Payload, Tier] | Any:
        """Return (payload, ``Tier.LOCAL``) if this process's tier holds ``query``, or ``MISSING``.

        ``find`` without Redis, for a request that may compute: its attempt
        at the stampede lock reads the entry in the same round trip
        (``compute_lock``), so a GET before it would be a round trip for
        nothing. A sync that is due is made first, as ``find`` makes it.
        """
        if self.evictions.check() == "sync":
            self._sync()
        if self.evictions.trusted:
            found = self.local.get(query.cache_key)
            if found is not MISSING and self.evictions.trusted:
                self.tally.add_hit()
                return found, Tier.LOCAL
        return MISSING

    def get(self, query: ResultQuery) -> Payload | Any:
        """Return the cached payload of ``query`` (local tier, then Redis) or ``MISSING``.

        ``find`` without the tier.
        """
        found = self.find(query)
        return MISSING if found is MISSING else found[0]

    @property
    def instance(self) -> ResultCache:
        """Return this cache (what ``result_cache.instance`` gives: the object behind it)."""
        return self

    def serves(self, key: str, payload: Payload, checked: int) -> int:
        """Count a hit and return a count for next time if this process's tier serves ``payload``.

        ``key`` is the query's ``cache_key``. The tier may serve it when
        ``find`` would return this very payload from the in-process tier
        (``Tier.LOCAL``) without asking Redis: no sync due, the tier in step,
        the entry unchanged. Then the hit is counted and the tier's change
        count (``LocalTier.changes``) returned; else -1, nothing counted, and
        the caller looks up as usual. For answers built from a payload and
        kept (``compute.http.kept``): they stay right exactly as long as
        this, and are answers of the local tier.

        ``checked`` is what the last call for this pair returned (-1 at
        first): while no entry has left the tier since, the entry is not
        looked at again (no lock, no LRU move), only whether a sync is due or
        this host bumped (``EvictionBroadcast.fresh``). The count is read
        before the entry is checked, so a change in between makes the next
        call check again.
        """
        evictions = self.evictions
        if not evictions.fresh() and (evictions.check() != "fresh" or not evictions.trusted):
            return -1
        changes = self.local.changes
        if changes != checked and (not self.local.holds(key, payload) or not evictions.trusted):
            return -1
        self.tally.add_hit()
        return changes

    def _sync(self) -> None:
        """Re-read the eviction generation (its first bytes, with the due statistics).

        A failure opens the breaker, which empties the tier. Whatever the
        generation's key holds, ``adopt`` parses it: junk or another type
        there (a data error in its reply) is no failure of Redis.
        """

        def fetch() -> Any:
            pipe = self._pipeline()
            self.evictions.queue_read(pipe)
            flushing = self.tally.queue(pipe)
            replies = execute(pipe)
            self.tally.settle(flushing, replies, self.redis())
            return self.evictions.read_value(replies[:READ_REPLIES])

        generation = self.breaker.call(fetch, MISSING)
        if generation is not MISSING:
            self.evictions.adopt(generation)

    def get_shared(self, query: ResultQuery) -> Payload | Any:
        """Return the payload from Redis (refreshing the local tier) or ``MISSING``."""
        key = query.cache_key
        full_key = self.make_key(key)
        self.evictions.host.read()  # mapped before anything can enter the tier
        since = self.local.mark()  # before the read: see ``_accept``

        data = self.breaker.call(
            lambda: returning_data_errors(lambda: self.redis().get(full_key)), None
        )
        if data is None:
            return MISSING
        if isinstance(data, BaseException):  # the key holds another type: junk
            self._discard(key, full_key, data)
            return MISSING
        return self._accept(query, full_key, data, since=since)

    def _wrong_type(self, key: str, error: BaseException) -> None:
        """Report the entry under ``key`` as malformed: Redis holds another type than a string."""
        self.rejections.report(UnfitEntry(MALFORMED, f"not a string: {error}"), key)

    def _discard(self, key: str, full_key: str, error: BaseException) -> None:
        """Report and delete the entry under ``full_key``: it holds another type than a string."""
        self._wrong_type(key, error)
        self.breaker.call(lambda: self.redis().delete(full_key), None)

    def _accept(
        self, query: ResultQuery, full_key: str, data: bytes, *, since: int
    ) -> Payload | Any:
        """Return the payload of ``data`` read from Redis, or ``MISSING`` if it fails its checks.

        A failing entry is never served: it is reported and deleted, and the
        caller refills it (from the log, or by computing). A good one enters
        the local tier unless the tier dropped anything since ``since`` (the
        tier's ``mark`` taken before the read): an eviction that arrived
        while the read was in flight, and was heard by another request of
        this process meanwhile, would otherwise be undone by this fill and
        never heard again.
        """
        key = query.cache_key
        try:
            bound = app_settings.cache_max_entry_bytes
            data = self.seal.open(full_key, data, max_bytes=bound)
            payload = Payload.from_redis(query, data, max_bytes=bound)
        except UnfitEntry as rejected:
            self.rejections.report(rejected, key)
            self.breaker.call(lambda: self.redis().delete(full_key), None)
            return MISSING
        if self.evictions.trusted:  # else the next sync must come first
            self.local.put(key, payload, payload.nbytes, since=since)
        self.tally.add_hit()
        return payload

    def set(self, query: ResultQuery, payload: Payload, *, lease: Lease | None = None) -> bool:
        """Store ``payload`` in Redis (with the configured TTL) and the local tier.

        With the ``lease`` of the computation's lock, the store and the
        lock's release go in one round trip (``Lease.release_with``).
        """
        full_key = self.make_key(query.cache_key)
        since = self.local.mark()  # an eviction after the store wins over the fill (``_accept``)
        data = self.seal.seal(full_key, payload.to_redis())
        ttl = app_settings.CACHE_TTL
        self.tally.add("fills")
        stored = None
        if lease is not None:
            stored = lease.release_with(lambda pipe: pipe.set(full_key, data, ex=ttl))
            if stored:
                lease.share(payload)
        if stored is None:

            def store() -> bool:
                self.redis().set(full_key, data, ex=ttl)
                return True

            stored = self.breaker.call(store, False)
        if stored and self.evictions.trusted:
            self.local.put(query.cache_key, payload, payload.nbytes, since=since)
        return stored

    def set_many(self, items: list[tuple[ResultQuery, Payload]]) -> bool:
        """Store many payloads in Redis in one round trip (with the TTL); False if Redis is down.

        For bulk work (``warm_cache``): the in-process tier is left alone,
        since the process doing it serves nobody.
        """
        if not items:
            return True
        ttl = app_settings.CACHE_TTL
        self.tally.add("fills", len(items))

        def store() -> bool:
            pipe = self._pipeline()
            for query, payload in items:
                full_key = self.make_key(query.cache_key)
                pipe.set(full_key, self.seal.seal(full_key, payload.to_redis()), ex=ttl)
            flushing = self.tally.queue(pipe)
            self.tally.settle(flushing, execute(pipe), self.redis())
            return True

        return self.breaker.call(store, False)

    def count_hits(self, count: int) -> None:
        """Count ``count`` lookups answered by Redis that bulk work checked with ``exists_many``."""
        if count:
            self.tally.add("hits", count)

    def delete(self, query: ResultQuery) -> bool:
        """Delete ``query``'s entry everywhere and tell other processes; False if Redis was down."""
        return self.delete_keys([query.cache_key])

    def delete_keys(self, keys: Iterable[str]) -> bool:
        """Delete cache entries by key, then bump the eviction generation.

        One single-key DEL per entry (slot-safe on a cluster; redis-py sends
        them to their shards), then the bump, in that order: a process that
        syncs after the bump can no longer read the value from Redis.
        """
        keys = list(keys)
        full = [self.make_key(k) for k in keys]
        for key in keys:
            self.local.discard(key)

        def drop() -> bool:
            pipe = self._pipeline()
            for key in full:
                pipe.delete(key)
            pipe.execute()
            self.evictions.bump(self.redis())
            return True

        dropped = self.breaker.call(drop, False)
        # After the Redis delete, so no process of this host can refill its
        # tier from Redis with a value it is told to forget.
        self.evictions.bump_host()
        return dropped

    # --- derived pictures (sealed with ``self.seal``, see ``pictures``) -------------------

    def get_picture(self, key: str) -> bytes | None:
        """Return the picture stored under ``key`` (checked: see ``pictures``), or None.

        An entry that fails the check is reported, deleted and treated as a
        miss, so the caller draws the picture again; Redis down is a miss too.
        """
        full = self.make_key(key)
        stored = self.breaker.call(
            lambda: returning_data_errors(lambda: self.redis().get(full)), None
        )
        if stored is None:
            return None
        if isinstance(stored, BaseException):  # the key holds another type: junk
            self._discard(key, full, stored)
            return None
        return self._open_picture(key, full, stored)

    def _open_picture(self, key: str, full: str, stored: bytes) -> bytes | None:
        """Return the picture of a stored entry, or None (reported and deleted) if it fails."""
        try:
            return pictures.unseal(self.seal, full, stored)
        except UnfitEntry as rejected:
            self.rejections.report(rejected, key)
            self.breaker.call(lambda: self.redis().delete(full), None)
            return None

    def set_picture(self, key: str, content: bytes, *, lease: Lease | None = None) -> bool:
        """Store a sealed picture under ``key`` (the configured TTL); False if Redis is down.

        With the ``lease`` of its drawing's lock, the store and the release go
        in one round trip, and the lock's waiters in this process get ``content``.
        """
        full = self.make_key(key)
        sealed = pictures.seal(self.seal, full, content)
        ttl = app_settings.CACHE_TTL
        if lease is not None:
            stored = lease.release_with(lambda pipe: pipe.set(full, sealed, ex=ttl))
            if stored:
                lease.share(content)
            if stored is not None:
                return stored
        return self.breaker.call(lambda: bool(self.redis().set(full, sealed, ex=ttl)), False)

    @contextlib.contextmanager
    def picture_lock(self, key: str) -> Iterator[Lease]:
        """Hold the stampede lock for drawing the picture under ``key`` (as ``compute_lock``).

        The lease's ``found`` is the picture if another request stored it
        meanwhile, checked as ``get_picture`` checks it.
        """
        full = self.make_key(key)

        def accept(data: bytes) -> bytes | None:
            return self._open_picture(key, full, data)

        def unfit(error: BaseException) -> None:
            self._wrong_type(key, error)  # the drawing's store overwrites it

        name = lock_name(self.make_key, full)
        with self.locks.hold(name, watch=full, accept=accept, unfit=unfit) as lease:
            yield lease

    def exists_many(self, queries: list[ResultQuery]) -> list[bool] | None:
        """Return, in one round trip, whether each query is in Redis; None if Redis is down."""
        if not queries:  # no round trip: it must not count as Redis answering
            return []

        def check() -> list[bool]:
            pipe = self._pipeline()
            for query in queries:
                pipe.exists(self.make_key(query.cache_key))
            return [bool(v) for v in pipe.execute()]

        return self.breaker.call(check, None)

    def count_hit(self, key: str, window_seconds: int) -> int | None:
        """Increment a windowed counter and return it; None if Redis is down.

        Junk under the counter's key is reset by the count itself (see
        ``counters``) and reported; it neither fails the count nor opens
        the breaker.
        """
        full = self.make_key(key)

        def count() -> int:
            value, reset = count_in_window(self.redis(), full, window_seconds)
            self.malformed.repaired(THROTTLE, full, reset)
            return value

        return self.breaker.call(count, None)

    def lock_key(self, query: ResultQuery) -> str:
        """Return the full Redis key of the stampede lock for computing ``query``."""
        return lock_name(self.make_key, self.make_key(query.cache_key))

    @contextlib.contextmanager
    def compute_lock(
        self, query: ResultQuery, *, charges: Sequence[ChargeRequest] = ()
    ) -> Iterator[Lease]:
        """Hold the lock for computing ``query``, watching its entry (``locks.ComputeLocks``).

        The lease is ``held`` if this request may compute; its ``found`` is
        the payload if the entry appeared in Redis meanwhile (another
        request computed it), checked as every read from Redis is. The
        ``charges`` (a client's compute rate and digit budget) are made by
        the attempt that takes the lock, in its round trip (``Lease.charges``;
        None when they could not be: Redis away, or a cluster, and the
        caller charges).
        """
        full_key = self.make_key(query.cache_key)
        self.evictions.host.read()  # as in get_shared: mapped before anything enters the tier
        since = self.local.mark()  # before the entry can be read

        def accept(data: bytes) -> Payload | None:
            payload = self._accept(query, full_key, data, since=since)
            return None if payload is MISSING else payload

        def unfit(error: BaseException) -> None:
            self._wrong_type(query.cache_key, error)  # the holder's store overwrites it

        with self.locks.hold(
            self.lock_key(query), watch=full_key, accept=accept, unfit=unfit, charges=charges
        ) as lease:
            yield lease

    # --- operations ---------------------------------------------------------------

    def flush_stats(self) -> None:
        """Add this process's pending hit/fill counts to the namespace now.

        For short-lived processes (management commands) that would exit
        before their next periodic flush; one round trip, through the breaker.
        """
        if not self.tally.pending:
            return  # nothing to send: no round trip (and no false recovery)

        def flush() -> None:
            pipe = self._pipeline()
            flushing = self.tally.queue(pipe, force=True)
            if flushing is not None:
                self.tally.settle(flushing, execute(pipe), self.redis())

        self.breaker.call(flush, None)

    def ping(self) -> Ping:
        """Return whether Redis answers PING, for the readiness check, through the breaker.

        A probe while the breaker is open answers at once, "backing off" (a
        hung Redis would otherwise cost every probe a whole socket timeout);
        a failed PING opens it like any other round trip (the breaker logs
        the outage's error once), and a successful one ends the outage.
        """
        if not self.breaker.available:
            return Ping(
                False,
                "backing off",
                "not tried: Redis failed less than REDIS_BACKOFF_SECONDS ago "
                f"({app_settings.REDIS_BACKOFF_SECONDS:g} s; the breaker is open)",
            )
        failures: list[BaseException] = []

        def probe() -> bool:
            try:
                self.redis().ping()
            except REDIS_ERRORS as exc:
                failures.append(exc)
                raise
            return True

        if self.breaker.call(probe, False):
            return Ping(True, "ok", "ok")
        if failures:
            error = failures[0]
            return Ping(False, failure_reason(error), f"{type(error).__name__}: {error}")
        return Ping(False, "backing off", "not tried: the breaker opened meanwhile")

    def clear_namespace(self) -> int:
        """Delete every key of this deployment's prefix and version (and nothing else).

        Return the number of keys deleted. The eviction generation is kept
        and incremented rather than deleted, so every process drops its
        in-process tier within ``LOCAL_CACHE_SYNC_SECONDS``; raise a Redis
        error if Redis is unreachable (an operator command should say so).
        """
        client = self.redis()
        generation = self.evictions.generation_key.encode()
        deleted = 0
        batch: list[bytes] = []
        for key in scan_namespace(client, self.namespace):  # every master of a cluster
            if key == generation:
                continue
            batch.append(key)
            if len(batch) >= 1000:
                deleted += delete_each(client, batch)
                batch.clear()
        if batch:
            deleted += delete_each(client, batch)
        self.evictions.bump(client)
        self.evictions.bump_host()
        self.local.clear()
        self.tally.discard()
        return deleted

    def stats(self) -> dict[str, Any]:
        """Return this namespace's entries, sizes, hit ratio and Redis memory (``stats``).

        Exact on a small database, labelled estimates on a large one; the
        cost is bounded either way (``compute.cache.stats.namespace_stats``).
        """
        return namespace_stats(
            self.redis(),
            namespace=self.namespace,
            stats_key=self.tally.key,
            exact_max_keys=app_settings.CACHE_STATS_EXACT_MAX_KEYS,
            sample_keys=app_settings.CACHE_STATS_SAMPLE_KEYS,
            malformed=self.malformed,
        )
