"""Template filters for the site's pages: the formats of ``compute.domain.formats``.

{% load mathsite %}{{ row.n|thousands }} {{ row.compute_ms|ms }} {{ row.computed_at|moment }}
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from compute.domain import formats

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    """Return ``value`` with thousands separators (empty for None)."""
    return "" if value is None else formats.number(int(value))


@register.filter
def ms(value: float | None) -> str:
    """Return a compute time in milliseconds as the admin shows it (empty for None)."""
    return "" if value is None else formats.milliseconds(float(value))


@register.filter
def moment(value: datetime | None) -> str:
    """Return a timestamp in the current time zone (empty for None)."""
    return "" if value is None else formats.moment(timezone.localtime(value))
