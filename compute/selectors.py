"""Selectors: read-only queries over the result log."""

from __future__ import annotations

from django.db.models import QuerySet

from compute.models import ComputedResult


def result_log(*, kind: str) -> QuerySet[ComputedResult]:
    """Return the log rows of ``kind`` without their (possibly huge) values."""
    return ComputedResult.objects.filter(kind=kind).defer("value")
