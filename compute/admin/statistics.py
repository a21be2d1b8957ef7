"""What the admin's statistics page shows: counts by kind, the cache hit ratio, a chart.

``ComputedResultAdmin.statistics_view`` (which checks the permission) serves
the page at ``<admin>/compute/computedresult/statistics/``; everything it
shows comes from ``statistics_figures``, read from the result log and the
cache. The chart of compute time against n is drawn by
``compute.domain.charts`` from the most recent rows of the log.

Its cost does not grow with the log or with Redis: counts by kind (kept
by database triggers, ``compute.models.ResultCount``) and the largest n
are exact and read a few index entries; compute times and digit counts
are those of the chart's 2,000 most recent rows (labelled so); the cache's
figures are exact on a small Redis and labelled estimates on a large one
(``compute.cache.stats``).

    >>> series, left_out = chart_series([("fib", 0, 0, 0.01, 1, 0), ("pi", 20, 7, 0.5, 20, 0)])
    >>> [(s.label, s.points) for s in series], left_out
    ([('pi (digits=D)', [(7, 0.5)])], 1)
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max
from django.utils.safestring import SafeString, mark_safe

from compute.cache import REDIS_ERRORS, ResultCache
from compute.domain import formats
from compute.domain.charts import Axis, Series, is_drawable, loglog_chart
from compute.domain.kinds import registry
from compute.models import ComputedResult, ResultCount

# The chart draws the most recent results, so the page stays fast and its
# SVG small however large the log grows.
CHART_MAX_POINTS = 2000
CHART_TITLE = "Compute time against n, log-log, from the result log"
N_AXIS = Axis("n (log scale)", tip=lambda n: f"n = {formats.number(int(n))}")
COMPUTE_TIME_AXIS = Axis("compute time, ms (log scale)", tip=formats.milliseconds)


def chart_series(rows: list[tuple]) -> tuple[list[Series], int]:
    """Group (kind, precision, n, ms, digits, modulus) rows into series; return them and the
    count left out.

    Each kind names its series and which one a row is drawn in
    (``Kind.series``, ``Kind.series_of``: pi's doubles and D-digit results,
    fib and its residues), in colours that stay distinct for colour-blind
    readers (Okabe-Ito) and shapes that tell them apart in greyscale, listed
    by label (as the kinds are, alphabetically, in the counts). A log
    scale has no place for n = 0 (fib(0)) or a zero time, so such rows are
    left out and counted instead. Series without points are dropped.
    """
    series: dict[str, Series] = {}
    for kind in registry.kinds():
        for style in kind.series():
            series[style.key] = Series(style.label, style.colour, style.shape)
    left_out = 0
    for kind, precision, n, ms, _digits, modulus in rows:
        if not is_drawable(n, ms):
            left_out += 1
            continue
        key = registry.get(kind).series_of(precision=precision, modulus=modulus)
        series[key].points.append((n, ms))
    drawn = sorted((s for s in series.values() if s.points), key=lambda s: s.label)
    return drawn, left_out


def compute_time_chart(series: list[Series]) -> SafeString | None:
    """Return the SVG chart of compute time against n, or None when there is nothing to draw."""
    if not series:
        return None
    svg = loglog_chart(series, x_axis=N_AXIS, y_axis=COMPUTE_TIME_AXIS, title=CHART_TITLE)
    # charts escapes every text it interpolates; the rest of the SVG is numbers.
    return mark_safe(svg)  # noqa: S308


def chart_rows(limit: int = CHART_MAX_POINTS) -> list[tuple[str, int, int, float, int, int]]:
    """Return (kind, precision, n, ms, digits, modulus) of the ``limit`` most recent results,
    newest first.

    An index walk (``-computed_at, -id``) of ``limit`` rows whatever the log's size.
    """
    rows = ComputedResult.objects.order_by("-computed_at", "-id").values_list(
        "kind", "precision", "n", "compute_ms", "length", "modulus"
    )[:limit]
    return list(rows)


def kind_counts(recent: list[tuple[str, int, int, float, int, int]]) -> list[dict[str, Any]]:
    """Return one row per kind: exact counts and largest n, and figures of the recent rows.

    The exact figures cost a few indexed reads: the counts are the rows of
    ``ResultCount`` (kept by the database's triggers), the largest n the
    last entry per kind of the unique index (kind, n, precision); compute
    times and digit counts would need every row, so they come from
    ``recent`` (the chart's rows) and the page says so.
    """
    by_kind: dict[str, dict[str, Any]] = {}
    for count in ResultCount.objects.filter(results__gt=0):
        row = by_kind.setdefault(count.kind, {"kind": count.kind, "results": 0, "with_digits": 0})
        row["results"] += count.results
        if count.with_digits:
            row["with_digits"] += count.results
    for kind, row in by_kind.items():
        row["largest_n"] = ComputedResult.objects.filter(kind=kind).aggregate(top=Max("n"))["top"]
        row["largest_n_text"] = formats.number(row["largest_n"])
        times = [ms for row_kind, _, _, ms, _, _ in recent if row_kind == kind]
        digits = [length for row_kind, _, _, _, length, _ in recent if row_kind == kind]
        row["recent"] = len(times)
        row["mean_ms"] = sum(times) / len(times) if times else None
        row["max_ms"] = max(times, default=None)
        row["mean_digits_text"] = (
            formats.number(round(sum(digits) / len(digits))) if digits else "-"
        )
    return [by_kind[kind] for kind in sorted(registry.names()) if kind in by_kind]


def cache_figures(cache: ResultCache) -> dict[str, Any] | None:
    """Return ``cache.stats()`` plus a printable hit ratio, or None when Redis is unreachable."""
    if not cache.available:  # the breaker is open: do not wait for a timeout
        return None
    try:
        figures = cache.stats()
    except REDIS_ERRORS:
        return None
    estimated = set(figures.get("estimated", ()))
    figures["entries_text"] = (
        f"~{figures['entries']:,} \u00b1 {figures['entries_margin']:,}"
        if "entries" in estimated
        else f"{figures['entries']:,}"
    )
    about = "~" if "memory_bytes" in estimated else ""
    figures["memory_text"] = f"{about}{figures['memory_bytes'] / 2**20:,.1f} MiB"
    ratio = figures.get("hit_ratio")
    figures["hit_ratio_text"] = "no lookups yet" if ratio is None else f"{ratio:.1%}"
    if "fills" in figures:  # the deployment's own tally (every process adds to it)
        figures["hit_ratio_detail"] = (
            f"{formats.number(figures['hits'])} lookups answered by a cache tier, "
            f"{formats.number(figures['fills'])} entries stored after a miss; tallied by "
            "every process of this deployment"
        )
    else:  # Redis's server-wide keyspace counters
        figures["hit_ratio_detail"] = (
            f"{formats.number(figures['keyspace_hits'])} hits, "
            f"{formats.number(figures['keyspace_misses'])} misses: "
            "Redis's keyspace counters since the server started (every client of that server)"
        )
    return figures


def statistics_figures(*, cache: ResultCache) -> dict[str, Any]:
    """Return what the statistics page shows (the template's context, minus the admin's own).

    Keys: ``counts`` and ``total`` (``kind_counts``), ``cache`` (``cache_figures``),
    ``chart`` (safe SVG or None), ``chart_rows`` (rows read for it), ``chart_limit``
    and ``chart_left_out`` (rows that have no place on log axes).
    """
    rows = chart_rows()
    series, left_out = chart_series(rows)
    counts = kind_counts(rows)
    return {
        "counts": counts,
        "total": sum(row["results"] for row in counts),
        "cache": cache_figures(cache),
        "chart": compute_time_chart(series),
        "chart_rows": len(rows),
        "chart_limit": CHART_MAX_POINTS,
        "chart_left_out": left_out,
    }
