"""Small statistics helpers for the benchmark (no numpy needed).

>>> median([3.0, 1.0, 2.0]), percentile([1.0, 2.0, 3.0, 4.0], 50)
(2.0, 2.5)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (NaN when empty)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Return the ``pct`` percentile of ``values`` by linear interpolation (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def timed_ms(function: Callable[[], object], repeats: int, *, min_seconds: float = 0.0) -> float:
    """Return the median wall time of ``function()`` in ms, over at least ``repeats`` calls.

    Fast functions are called in batches until a batch lasts ``min_seconds``
    so a timer's resolution does not dominate a sub-microsecond figure.
    """
    import time

    batch = 1
    if min_seconds:
        while True:
            started = time.perf_counter()
            for _ in range(batch):
                function()
            if time.perf_counter() - started >= min_seconds or batch >= 1 << 20:
                break
            batch *= 2
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batch):
            function()
        samples.append((time.perf_counter() - started) * 1000 / batch)
    return median(samples)
