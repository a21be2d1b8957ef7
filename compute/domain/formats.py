"""How numbers, times and dates read on every page for people: one definition each.

The admin's list, detail and statistics pages and the front page all show
n, digit counts, compute times and timestamps; writing each format once
here is what keeps them the same everywhere (the template filters of
``compute.templatetags.mathsite`` call these).

    >>> number(1234567), milliseconds(0.0215), milliseconds(12.345), milliseconds(1234.5)
    ('1,234,567', '0.022 ms', '12.35 ms', '1,234 ms')
"""

from __future__ import annotations

from datetime import datetime

# Timestamps as ISO 8601 without the "T": sortable, unambiguous, and the
# same width on every row.
MOMENT_FORMAT = "%Y-%m-%d %H:%M:%S"


def number(value: int) -> str:
    """Return an integer with thousands separators: ``1,000,000``."""
    return f"{value:,}"


def milliseconds(ms: float) -> str:
    """Return a compute time for people: three significant figures or whole milliseconds."""
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


def moment(when: datetime) -> str:
    """Return a timestamp (already in the zone to show) as ``2026-11-21 06:10:35``."""
    return when.strftime(MOMENT_FORMAT)
