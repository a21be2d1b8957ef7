"""Log-log SVG charts (``compute.domain.charts``): plain Python, no database, no Django."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from compute.domain import charts
from compute.domain.charts import Axis, Series, loglog_chart


def test_chart_places_points_on_log_axes():
    # Decades 10..1000 on x and 1..100 ms on y: the points sit on the corners.
    series = [Series("fib", "#000", "circle", [(10, 1.0), (1000, 100.0), (100, 10.0)])]
    n, ms = Axis("n", tip=lambda n: f"n = {n:,}"), Axis("ms", tip=lambda ms: f"{ms:.3g} ms")
    svg = loglog_chart(series, x_axis=n, y_axis=ms, width=400, height=300)
    left, right, top, bottom = 64, 150, 16, 52
    plot_w, plot_h = 400 - left - right, 300 - top - bottom
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)[:3]]
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)[:3]]
    assert xs == pytest.approx([left, left + plot_w, left + plot_w / 2], abs=0.06)
    assert ys == pytest.approx([top + plot_h, top, top + plot_h / 2], abs=0.06)
    assert "fib: n = 1,000, 100 ms" in svg


def test_chart_escapes_every_text_and_returns_a_plain_string():
    series = [Series('<b>"x"</b>', "#000", "square", [(1, 1.0)])]
    axis = Axis("a & b", tip=lambda v: "<v>")
    svg = loglog_chart(series, x_axis=axis, y_axis=axis, title="<title>")
    assert type(svg) is str  # the caller decides to mark it safe
    assert "<b>" not in svg and "<v>" not in svg and "<title><title>" not in svg
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;: &lt;v&gt;, &lt;v&gt;" in svg
    assert "a &amp; b" in svg


def test_chart_refuses_no_points_and_points_off_log_axes():
    axis = Axis("v")
    with pytest.raises(ValueError, match="at least one point"):
        loglog_chart([Series("empty", "#000", "circle")], x_axis=axis, y_axis=axis)
    with pytest.raises(ValueError, match="x > 0 and y > 0"):
        loglog_chart([Series("zero", "#000", "circle", [(0, 1.0)])], x_axis=axis, y_axis=axis)


def test_charts_import_nothing_from_django():
    tree = ast.parse(Path(charts.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name and name.split(".")[0] in ("django", "compute")}


def test_line_series_are_one_path_in_order_and_dashed_when_asked():
    solid = Series("distance", "#000", "circle", [(1, 1.0), (10, 0.1), (100, 0.01)], draw="line")
    dashed = Series("asymptote", "#111", "circle", [(1, 1.0), (100, 0.01)], draw="dashed")
    axis = Axis("v")
    svg = loglog_chart([solid, dashed], x_axis=axis, y_axis=axis, css_class="picture")
    paths = re.findall(r'<path class="line" d="([^"]+)"[^>]*>', svg)
    assert len(paths) == 2
    assert paths[0].count("L") == 2 and paths[1].count("L") == 1
    assert svg.count('stroke-dasharray="6 4"') == 2  # the dashed line and its legend swatch
    assert 'class="picture"' in svg and 'class="point"' not in svg


def test_a_line_of_one_point_is_a_marker():
    single = Series("distance", "#000", "circle", [(1, 3.14)], draw="line")
    axis = Axis("v")
    svg = loglog_chart([single], x_axis=axis, y_axis=axis)
    assert svg.count('class="point"') == 1 and 'class="line"' not in svg


def test_an_unknown_draw_is_refused():
    axis = Axis("v")
    with pytest.raises(ValueError, match="drawn as one of"):
        bars = Series("x", "#000", "circle", [(1, 1.0)], draw="bars")
        loglog_chart([bars], x_axis=axis, y_axis=axis)
