"""Figures measured by the live tests, printed in pytest's summary and kept under var/.

The cache issue asks for numbers that can be quoted (computations under a
burst, failed requests and worst latency per outage, seconds to recover,
bytes per digit). Tests call ``record(request, name, value, unit)``; the
first call registers a small plugin whose ``pytest_terminal_summary``
prints every figure of the run, and the run's figures are also written to
``var/test-figures.jsonl`` (one JSON object per line; each run replaces the
previous run's file).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mathsite import paths

FIGURES_FILE = paths.DEFAULT_DATA_DIR / "test-figures.jsonl"
_PLUGIN_NAME = "mathsite-figures"


class FigureReport:
    """Collects figures and prints them at the end of the run."""

    def __init__(self) -> None:
        self.figures: list[tuple[str, Any, str]] = []
        self.run = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
            FIGURES_FILE.write_text("")
        except OSError:
            pass  # the summary still shows them

    def add(self, name: str, value: Any, unit: str) -> None:
        self.figures.append((name, value, unit))
        try:
            with FIGURES_FILE.open("a") as handle:
                entry = {"run": self.run, "name": name, "value": value, "unit": unit}
                handle.write(json.dumps(entry) + "\n")
        except OSError:
            pass  # the summary still shows it

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.figures:
            return
        terminalreporter.section("mathsite measured figures")
        width = max(len(name) for name, _, _ in self.figures)
        for name, value, unit in self.figures:
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            terminalreporter.write_line(f"{name:<{width}}  {shown} {unit}".rstrip())
        terminalreporter.write_line(f"(also in {FIGURES_FILE})")


def record(request: pytest.FixtureRequest, name: str, value: Any, unit: str = "") -> None:
    """Record one figure for the end-of-run summary."""
    manager = request.config.pluginmanager
    report = manager.get_plugin(_PLUGIN_NAME)
    if report is None:
        report = FigureReport()
        manager.register(report, _PLUGIN_NAME)
    report.add(name, value, unit)
