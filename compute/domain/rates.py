"""Request rates as DRF writes them (``"20000/hour"``): the one parser of that syntax.

Settings validate ``THROTTLE_COMPUTE_RATE`` with it at start-up, and the
compute throttle turns the configured rate into a window with it. Stricter
than DRF's own ``SimpleRateThrottle.parse_rate`` (which takes ``-1/minute``
and ``3/fortnight`` apart only at the first request): a bad rate is refused
when the process starts.

    >>> parse_rate("20000/hour")
    (20000, 3600)
"""

from __future__ import annotations

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """Return (requests, seconds) for a rate such as ``"100/minute"``; raise ValueError otherwise.

    The period is read by its first letter, as DRF does (``s``, ``sec`` and
    ``second`` are all one second).
    """
    count, _, period = rate.partition("/")
    unit = period.strip()[:1]
    if not count.strip().isdigit() or unit not in PERIODS:
        raise ValueError(f"not a rate: {rate!r} (expected N/second|minute|hour|day)")
    return int(count), PERIODS[unit]
