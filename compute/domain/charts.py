"""Log-log charts as SVG, drawn on the server in plain Python: the site's one chart module.

No JavaScript, no chart library, nothing fetched from the internet: the
chart is a string of SVG that works on an offline machine and in any
browser. Two pictures use it: the admin's compute time against n (markers,
``compute.admin.statistics``) and the convergence of the Basel partial sums
(a line, its asymptote and n marked, ``compute.domain.convergence``). This
module knows nothing of results or of Django; the caller chooses the
series, how each is drawn (``DRAWS``), the axis titles and how a value
reads in a tooltip, and marks the returned string safe when it puts it in
a template (every text interpolated here is escaped).

    >>> n = Axis("n (log scale)", tip=lambda n: f"n = {n:,}")
    >>> ms = Axis("compute time, ms (log scale)", tip=lambda ms: f"{ms:.3g} ms")
    >>> fib = Series("fib", "#0072B2", "circle", [(10, 0.01), (10**6, 40.0)])
    >>> svg = loglog_chart([fib], x_axis=n, y_axis=ms, title="Compute time against n")
    >>> svg.count('class="point"')
    2
    >>> is_drawable(0, 1.0), is_drawable(1, 0.0), is_drawable(1, 1e-12)
    (False, False, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

MARKERS = ("circle", "square", "triangle")
# How a series is drawn: one marker per point (with a tooltip), or a solid or
# dashed line through its points in order (a line of one point is a marker).
DRAWS = ("markers", "line", "dashed")


@dataclass
class Series:
    """One series: a label, a colour, a marker shape (``MARKERS``), (x, y) points, a ``DRAWS``."""

    label: str
    color: str
    marker: str
    points: list[tuple[float, float]] = field(default_factory=list)
    draw: str = "markers"
    counted: bool = True  # the legend gives the number of points after the label


def _general(value: float) -> str:
    return f"{value:.3g}"


@dataclass(frozen=True)
class Axis:
    """One logarithmic axis: its title, and how a value on it is written in a tooltip."""

    title: str
    tip: Callable[[float], str] = _general


def is_drawable(x: float, y: float) -> bool:
    """Return True when (x, y) has a place on log-log axes (both strictly positive)."""
    return x > 0 and y > 0


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
    style = f'class="{css}" fill="{escape(color)}" fill-opacity="0.75"'
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


def _is_line(series: Series) -> bool:
    return series.draw != "markers" and len(series.points) > 1


def _line(series: Series, points: list[tuple[float, float]], *, css: str = "line") -> str:
    """Return one SVG path through ``points`` (already in pixels), solid or dashed."""
    d = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in points)
    dash = ' stroke-dasharray="6 4"' if series.draw == "dashed" else ""
    return (
        f'<path class="{css}" d="{d}" fill="none" stroke="{escape(series.color)}" '
        f'stroke-width="2"{dash}><title>{escape(series.label)}</title></path>'
    )


def loglog_chart(
    series: Sequence[Series],
    *,
    x_axis: Axis,
    y_axis: Axis,
    width: int = 760,
    height: int = 420,
    title: str = "",
    css_class: str = "result-chart",
) -> str:
    """Return an inline SVG (a plain ``str``) plotting every series' points on log-log axes.

    Each marker carries a tooltip "<label>: <x_axis.tip(x)>, <y_axis.tip(y)>";
    a line series (``draw`` "line" or "dashed") is one path through its
    points in their order, with its label as tooltip.
    Axis ticks sit on powers of ten, thinned so that at most about ten labels
    share an axis; the legend gives each series' label and point count.
    Every text interpolated into the SVG is escaped, so the caller may mark
    the result safe. Raise ValueError if no series has a point, if a point
    is not drawable (see ``is_drawable``) or if a ``draw`` is unknown.
    """
    if any(s.draw not in DRAWS for s in series):
        raise ValueError(f"a series is drawn as one of {', '.join(DRAWS)}")
    points = [p for s in series for p in s.points]
    if not points:
        raise ValueError("a chart needs at least one point")
    if not all(is_drawable(x, y) for x, y in points):
        raise ValueError("log-log axes only hold points with x > 0 and y > 0")
    left, right, top, bottom = 64, 150, 16, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = _decades(min(x for x, _ in points), max(x for x, _ in points))
    y0, y1 = _decades(min(y for _, y in points), max(y for _, y in points))

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (math.log10(y) - y0) / (y1 - y0) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class)}" width="{width}" '
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
        f'font-size="13" fill="currentColor">{escape(x_axis.title)}</text>'
    )
    out.append(
        f'<text x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-size="13" '
        f'fill="currentColor" transform="rotate(-90 16 {top + plot_h / 2:.1f})">'
        f"{escape(y_axis.title)}</text>"
    )
    for s in series:
        out.append(f'<g class="series" data-series="{escape(s.label)}">')
        if _is_line(s):
            out.append(_line(s, [(px(x), py(y)) for x, y in s.points]))
        else:
            for x, y in s.points:
                tip = f"{s.label}: {x_axis.tip(x)}, {y_axis.tip(y)}"
                out.append(_marker(s.marker, px(x), py(y), s.color, css="point", tip=tip))
        out.append("</g>")
    legend_x = left + plot_w + 16
    for index, s in enumerate(series):
        y = top + 14 + index * 22
        if _is_line(s):
            out.append(_line(s, [(legend_x - 2, y - 4), (legend_x + 12, y - 4)], css="legend-line"))
            text = escape(s.label)
        else:
            out.append(_marker(s.marker, legend_x + 5, y - 4, s.color, css="legend-marker"))
            text = escape(s.label)
            if s.counted:
                text += f" ({len(s.points):,})"
        out.append(
            f'<text x="{legend_x + 16}" y="{y}" font-size="12" fill="currentColor">{text}</text>'
        )
    out.append("</svg>")
    return "".join(out)
