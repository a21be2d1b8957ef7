"""WSGI entry point for live-server tests: mathsite's application plus a computation probe.

Live tests must count computations exactly and sometimes hold one open
(to kill the worker doing it, or to make concurrent requests overlap it).
Response bodies alone cannot prove either, so this module wraps the pure
maths functions that ``compute.services.result_text`` calls (looked up on
``compute.domain.maths`` at call time) before the application is built:

- ``MATHSITE_TEST_COMPUTE_LOG=path``: every computation appends
  ``start <pid> <kind> <n>`` before and ``end <pid> <kind> <n>`` after
  computing (one ``O_APPEND`` write per line: atomic across processes).
- ``MATHSITE_TEST_SLOW="lo-hi:seconds[:once],..."``: fib(n) with lo <= n <= hi
  sleeps that long before computing; with ``once`` only the first
  computation of each n does (decided from the log's ``start`` lines).

Everything else (services, cache, locks, breaker, views) is the real code.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")

from compute.domain import maths as algorithms
from mathsite.wsgi import application

LOG = os.environ.get("MATHSITE_TEST_COMPUTE_LOG", "")


def _slow_ranges(spec: str) -> list[tuple[int, int, float, bool]]:
    ranges = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        bounds, seconds, *flags = part.split(":")
        lo, hi = (int(x) for x in bounds.split("-"))
        ranges.append((lo, hi, float(seconds), "once" in flags))
    return ranges


SLOW = _slow_ranges(os.environ.get("MATHSITE_TEST_SLOW", ""))


def _note(event: str, kind: str, n: int) -> int:
    """Append one event line to the compute log; return how many ``start``s n has."""
    if not LOG:
        return 0
    line = f"{event} {os.getpid()} {kind} {n}\n".encode()
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    wanted = ["start", kind, str(n)]
    with open(LOG, encoding="ascii") as handle:
        return sum(1 for entry in handle if entry.split()[0:1] + entry.split()[2:4] == wanted)


def _probe(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def probed(n: int, *args: Any) -> Any:
        starts = _note("start", kind, n)
        if kind == "fib":
            for lo, hi, seconds, once in SLOW:
                if lo <= n <= hi and (not once or starts <= 1):
                    time.sleep(seconds)
                    break
        try:
            return function(n, *args)
        finally:
            _note("end", kind, n)

    return probed


algorithms.fib_decimal = _probe("fib", algorithms.fib_decimal)
algorithms.pi_double = _probe("pi", algorithms.pi_double)
algorithms.pi_digits = _probe("pi", algorithms.pi_digits)

__all__ = ["application"]
