"""Services: look a result up, else compute it, then record it (the only writer of the log).

Lookup order (SPEC "Cache behaviour"): the cache (in-process tier, then
Redis), then the result log (refilling Redis), then compute under a
stampede lock (storing in both). ``cached`` in the outcome is True exactly
when this call did not compute.

    >>> outcome = result_get(query=ResultQuery("fib", 10))   # doctest: +SKIP
    >>> outcome.payload.text, outcome.cached
    ('55', False)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from compute import metrics
from compute.admission import ComputeGate
from compute.admission.offload import compute_pool
from compute.cache import MISSING, ResultCache, result_cache
from compute.domain import convergence, results
from compute.domain import maths as algorithms
from compute.domain.payload import Payload
from compute.domain.query import PI, ResultQuery
from compute.models import ComputedResult

PREVIEW_EDGE = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """A result payload and whether it came without computing."""

    payload: Payload
    cached: bool


def result_text(query: ResultQuery) -> str:
    """Return the decimal text of the result ``query`` names (the pure computation).

    Large results are computed in a computation process, small ones here
    (``compute.admission.offload``), so a big computation never holds this
    process's GIL while its cached hits wait.
    """
    return compute_pool.run(results.result_text, query)


def preview_of(text: str) -> str:
    """Return a short form of a result: itself, or its first and last digits."""
    if len(text) <= 2 * PREVIEW_EDGE + 3:
        return text
    return f"{text[:PREVIEW_EDGE]}...{text[-PREVIEW_EDGE:]}"


def _log_rows(query: ResultQuery) -> QuerySet[ComputedResult]:
    """Return the log rows of ``query``'s result (at most one: the identity is unique)."""
    return ComputedResult.objects.filter(
        kind=query.kind, n=query.n, precision=query.precision, modulus=query.modulus
    )


def _log_lookup(query: ResultQuery) -> str | None:
    return ComputedResult.objects.value_of(
        kind=query.kind, n=query.n, precision=query.precision, modulus=query.modulus
    )


def _from_log(query: ResultQuery, cache: ResultCache) -> Payload | None:
    text = _log_lookup(query)
    if text is None:
        return None
    metrics.log_hit(query.kind)
    payload = Payload.from_text(query, text)
    cache.set(query, payload)
    return payload


def _log_row(query: ResultQuery, text: str, compute_ms: float) -> ComputedResult:
    return ComputedResult(
        kind=query.kind,
        n=query.n,
        precision=query.precision,
        modulus=query.modulus,
        value=text,
        preview=preview_of(text),
        length=algorithms.count_digits(text),
        compute_ms=compute_ms,
        computed_at=timezone.now(),
    )


def result_record(*, query: ResultQuery, text: str, compute_ms: float) -> None:
    """Insert the log row of a computed result; an existing row wins (unique, race-safe)."""
    ComputedResult.objects.bulk_create([_log_row(query, text, compute_ms)], ignore_conflicts=True)


def result_cached(
    *, query: ResultQuery, cache: ResultCache = result_cache, counted: bool = True
) -> Outcome | None:
    """Return the outcome if a cache tier holds ``query``'s result, else None (nothing counted).

    For the WSGI front, which answers only hits and leaves misses to the view
    (which counts them). ``counted=False`` leaves counting the hit to the
    caller (the front counts its hits in batches: ``metrics.front_request``).
    """
    payload = cache.get(query)
    if payload is MISSING:
        return None
    if counted:
        metrics.cache_lookup(query.kind, hit=True)
    return Outcome(payload, cached=True)


def result_get(
    *,
    query: ResultQuery,
    cache: ResultCache = result_cache,
    compute: Callable[[ResultQuery], str] = result_text,
    admit: Callable[[], None] | None = None,
    gate: ComputeGate | None = None,
) -> Outcome:
    """Return the result of ``query``, computing it only if no tier has it.

    ``admit`` is called once it is known that the value must be computed,
    before the stampede lock; it may raise to refuse the work (the
    throttle), so hits and log reads never count against a client.
    ``gate`` is entered just before computing, inside the lock and after
    the last look at the cache, so only the request that computes is
    charged (the client's digit budget) and holds a computation slot; it
    raises ``compute.admission.Refused`` to refuse, and then nothing is
    computed, logged or cached.
    """
    payload = cache.get(query)
    metrics.cache_lookup(query.kind, hit=payload is not MISSING)
    if payload is not MISSING:
        return Outcome(payload, cached=True)
    payload = _from_log(query, cache)
    if payload is not None:
        return Outcome(payload, cached=True)
    if admit is not None:
        admit()
    with cache.compute_lock(query) as lease:
        if lease.found is not None:  # another request computed it while we waited
            metrics.cache_lookup(query.kind, hit=True)
            return Outcome(lease.found, cached=True)
        # With Redis up, a finished computation is in Redis (the winner stores
        # it before releasing the lock, and taking the lock read the entry);
        # only without Redis is the log the place to look again.
        if lease.held and not cache.available:
            payload = _from_log(query, cache)
            if payload is not None:
                return Outcome(payload, cached=True)
        with gate.admit(query) if gate is not None else contextlib.nullcontext():
            started = time.perf_counter()
            text = compute(query)
            compute_ms = (time.perf_counter() - started) * 1000
            metrics.computed(query.kind, compute_ms / 1000)
            payload = Payload.from_text(query, text)
            result_record(query=query, text=text, compute_ms=compute_ms)
            cache.set(query, payload, lease=lease)
    return Outcome(payload, cached=False)


@dataclass(frozen=True, slots=True)
class WarmOutcome:
    """What ``results_warm`` did with a batch: how many were computed, and how many were not."""

    computed: int
    cached: int


def results_warm(
    *,
    queries: list[ResultQuery],
    cache: ResultCache = result_cache,
    compute: Callable[[ResultQuery], str] = result_text,
) -> WarmOutcome:
    """Make every result of ``queries`` cached and logged, in a few round trips for the batch.

    The same outcome as ``result_get`` per query (Redis, else the log
    refilling Redis, else compute and record), at a cost per batch rather
    than per result: one pipeline asks Redis which entries exist, one query
    per (kind, precision) reads the logged values of the others, one
    ``bulk_create`` (existing rows win) records what was computed and one
    pipeline stores every refilled or computed entry. No stampede lock is
    taken: a request computing the same value meanwhile stores the same
    bytes, and the log's unique constraint keeps one row.
    """
    present = cache.exists_many(queries)
    if present is None:  # Redis down: warm the log; Redis is refilled from it later
        present = [False] * len(queries)
    cache.count_hits(sum(present))
    for query, found in zip(queries, present, strict=True):
        metrics.cache_lookup(query.kind, hit=found)
    missing = [query for query, found in zip(queries, present, strict=True) if not found]
    groups: dict[tuple[str, int], list[ResultQuery]] = {}
    for query in missing:
        groups.setdefault((query.kind, query.precision), []).append(query)
    fills: list[tuple[ResultQuery, Payload]] = []
    rows: list[ComputedResult] = []
    for (kind, precision), group in groups.items():
        logged = dict(
            ComputedResult.objects.filter(
                kind=kind, precision=precision, n__in=[query.n for query in group]
            ).values_list("n", "value")
        )
        for query in group:
            text = logged.get(query.n)
            if text is not None:
                metrics.log_hit(kind)
            else:
                started = time.perf_counter()
                text = compute(query)
                compute_ms = (time.perf_counter() - started) * 1000
                metrics.computed(kind, compute_ms / 1000)
                rows.append(_log_row(query, text, compute_ms))
            fills.append((query, Payload.from_text(query, text)))
    if rows:
        ComputedResult.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    cache.set_many(fills)
    return WarmOutcome(computed=len(rows), cached=len(queries) - len(rows))


def result_delete(
    *, query: ResultQuery, cache: ResultCache = result_cache, require_cache: bool = False
) -> bool:
    """Delete a result from every cache tier and the log; False if Redis could not be reached.

    With ``require_cache`` nothing is deleted when Redis cannot be reached:
    deleting only the row would leave a value that Redis serves again,
    without a log row, once it returns. The cache entry is deleted before
    the row and once more after it, so a request that refilled the cache
    from the row in between cannot keep the value alive.
    """
    rows = _log_rows(query)
    if require_cache:
        if not cache.delete(query):
            return False
        rows.delete()
        return cache.delete(query)
    rows.delete()
    return cache.delete(query)


def query_for_row(row: ComputedResult) -> ResultQuery:
    """Return the query that names a log row's result."""
    if row.kind == PI:
        return ResultQuery(row.kind, row.n, digits=row.digits)
    return ResultQuery(row.kind, row.n, mod=row.mod)


def results_evict(*, rows: list[ComputedResult], cache: ResultCache = result_cache) -> bool:
    """Evict the cache entries of log rows (the rows stay); False if Redis was down."""
    return cache.delete_keys([query_for_row(row).cache_key for row in rows])


def results_recompute(
    *,
    rows: list[ComputedResult],
    cache: ResultCache = result_cache,
    compute: Callable[[ResultQuery], str] = result_text,
) -> int:
    """Recompute log rows in place (value, size, time) and refresh their cache entries."""
    for row in rows:
        query = query_for_row(row)
        started = time.perf_counter()
        text = compute(query)
        row.compute_ms = (time.perf_counter() - started) * 1000
        metrics.computed(query.kind, row.compute_ms / 1000)
        row.value, row.preview = text, preview_of(text)
        row.length = algorithms.count_digits(text)
        row.computed_at = timezone.now()
        row.save(update_fields=["value", "preview", "length", "compute_ms", "computed_at"])
        cache.delete(query)
        cache.set(query, Payload.from_text(query, text))
    return len(rows)


def convergence_picture(
    *, n: int, cache: ResultCache = result_cache, admit: Callable[[], None] | None = None
) -> tuple[bytes, bool]:
    """Return (the SVG of pi - pi(k) for k = 1..n, whether it came from Redis).

    The picture is derived from nothing but n, so it is cached (sealed, see
    ``compute.cache.pictures``) and never logged. ``admit`` is called before
    drawing, as for results; n must be validated by the caller.
    """
    key = convergence.convergence_cache_key(n)
    found = cache.get_picture(key)
    if found is not None:
        return found, True
    if admit is not None:
        admit()
    svg = convergence.convergence_svg(n).encode()
    cache.set_picture(key, svg)
    return svg, False
