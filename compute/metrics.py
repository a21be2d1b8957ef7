"""Prometheus metrics: what mathsite counts, the hooks that count it, the exposition.

What is measured (all names start with ``mathsite_``):

- ``http_requests_total`` and ``http_request_duration_seconds`` by route
  (the URL pattern's name, never the raw path), method and status;
- ``cache_lookups_total`` by kind and result (``hit`` or ``miss``): one per
  lookup of a result in the cache (in-process tier, then Redis), whether
  the hot path or the service made it;
- ``result_log_hits_total`` by kind: cache misses answered from the result
  log (which refills Redis) instead of computing;
- ``compute_duration_seconds`` by kind: a histogram of computations (its
  ``_count`` is the number of computations);
- ``system_computations_total`` by caller and kind: computations made for
  system callers (``warm_cache``, the admin naming its staff user), which
  no client's budget pays for;
- ``redis_errors_total`` by exception type: Redis failures, each of which
  opens the cache's breaker;
- ``cache_rejected_total`` by reason (``malformed``, ``bad_mac``,
  ``oversized``, ``mismatch``): entries read from Redis and discarded, not
  served (``compute.cache.integrity``);
- ``cache_malformed_total`` by key (``generation``, ``stats``, ``budget``,
  ``lock``, ``throttle``, ``other``): bookkeeping values read back from
  Redis that were malformed or of the wrong type, treated as absent or
  reset (``compute.cache.values``);
- ``local_cache_bytes`` and ``local_cache_entries``, gauges per live worker
  process (a ``pid`` label in multi-process mode): what each process's
  in-process tier holds, as its budget (``LOCAL_CACHE_MAX_BYTES``) counts
  it. A worker's memory grows with it up to that budget: a growing RSS
  beside a growing tier is the tier filling, not a leak.

The hooks are called on the hot path, so each is an in-process counter
update and a context-variable write: no I/O, no lock held across a call.
Requests the WSGI front answers (cached hits and 304s, the hottest path)
are counted by ``front_request`` into a plain in-process tally instead,
which a background thread adds to the Prometheus values every
``FRONT_FLUSH_SECONDS`` (and ``exposition()`` before it reads): with
``PROMETHEUS_MULTIPROC_DIR`` every Prometheus increment is a locked write to
a memory-mapped file, and four of them per hit cost a cached hit a third of
its time. A scrape therefore sees a front hit at most that long after it
was answered; a worker killed with SIGKILL loses at most that much of its
tally.
Under gunicorn every worker is a process of its own; with
``PROMETHEUS_MULTIPROC_DIR`` set before the workers start (gunicorn.conf.py
does it) each process keeps its samples in memory-mapped files there and
``exposition()`` adds them up, so any worker answers ``/metrics`` for all.

The hooks also note how the current request's result was answered
(``current_outcome``) so the access log can say ``cache=hit`` and name the
route of a hit that never reached URL resolution.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from compute.conf import app_settings
from compute.domain.kinds import registry

HIT, MISS, LOG, COMPUTED, NOT_MODIFIED = "hit", "miss", "log", "computed", "not_modified"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "mathsite_http_requests",
    "HTTP requests by route name, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "mathsite_http_request_duration_seconds",
    "Time from the first middleware to the response, by route name, method and status.",
    ["route", "method", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CACHE_LOOKUPS = Counter(
    "mathsite_cache_lookups",
    "Result lookups in the cache (in-process tier, then Redis) by kind and result (hit/miss).",
    ["kind", "result"],
)
LOG_HITS = Counter(
    "mathsite_result_log_hits",
    "Cache misses answered from the result log (refilling Redis) instead of computing.",
    ["kind"],
)
COMPUTE_DURATION = Histogram(
    "mathsite_compute_duration_seconds",
    "Computations of results by kind; _count is the number of computations.",
    ["kind"],
    buckets=(0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)
REDIS_ERRORS = Counter(
    "mathsite_redis_errors",
    "Redis failures (each opens the cache's breaker), by exception type.",
    ["error"],
)

CACHE_REJECTED = Counter(
    "mathsite_cache_rejected",
    "Entries read from Redis and discarded instead of served, by reason "
    "(malformed, bad_mac, oversized, mismatch).",
    ["reason"],
)
CACHE_MALFORMED = Counter(
    "mathsite_cache_malformed",
    "Bookkeeping values read back from Redis that were malformed or of the wrong type, "
    "treated as absent or reset, by key (generation, stats, budget, lock, throttle, other).",
    ["key"],
)
# Per live process ("liveall"): the launcher and gunicorn.conf.py drop a dead worker's.
LOCAL_CACHE_BYTES = Gauge(
    "mathsite_local_cache_bytes",
    "Bytes the in-process tier's entries are counted as (its budget: LOCAL_CACHE_MAX_BYTES).",
    multiprocess_mode="liveall",
)
LOCAL_CACHE_ENTRIES = Gauge(
    "mathsite_local_cache_entries",
    "Entries in the in-process tier.",
    multiprocess_mode="liveall",
)
COMPUTE_REFUSALS = Counter(
    "mathsite_compute_refusals",
    "Computations refused before they ran (compute.admission), by kind and reason: "
    "budget (the client's digits per hour), client_busy (its concurrent computations), "
    "busy (this process's computations and queue full).",
    ["kind", "reason"],
)

SYSTEM_COMPUTATIONS = Counter(
    "mathsite_system_computations",
    "Computations made for system callers (warm_cache, the admin naming its staff user), "
    "by caller and kind: charged to no client, counted here.",
    ["caller", "kind"],
)


class _Children(dict):
    """Metric children by label values, bound on first use and kept (a dict read after)."""

    def __init__(self, bind: Callable[[Any], Any]) -> None:
        super().__init__()
        self.bind = bind

    def __missing__(self, key: Any) -> Any:
        child = self[key] = self.bind(key)
        return child


# Children bound once: the hot path pays for an increment, not a label lookup.
# The registered kinds' are bound now, so every kind shows (at 0) from the start.
_LOOKUP = _Children(lambda key: CACHE_LOOKUPS.labels(key[0], HIT if key[1] else MISS))
_LOG_HIT = _Children(LOG_HITS.labels)
_COMPUTE = _Children(COMPUTE_DURATION.labels)
for _kind in registry.names():
    for _hit in (True, False):
        _LOOKUP[_kind, _hit]
    _LOG_HIT[_kind]
    _COMPUTE[_kind]
_REQUEST_CHILDREN: dict[tuple[str, str, str], tuple[object, object]] = {}

# (kind, outcome) of the result the current request asked for, if any.
_outcome: ContextVar[tuple[str, str] | None] = ContextVar("mathsite_result_outcome", default=None)


# --- hooks (called by compute.http, compute.services, compute.cache) ----------------------


def cache_lookup(kind: str, *, hit: bool) -> None:
    """Count one cache lookup of a ``kind`` result and note its outcome for the access log."""
    _LOOKUP[kind, hit].inc()
    _outcome.set((kind, HIT if hit else MISS))


def log_hit(kind: str) -> None:
    """Count a cache miss answered from the result log."""
    _LOG_HIT[kind].inc()
    _outcome.set((kind, LOG))


def computed(kind: str, seconds: float) -> None:
    """Count one computation of a ``kind`` result that took ``seconds``."""
    _COMPUTE[kind].observe(seconds)
    _outcome.set((kind, COMPUTED))


def not_modified(kind: str) -> None:
    """Note that a ``kind`` result request was answered 304 (no lookup, nothing counted)."""
    _outcome.set((kind, NOT_MODIFIED))


def cache_rejected(reason: str) -> None:
    """Count one entry read from Redis and discarded (rare: the label lookup is fine)."""
    CACHE_REJECTED.labels(reason).inc()


def cache_malformed(key: str) -> None:
    """Count one malformed bookkeeping value of the ``key`` kind (rare: a label lookup)."""
    CACHE_MALFORMED.labels(key).inc()


def local_tier_size(nbytes: int, entries: int) -> None:
    """Note what the in-process tier holds now (after a store or an eviction: not on hits)."""
    LOCAL_CACHE_BYTES.set(nbytes)
    LOCAL_CACHE_ENTRIES.set(entries)


def compute_refused(kind: str, reason: str) -> None:
    """Count a computation refused by admission (``reason``: budget, client_busy, busy)."""
    COMPUTE_REFUSALS.labels(kind, reason).inc()


def system_computation(caller: str, kind: str) -> None:
    """Count a computation made for the system caller ``caller`` (rare: a label lookup)."""
    SYSTEM_COMPUTATIONS.labels(caller, kind).inc()


def redis_error(exc: BaseException) -> None:
    """Count a Redis failure by its exception type."""
    REDIS_ERRORS.labels(type(exc).__name__).inc()


# --- per request (called by mathsite.logging.RequestMiddleware) ----------------------


def begin_request() -> Token:
    """Start a request with no outcome noted; return the token for ``end_request``."""
    return _outcome.set(None)


def end_request(token: Token) -> None:
    """Forget the finished request's outcome."""
    _outcome.reset(token)


def current_outcome() -> tuple[str, str] | None:
    """Return (kind, outcome) noted for the current request, or None."""
    return _outcome.get()


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its duration."""
    counter, histogram = _request_children(
        (route, method if method in _METHODS else "other", str(status))
    )
    counter.inc()  # type: ignore[attr-defined]
    histogram.observe(seconds)  # type: ignore[attr-defined]


def _request_children(key: tuple[str, str, str]) -> tuple[object, object]:
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = (HTTP_REQUESTS.labels(*key), HTTP_DURATION.labels(*key))
        _REQUEST_CHILDREN[key] = children
    return children


# --- the WSGI front's tally -------------------------------------------------------

# An entry of the front's tally: (route, method, status, the kind looked up or None).
TallyKey = tuple[str, str, str, str | None]

# How often the tally of front-answered requests reaches the Prometheus values.
FRONT_FLUSH_SECONDS = 0.25


class FrontTally:
    """Requests answered by the WSGI front, counted in memory and flushed in batches.

    One entry per (route, method, status, kind looked up or None): the
    request count, the sum of their durations and their histogram bucket
    counts. ``flush`` adds each entry to the Prometheus children with one
    increment per non-empty bucket, the same totals ``observe_request`` and
    ``cache_lookup`` would have written one request at a time.

    Counting takes no lock: each thread adds to a table of its own, which
    only it writes, and whose counts only grow; ``flush`` (one at a time)
    adds what each table gained since it last looked. A table read while
    its thread counts may be one request ahead in one field: the next
    flush evens it out, and nothing is lost or counted twice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # registration and flushes
        self._local = threading.local()
        # Per thread: (the thread, its table, what flush added from it so far).
        self._tables: list[tuple[threading.Thread, dict, dict]] = []
        # Per kept answer: (a weak reference to it, its entry key, its send counter,
        # [the counter's value when flush last took from it]).
        self._kept: list[tuple[weakref.ref, TallyKey, Iterator[int], list[int]]] = []
        self._bounds = HTTP_DURATION._upper_bounds  # the same buckets, +Inf last
        self._first_bound = self._bounds[0]
        self._flusher: threading.Thread | None = None

    def add(self, route: str, method: str, status: int, seconds: float, kind: str | None) -> None:
        """Count one request (``kind``: the result kind it found in the cache, or None)."""
        method = method if method in _METHODS else "other"
        self.add_entry((route, method, str(status), kind), seconds)

    def add_entry(self, key: tuple[str, str, str, str | None], seconds: float) -> None:
        """Count one request under its entry ``key`` (route, method, status, kind), as ``add``."""
        try:
            table = self._local.table
        except AttributeError:
            table = self._register()
        entry = table.get(key)
        if entry is None:
            entry = table[key] = [0, 0.0, [0] * len(self._bounds)]
        entry[0] += 1
        entry[1] += seconds
        entry[2][0 if seconds <= self._first_bound else bisect_left(self._bounds, seconds)] += 1

    def watch_kept(self, owner: Any, key: TallyKey, sends: Iterator[int]) -> None:
        """Count the sends of a kept answer (``owner``): each ``next(sends)`` is one.

        A kept answer sent again is counted by an ``itertools.count`` of its
        own (``next``, a C call, atomic under the GIL) instead of in the
        thread's table: on a worker whose server and other threads evict the
        CPU's caches between two hits, the table's lookups and the two clock
        reads around the hit cost it about a microsecond, a third of it. Its
        sends are requests of entry ``key`` (route, method, status, kind) that
        took no time worth timing: each is counted, in the first bucket of
        the duration histogram (its few microseconds are far below it), and
        adds nothing to its sum. ``flush`` takes the counts, and forgets
        ``sends`` once its answer is gone and its last sends are taken.
        """
        with self._lock:
            self._kept.append((weakref.ref(owner), key, sends, [-1]))
        if self._flusher is None:
            self._start()

    def _register(self) -> dict:
        """Give the calling thread a table of its own (and start the flusher once)."""
        table: dict = {}
        with self._lock:
            self._tables.append((threading.current_thread(), table, {}))
        self._local.table = table
        if self._flusher is None:
            self._start()
        return table

    def flush(self) -> None:
        """Add everything counted so far to the Prometheus values."""
        with self._lock:
            gained = self._gains()
        for (route, method, status, kind), (count, total, buckets) in gained.items():
            counter, histogram = _request_children((route, method, status))
            counter.inc(count)  # type: ignore[attr-defined]
            histogram._sum.inc(total)  # type: ignore[attr-defined]
            for child_bucket, bucket_count in zip(histogram._buckets, buckets, strict=True):  # type: ignore[attr-defined]
                if bucket_count:
                    child_bucket.inc(bucket_count)
            if kind is not None:
                _LOOKUP[kind, True].inc(count)

    def _gains(self) -> dict[tuple[str, str, str, str | None], list]:
        """Return what every table gained since the last flush, by entry (hold the lock).

        The table of a thread that ended is dropped once it is taken in full.
        """
        gained: dict[tuple[str, str, str, str | None], list] = {}
        kept = []
        for thread, table, taken in self._tables:
            alive = thread.is_alive()
            for key, entry in list(table.items()):  # one step: the thread may add keys
                count, total, buckets = entry[0], entry[1], list(entry[2])
                before = taken.get(key)
                if before is None:
                    before = [0, 0.0, [0] * len(buckets)]
                if count == before[0]:
                    continue
                sums = gained.setdefault(key, [0, 0.0, [0] * len(buckets)])
                sums[0] += count - before[0]
                sums[1] += total - before[1]
                for number, (now, then) in enumerate(zip(buckets, before[2], strict=True)):
                    sums[2][number] += now - then
                taken[key] = [count, total, buckets]
            if alive:
                kept.append((thread, table, taken))
        self._tables = kept
        watched = []
        for owner, key, counter, taken in self._kept:
            now = next(counter)  # this read counts one: the next read subtracts it
            sends, taken[0] = now - taken[0] - 1, now
            if sends:
                sums = gained.setdefault(key, [0, 0.0, [0] * len(self._bounds)])
                sums[0] += sends
                sums[2][0] += sends
            if owner() is not None:  # gone: its last sends were just taken
                watched.append((owner, key, counter, taken))
        self._kept = watched
        return gained

    def forget_thread(self) -> None:
        """After a fork: the flusher thread did not come along; start another when needed."""
        self._lock = threading.Lock()
        self._local = threading.local()
        self._tables = []
        for _owner, _key, counter, taken in self._kept:
            taken[0] = next(counter)  # what the parent sent is the parent's to flush
        self._flusher = None

    def _start(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._run, name="mathsite-metrics-flush", daemon=True
            )
            self._flusher.start()

    def _run(self) -> None:
        while True:
            time.sleep(FRONT_FLUSH_SECONDS)
            self.flush()


front_tally = FrontTally()
os.register_at_fork(after_in_child=front_tally.forget_thread)
atexit.register(front_tally.flush)


def front_request(route: str, method: str, status: int, seconds: float, kind: str | None) -> None:
    """Count a request the WSGI front answered (a hit of ``kind``, or a 304 with kind None)."""
    front_tally.add(route, method, status, seconds, kind)


def watch_kept(owner: Any, key: TallyKey, sends: Iterator[int]) -> None:
    """Count the sends of a kept answer in the front's tally (``FrontTally.watch_kept``)."""
    front_tally.watch_kept(owner, key, sends)


# --- exposition ---------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """Return the metrics of every process (or of this one) and their content type."""
    front_tally.flush()
    if app_settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=app_settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
