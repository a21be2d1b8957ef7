"""Services: the one entrance every caller asks for a result (the only writer of the log).

Every way in (the DRF view, the front page's form, the convergence
picture, ``warm_cache``, the admin's recompute; the WSGI front for hits,
which compute nothing) asks a function here and names who asks: a
``Client`` (its identity, and the request-rate throttle) or a ``System``
caller (a command, the admin's staff user). The service owns lookup,
admission (``compute.admission``: the budget, the computation slots,
offloading), computation, recording and caching, so a caller cannot forget
a guarantee: it never holds one.

Lookup order (SPEC "Cache behaviour"): the cache (in-process tier, then
Redis), then the result log (refilling Redis), then compute under a
stampede lock (storing in both). The outcome says where the value came
from (``Source``: a tier, the log, this call's computation, stored in
Redis or not, or another request's that this one waited for); ``cached``
is True exactly when this call did not compute. A result's identity in
the log is ``identity(query)``, the one definition every lookup and write
uses.

    >>> outcome = result_get(query=ResultQuery("fib", 10), caller=System("docs"))  # doctest: +SKIP
    >>> outcome.payload.text, outcome.source, outcome.cached
    ('55', <Source.COMPUTED: 'computed'>, False)
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from compute import metrics
from compute.admission import Caller, ComputeGate, compute_gate
from compute.admission.gate import Charges
from compute.admission.offload import compute_pool
from compute.cache import MISSING, ResultCache, Tier, result_cache
from compute.cache.budget import Charge
from compute.cache.locks import Lease
from compute.database import log_step
from compute.domain import convergence, results
from compute.domain import maths as algorithms
from compute.domain.cost import estimated_digits, estimated_work
from compute.domain.kinds import registry
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from compute.models import ComputedResult

# Digits kept at each end of a log row's stored preview (the front page shows
# 60 of the value, the admin's list 10 of the preview: each its own choice).
PREVIEW_EDGE = 20
# Retry-After of a request refused because the result log could not be
# reached: a restart or a failover of the database takes seconds.
LOG_RETRY_SECONDS = 5


class LogUnavailable(Exception):
    """The result log (the database) could not be reached or was locked.

    Raised by the service before anything is half-done: nothing computed
    is cached without its row, and a client's charge for the computation
    is refunded (``compute.admission.gate``). The API and the form answer
    503 with ``Retry-After``; cached hits never reach the database.
    """

    retry_after = LOG_RETRY_SECONDS

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "The result log (database) is unavailable; cached results are still served. "
            "Retry shortly."
        )
        self.cause = cause


@contextlib.contextmanager
def log_access(*, sending: int = 0) -> Iterator[None]:
    """Run the block (one step on the result log) within the database's bounds, and
    translate a connection-level failure (down, paused, locked, every slot taken) to
    LogUnavailable.

    Every read and write of the log passes here, so every one is bounded
    (``compute.database.log_step``: at most ``DATABASE_CONCURRENCY`` threads
    per process wait on the database, each at most
    ``DATABASE_QUERY_DEADLINE`` on PostgreSQL). Programming errors (a bad
    query, a broken constraint) still raise as they are: they are bugs,
    not outages. ``sending`` (bytes the step writes) lengthens the deadline.
    """
    try:
        with log_step(sending=sending):
            yield
    except (OperationalError, InterfaceError) as exc:
        raise LogUnavailable(exc) from exc


class Source(enum.Enum):
    """Where a result (or a picture) given to a caller came from.

    The service is the one place that knows; the HTTP layer says it in the
    response's ``Cache-Status`` (``compute.http.hit``).
    """

    LOCAL = "in-process"  # this process's tier of the cache
    REDIS = "redis"
    LOG = "log"  # the result log, after Redis had lost it (Redis refilled)
    COLLAPSED = "collapsed"  # another request's computation, waited for under the lock
    COMPUTED = "computed"  # computed by this call, then stored in Redis
    COMPUTED_UNSTORED = "computed-unstored"  # computed by this call; Redis could not store it

    @property
    def cached(self) -> bool:
        """Return True if the value came without this call computing it (the body's flag)."""
        return self not in _COMPUTING


_COMPUTING = frozenset({Source.COMPUTED, Source.COMPUTED_UNSTORED})
_TIER_SOURCE = {Tier.LOCAL: Source.LOCAL, Tier.REDIS: Source.REDIS}


def _computed_source(stored: bool) -> Source:
    return Source.COMPUTED if stored else Source.COMPUTED_UNSTORED


@dataclass(frozen=True, slots=True)
class Outcome:
    """A result payload and where it came from."""

    payload: Payload
    source: Source

    @property
    def cached(self) -> bool:
        """Return True if this call did not compute the value (``Source.cached``)."""
        return self.source.cached


Compute = Callable[[ResultQuery], str]


def result_text(query: ResultQuery) -> str:
    """Return the decimal text of the result ``query`` names (its kind's computation).

    Large results are computed in a computation process, small ones here
    (``compute.admission.offload``, deciding on ``Kind.cpu_cost``), so a big
    computation never holds this process's GIL while its cached hits wait.
    """
    return compute_pool.run(results.computation(query), query, work=estimated_work(query))


def preview_of(text: str) -> str:
    """Return a short form of a result: itself, or its first and last digits."""
    if len(text) <= 2 * PREVIEW_EDGE + 3:
        return text
    return f"{text[:PREVIEW_EDGE]}...{text[-PREVIEW_EDGE:]}"


def identity(query: ResultQuery) -> dict[str, Any]:
    """Return the log's identity of ``query``'s result: kind, n, precision, modulus.

    The one definition: every read and write of the log (a lookup, a batch
    lookup, a delete, a row) names a result by it, so no copy can forget an
    option (a residue read as fib(n) itself).
    """
    return {
        "kind": query.kind,
        "n": query.n,
        "precision": query.precision,
        "modulus": query.modulus,
    }


def _log_rows(query: ResultQuery) -> QuerySet[ComputedResult]:
    """Return the log rows of ``query``'s result (at most one: the identity is unique)."""
    return ComputedResult.objects.filter(**identity(query))


def _log_lookup(query: ResultQuery) -> str | None:
    with log_access():
        return ComputedResult.objects.value_of(**identity(query))


def _log_lookup_many(queries: list[ResultQuery]) -> dict[ResultQuery, str]:
    """Return the logged values of ``queries`` that have one: a query per identity but n."""
    groups: dict[tuple[tuple[str, Any], ...], dict[int, ResultQuery]] = {}
    for query in queries:
        rest = tuple((name, value) for name, value in identity(query).items() if name != "n")
        groups.setdefault(rest, {})[query.n] = query
    found: dict[ResultQuery, str] = {}
    with log_access():
        for rest, by_n in groups.items():
            rows = ComputedResult.objects.filter(**dict(rest), n__in=list(by_n)).values_list(
                "n", "value"
            )
            for n, value in rows:
                found[by_n[n]] = value
    return found


def _from_log(query: ResultQuery, cache: ResultCache, lease: Lease | None = None) -> Payload | None:
    """Return the logged value of ``query`` (stored again in the cache), or None.

    With the ``lease`` of its lock, the store and the lock's release go in one round trip.
    """
    text = _log_lookup(query)
    if text is None:
        return None
    metrics.log_hit(query.kind)
    payload = Payload.from_text(query, text)
    cache.set(query, payload, lease=lease)
    return payload


def _log_row(query: ResultQuery, text: str, compute_ms: float) -> ComputedResult:
    return ComputedResult(
        **identity(query),
        value=text,
        preview=preview_of(text),
        length=algorithms.count_digits(text),
        compute_ms=compute_ms,
        computed_at=timezone.now(),
    )


def _computed(
    query: ResultQuery,
    caller: Caller,
    compute: Compute | None,
    gate: ComputeGate,
    record: Callable[[str, float], None] | None = None,
    charges: Charges | None = None,
    made: tuple[Charge, ...] | None = None,
) -> tuple[str, float]:
    """Compute ``query``'s result as an admitted computation of ``caller``: (text, ms).

    ``record`` (the log insert) runs inside the admission, so a failure to
    record refunds the caller's charge: nothing is charged for a result
    that was not kept. ``charges`` and ``made``: what the lock's attempt was
    to charge and charged (``ComputeGate.admit``).
    """
    cost = estimated_digits(query)
    with gate.admit(caller, kind=query.kind, cost=cost, charges=charges, made=made):
        started = time.perf_counter()
        text = (compute or result_text)(query)
        compute_ms = (time.perf_counter() - started) * 1000
        metrics.computed(query.kind, compute_ms / 1000)
        if record is not None:
            record(text, compute_ms)
    return text, compute_ms


def result_record(*, query: ResultQuery, text: str, compute_ms: float) -> None:
    """Insert the log row of a computed result; an existing row wins (unique, race-safe).

    Raise LogUnavailable if the database cannot be reached (or stays locked).
    """
    with log_access():
        ComputedResult.objects.insert_new(_log_row(query, text, compute_ms))


def result_cached(
    *,
    query: ResultQuery,
    cache: ResultCache = result_cache,
    counted: bool = True,
    local_only: bool = False,
) -> Outcome | None:
    """Return the outcome if a cache tier holds ``query``'s result, else None (nothing counted).

    For the WSGI front's look at the tiers (a miss it then computes through
    ``result_get``, as the view does): it computes nothing, so it needs no caller.
    ``counted=False`` leaves counting the hit to the caller (the front counts
    its hits in batches: ``metrics.front_request``). ``local_only``: the
    in-process tier alone (for a request whose miss ``result_get`` answers,
    reading Redis in its lock's round trip).
    """
    found = cache.find_local(query) if local_only else cache.find(query)
    if found is MISSING:
        return None
    if counted:
        metrics.cache_lookup(query.kind, hit=True)
    return Outcome(found[0], _TIER_SOURCE[found[1]])


def result_get(
    *,
    query: ResultQuery,
    caller: Caller,
    cache: ResultCache = result_cache,
    compute: Compute | None = None,
    gate: ComputeGate = compute_gate,
    missed: bool = False,
) -> Outcome:
    """Return the result of ``query`` for ``caller``, computing it only if no tier has it.

    The in-process tier first; then the attempt at the stampede lock, which
    reads the Redis entry in its own round trip (``ResultCache.compute_lock``):
    a value there is a Redis hit (or, once this request waited for another
    holder, that holder's value), so a cold request asks Redis once before
    it computes instead of twice. Having the lock, the log; then the
    computation. Only the request that computes is charged: the attempt
    that takes the lock counts the caller's request rate
    (``Client.throttle``) and charges its digit budget in the same round
    trip (where the lock cannot, the gate does, inside the lock), and a
    value then found in the log gives both back (``ComputeGate.unused``),
    so hits, log reads and requests that get another request's result
    never count against a client; a client refused a charge still gets
    what the log holds. The gate (``compute.admission``) is entered just
    before computing; it refuses (the rate: DRF's ``Throttled``; the budget
    or a computation slot: ``compute.admission.Refused``), and then nothing
    is computed, logged or cached. ``compute`` replaces the kind's
    computation (tests). ``missed``: the caller has just looked ``query``
    up in the in-process tier (at least) and found nothing (the WSGI front,
    ``hit.MISS_KEY``).
    """
    found = MISSING if missed else cache.find_local(query)
    if found is not MISSING:
        metrics.cache_lookup(query.kind, hit=True)
        return Outcome(found[0], _TIER_SOURCE[found[1]])
    # The rate and the budget are charged by the attempt that takes the lock, in
    # its round trip (or by the gate, where the lock could not).
    charges = gate.charges(caller, cost=estimated_digits(query))
    if charges is not None and charges.never_fit:
        # A rate that refuses every computation (0 an hour) refuses before the lock:
        # what Redis or the log holds is still answered (hits are never throttled).
        held = _held(query, cache)
        if held is None:
            gate.refuse_at_once(caller, charges)
        return held
    with cache.compute_lock(query, charges=charges.requests if charges else ()) as lease:
        if lease.found is not None:
            metrics.cache_lookup(query.kind, hit=True)
            source = Source.COLLAPSED if lease.waited else Source.REDIS
            return Outcome(lease.found, source)
        metrics.cache_lookup(query.kind, hit=False)
        # With Redis up, the lock's attempt read the entry: missing. The log next,
        # under the lock (a recovered value is stored with the lock's release).
        try:
            payload = _from_log(query, cache, lease=lease if lease.held else None)
        except BaseException:
            gate.unused(charges, lease.charges)  # the log away (a 503): nothing computed
            raise
        if payload is not None:
            gate.unused(charges, lease.charges)  # charged for a computation not made
            return Outcome(payload, Source.LOG)
        # The row first, then the entry: no value is cached without its row.
        text, _ms = _computed(
            query,
            caller,
            compute,
            gate,
            record=lambda text, ms: result_record(query=query, text=text, compute_ms=ms),
            charges=charges,
            made=lease.charges,
        )
        payload = Payload.from_text(query, text)
        stored = cache.set(query, payload, lease=lease)
    return Outcome(payload, _computed_source(bool(stored)))


def _held(query: ResultQuery, cache: ResultCache) -> Outcome | None:
    """Return what Redis, else the log, holds for ``query`` (the in-process tier was asked)."""
    found = cache.get_shared(query)
    metrics.cache_lookup(query.kind, hit=found is not MISSING)
    if found is not MISSING:
        return Outcome(found, Source.REDIS)
    payload = _from_log(query, cache)
    return None if payload is None else Outcome(payload, Source.LOG)


@dataclass(frozen=True, slots=True)
class WarmOutcome:
    """What ``results_warm`` did with a batch: how many were computed, and how many were not."""

    computed: int
    cached: int


def results_warm(
    *,
    queries: list[ResultQuery],
    caller: Caller,
    cache: ResultCache = result_cache,
    compute: Compute | None = None,
    gate: ComputeGate = compute_gate,
) -> WarmOutcome:
    """Make every result of ``queries`` cached and logged, in a few round trips for the batch.

    The same outcome as ``result_get`` per query (Redis, else the log
    refilling Redis, else compute and record, each computation admitted for
    ``caller``), at a cost per batch rather than per result: one pipeline
    asks Redis which entries exist, one query per identity but n reads the
    logged values of the others (``identity``: the same as a single
    lookup's), one ``bulk_create`` (existing rows win) records what was
    computed and one pipeline stores every refilled or computed entry. No
    stampede lock is taken: a request computing the same value meanwhile
    stores the same bytes, and the log's unique constraint keeps one row.
    """
    present = cache.exists_many(queries)
    if present is None:  # Redis down: warm the log; Redis is refilled from it later
        present = [False] * len(queries)
    cache.count_hits(sum(present))
    for query, found in zip(queries, present, strict=True):
        metrics.cache_lookup(query.kind, hit=found)
    missing = [query for query, found in zip(queries, present, strict=True) if not found]
    logged = _log_lookup_many(missing)
    fills: list[tuple[ResultQuery, Payload]] = []
    rows: list[ComputedResult] = []
    for query in missing:
        text = logged.get(query)
        if text is not None:
            metrics.log_hit(query.kind)
        else:
            caller.before_computing()
            text, compute_ms = _computed(query, caller, compute, gate)
            rows.append(_log_row(query, text, compute_ms))
        fills.append((query, Payload.from_text(query, text)))
    if rows:
        with log_access(sending=sum(len(row.value) for row in rows)):
            ComputedResult.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    cache.set_many(fills)
    return WarmOutcome(computed=len(rows), cached=len(queries) - len(rows))


def result_delete(*, query: ResultQuery, cache: ResultCache = result_cache) -> bool:
    """Delete a result from every cache tier and the log; False, and nothing deleted, if
    Redis could not be reached.

    Every delete goes through here (the API's DELETE, the admin's delete
    page and bulk action), so none can delete a row whose Redis entry
    stays: deleting only the row would leave a value that Redis serves
    again, without a log row, once it returns. The cache entry is deleted
    before the row and once more after it, so a request that refilled the
    cache from the row in between cannot keep the value alive; inside a
    transaction (the admin deletes in one) other requests see the row until
    the commit, so it is evicted once more then. Those later evictions are
    best effort: should Redis fail after the first, the row is gone all
    the same and True is returned (the first eviction did reach Redis).
    """
    if not cache.delete(query):
        return False
    with log_access():
        _log_rows(query).delete()
    cache.delete(query)
    using = router.db_for_write(ComputedResult)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: cache.delete(query), using=using, robust=True)
    return True


def query_for_row(row: ComputedResult) -> ResultQuery:
    """Return the query that names a log row's result; raise UnknownKind for a kind
    this deployment does not register."""
    registry.get(row.kind)
    return ResultQuery(row.kind, row.n, digits=row.digits, mod=row.mod)


def results_evict(*, rows: Iterable[ComputedResult], cache: ResultCache = result_cache) -> bool:
    """Evict the cache entries of log rows (the rows stay); False if Redis was down."""
    return cache.delete_keys([query_for_row(row).cache_key for row in rows])


def results_recompute(
    *,
    rows: list[ComputedResult],
    caller: Caller,
    cache: ResultCache = result_cache,
    compute: Compute | None = None,
    gate: ComputeGate = compute_gate,
) -> int:
    """Recompute log rows in place (value, size, time) and refresh their cache entries.

    Each computation is admitted for ``caller`` (the admin names its staff
    user: a system caller, which waits for a slot and is counted as such).
    """
    for row in rows:
        query = query_for_row(row)
        caller.before_computing()
        text, row.compute_ms = _computed(query, caller, compute, gate)
        row.value, row.preview = text, preview_of(text)
        row.length = algorithms.count_digits(text)
        row.computed_at = timezone.now()
        row.save(update_fields=["value", "preview", "length", "compute_ms", "computed_at"])
        cache.delete(query)
        cache.set(query, Payload.from_text(query, text))
    return len(rows)


# What drawing the convergence picture is taken to cost: about 50 ms of CPU
# (the SVG of 240 points, each distance at 96 bits), about what fib(10**6)
# costs, so it is offloaded to a computation process; and what it is charged
# to a client's digit budget: about the bytes it stores (an SVG of some 20 kB).
PICTURE_WORK = 250_000
PICTURE_DIGITS = 20_000
PICTURE_KIND = "pi-convergence"
# Where a picture can come from: Redis only (no in-process tier, no log).
PICTURE_SOURCES = (Source.REDIS, Source.COLLAPSED, Source.COMPUTED, Source.COMPUTED_UNSTORED)


def convergence_picture(
    *,
    n: int,
    caller: Caller,
    cache: ResultCache = result_cache,
    gate: ComputeGate = compute_gate,
) -> tuple[bytes, Source]:
    """Return (the SVG of pi - pi(k) for k = 1..n, where it came from).

    The source is ``Source.REDIS`` (found), ``COLLAPSED`` (another request
    drew it while this one waited), or ``COMPUTED`` / ``COMPUTED_UNSTORED``
    (drawn by this call; stored in Redis or not).

    The picture is a derived result: cached (sealed, see
    ``compute.cache.pictures``) and never logged, otherwise admitted like
    any computation: the caller's throttle, then under a stampede lock of
    its own, the gate (charged ``PICTURE_DIGITS`` to a client's budget,
    holding a computation slot) and drawn in a computation process
    (``PICTURE_WORK`` is above the offloading threshold). n must be
    validated by the caller.
    """
    key = convergence.convergence_cache_key(n)
    found = cache.get_picture(key)
    if found is not None:
        return found, Source.REDIS
    caller.before_computing()
    with cache.picture_lock(key) as lease:
        if lease.found is not None:
            return lease.found, Source.COLLAPSED
        with gate.admit(caller, kind=PICTURE_KIND, cost=PICTURE_DIGITS):
            started = time.perf_counter()
            svg = compute_pool.run(convergence.convergence_svg_bytes, n, work=PICTURE_WORK)
            metrics.computed(PICTURE_KIND, time.perf_counter() - started)
        stored = cache.set_picture(key, svg, lease=lease)
    return svg, _computed_source(stored)
