"""The admin's statistics page: counts by kind, cache hit ratio, compute time against n.

``statistics`` is served by ``ComputedResultAdmin.statistics_view`` (which
checks the permission) at ``<admin>/compute/computedresult/statistics/``.
The chart is an SVG written here, on the server, from the result log: no
JavaScript, no chart library, nothing fetched from the internet, so it works
on an offline machine and in any browser.

    >>> svg = loglog_chart([Series("fib", "#0072B2", "circle", [(10, 0.01), (10**6, 40.0)])])
    >>> svg.count('class="point')
    2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Avg, Count, Max, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from compute.cache import REDIS_ERRORS, ResultCache
from compute.domain.query import FIB, PI
from compute.models import ComputedResult

if TYPE_CHECKING:
    from compute.admin.options import ComputedResultAdmin

# The chart draws the most recent results, so the page stays fast and its
# SVG small however large the log grows.
CHART_MAX_POINTS = 2000


@dataclass
class Series:
    """One set of markers on the chart: a label, a colour, a marker shape and (n, ms) points."""

    label: str
    color: str
    marker: str  # "circle", "square" or "triangle"
    points: list[tuple[int, float]] = field(default_factory=list)


# Colours that stay distinct for colour-blind readers (Okabe-Ito), plus
# distinct shapes so the series can be told apart in greyscale too.
_SERIES_STYLE = {
    "fib": ("fib", "#0072B2", "circle"),
    "pi": ("pi (double)", "#D55E00", "square"),
    "pi-digits": ("pi (digits=D)", "#009E73", "triangle"),
}


def _series_key(kind: str, precision: int) -> str:
    if kind == PI and precision:
        return "pi-digits"
    return kind


def chart_series(rows: list[tuple[str, int, int, float]]) -> tuple[list[Series], int]:
    """Group (kind, precision, n, ms) rows into series; return them and the count left out.

    A log scale has no place for n = 0 (fib(0)) or a zero time, so such rows
    are left out and counted instead.
    """
    series = {key: Series(*style) for key, style in _SERIES_STYLE.items()}
    left_out = 0
    for kind, precision, n, ms in rows:
        if n < 1 or ms <= 0:
            left_out += 1
            continue
        series[_series_key(kind, precision)].points.append((n, ms))
    return [s for s in series.values() if s.points], left_out


def _decades(low: float, high: float) -> tuple[int, int]:
    """Return the whole powers of ten around [low, high] (at least one decade wide)."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if last <= first:
        last = first + 1
    return first, last


def _power_label(exponent: int, x: float, y: float, anchor: str) -> str:
    """Return an SVG text of 10 to the power ``exponent`` (1 and 10 written out)."""
    if exponent == 0:
        body = "1"
    elif exponent == 1:
        body = "10"
    else:
        body = f'10<tspan dy="-6" font-size="9">{exponent}</tspan>'
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" '
        f'fill="currentColor">{body}</text>'
    )


def _marker(shape: str, x: float, y: float, color: str, *, css: str, tip: str = "") -> str:
    """Return one marker element (circle, square or triangle), with a tooltip if ``tip``."""
    style = f'class="{css}" fill="{color}" fill-opacity="0.75"'
    if shape == "square":
        tag, geometry = "rect", f'x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7"'
    elif shape == "triangle":
        tag = "path"
        top, base = y - 4.5, y + 3.5
        geometry = f'd="M{x:.1f} {top:.1f}L{x + 4.5:.1f} {base:.1f}L{x - 4.5:.1f} {base:.1f}Z"'
    else:
        tag, geometry = "circle", f'cx="{x:.1f}" cy="{y:.1f}" r="4"'
    if not tip:
        return f"<{tag} {geometry} {style}/>"
    return f"<{tag} {geometry} {style}><title>{escape(tip)}</title></{tag}>"


def loglog_chart(
    series: list[Series], *, width: int = 760, height: int = 420, title: str = ""
) -> SafeString:
    """Return an inline SVG plotting every series' (n, ms) points on log-log axes.

    Points must have n >= 1 and ms > 0 (see ``chart_series``). Each marker
    carries a tooltip with its exact values. Axis ticks sit on powers of ten,
    thinned so that at most about ten labels share an axis.
    """
    left, right, top, bottom = 64, 150, 16, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for s in series for p in s.points]
    x0, x1 = _decades(min(n for n, _ in points), max(n for n, _ in points))
    y0, y1 = _decades(min(ms for _, ms in points), max(ms for _, ms in points))

    def px(n: int) -> float:
        return left + (math.log10(n) - x0) / (x1 - x0) * plot_w

    def py(ms: float) -> float:
        return top + plot_h - (math.log10(ms) - y0) / (y1 - y0) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="result-chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="currentColor" stroke-opacity="0.5"/>',
    ]
    x_step = max(1, math.ceil((x1 - x0) / 10))
    for exponent in range(x0, x1 + 1, x_step):
        x = px(10**exponent)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        out.append(_power_label(exponent, x, top + plot_h + 18, "middle"))
    y_step = max(1, math.ceil((y1 - y0) / 10))
    for exponent in range(y0, y1 + 1, y_step):
        y = py(10.0**exponent)
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        out.append(_power_label(exponent, left - 8, y + 4, "end"))
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle" '
        f'font-size="13" fill="currentColor">n (log scale)</text>'
    )
    out.append(
        f'<text x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="13" '
        f'fill="currentColor" transform="rotate(-90 16 {top + plot_h / 2:.1f})">'
        f"compute time, ms (log scale)</text>"
    )
    for s in series:
        out.append(f'<g class="series" data-series="{escape(s.label)}">')
        for n, ms in s.points:
            tip = f"{s.label}: n = {n:,}, {ms:.3g} ms"
            out.append(_marker(s.marker, px(n), py(ms), s.color, css="point", tip=tip))
        out.append("</g>")
    legend_x = left + plot_w + 16
    for index, s in enumerate(series):
        y = top + 14 + index * 22
        out.append(_marker(s.marker, legend_x + 5, y - 4, s.color, css="legend-marker"))
        out.append(
            f'<text x="{legend_x + 16}" y="{y}" font-size="12" fill="currentColor">'
            f"{escape(s.label)} ({len(s.points):,})</text>"
        )
    out.append("</svg>")
    # Every interpolated text above went through escape(); the rest is numbers.
    return mark_safe("".join(out))  # noqa: S308


def kind_counts() -> list[dict[str, Any]]:
    """Return one row per kind: results, with digits, largest n, mean and max time, digits."""
    rows = (
        ComputedResult.objects.order_by()
        .values("kind")
        .annotate(
            results=Count("id"),
            with_digits=Count("id", filter=Q(precision__gt=0)),
            largest_n=Max("n"),
            mean_ms=Avg("compute_ms"),
            max_ms=Max("compute_ms"),
            stored_digits=Sum("length"),
        )
    )
    by_kind = {row["kind"]: row for row in rows}
    for row in by_kind.values():
        row["largest_n_text"] = f"{row['largest_n']:,}"
        row["stored_digits_text"] = f"{row['stored_digits']:,}"
    return [by_kind[kind] for kind in (FIB, PI) if kind in by_kind]


def cache_figures(cache: ResultCache) -> dict[str, Any] | None:
    """Return ``cache.stats()`` plus a printable hit ratio, or None when Redis is unreachable."""
    if not cache.available:  # the breaker is open: do not wait for a timeout
        return None
    try:
        figures = cache.stats()
    except REDIS_ERRORS:
        return None
    ratio = figures.get("hit_ratio")
    figures["hit_ratio_text"] = "no lookups yet" if ratio is None else f"{ratio:.1%}"
    if "fills" in figures:  # the deployment's own tally (every process adds to it)
        figures["hit_ratio_detail"] = (
            f"{figures['hits']:,} lookups answered by a cache tier, "
            f"{figures['fills']:,} entries stored after a miss; tallied by every process "
            "of this deployment"
        )
    else:  # Redis's server-wide keyspace counters
        figures["hit_ratio_detail"] = (
            f"{figures['keyspace_hits']:,} hits, {figures['keyspace_misses']:,} misses: "
            "Redis's keyspace counters since the server started (every client of that server)"
        )
    return figures


def statistics(request: HttpRequest, *, model_admin: ComputedResultAdmin) -> HttpResponse:
    """Render the statistics page for ``model_admin``'s site (permission already checked)."""
    rows = list(
        ComputedResult.objects.order_by("-computed_at", "-id").values_list(
            "kind", "precision", "n", "compute_ms"
        )[:CHART_MAX_POINTS]
    )
    series, left_out = chart_series(rows)
    chart = (
        loglog_chart(series, title="Compute time against n, log-log, from the result log")
        if series
        else None
    )
    counts = kind_counts()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Result statistics",
        "opts": model_admin.opts,
        "counts": counts,
        "total": sum(row["results"] for row in counts),
        "cache": cache_figures(model_admin.result_cache),
        "chart": chart,
        "chart_rows": len(rows),
        "chart_limit": CHART_MAX_POINTS,
        "chart_left_out": left_out,
    }
    return TemplateResponse(request, "admin/compute/computedresult/statistics.html", context)
