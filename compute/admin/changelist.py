"""The results changelist: deferred values, capped counts, cheap dates, Redis per page.

A large log is never loaded, counted or scanned in full by the changelist:

- ``ResultChangeList`` defers ``value`` (a fib(1,000,000) row holds 200 kB)
  and asks Redis whether each row of the page is cached in one pipelined
  round trip (``cache_states``);
- ``CappedCountPaginator`` counts at most ``count_cap`` rows;
- ``PeriodProbingQuerySet`` lists the date hierarchy's periods with indexed
  queries instead of a ``SELECT DISTINCT`` over every row.

``ComputedResultAdmin`` (``compute.admin.options``) plugs them in with
``get_changelist`` and ``paginator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from compute import services
from compute.cache import ResultCache
from compute.models import ComputedResult


class CappedCountPaginator(Paginator):
    """A paginator that counts at most ``count_cap`` rows.

    A plain ``COUNT(*)`` reads the whole log (or a whole filtered slice of
    it); counting a ``LIMIT count_cap + 1`` subquery costs at most that many
    index entries whatever the log's size. Beyond the cap the changelist
    says "more than N" and offers the first ``count_cap`` rows in pages;
    filters, the date hierarchy and search narrow the rest down.
    """

    count_cap = 10_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.count_cap + 1].count()

    @property
    def count(self) -> int:
        """Return the number of rows, at most ``count_cap`` (``capped`` tells if it was cut)."""
        return min(self._counted, self.count_cap)

    @property
    def capped(self) -> bool:
        """Return True when there are more rows than ``count_cap`` (the count was cut)."""
        return self._counted > self.count_cap


class PeriodProbingQuerySet(QuerySet):
    """A queryset whose ``datetimes()`` probes each period instead of scanning every row.

    The admin's date hierarchy lists the years, months or days that hold
    rows with ``datetimes()``, a ``SELECT DISTINCT`` over a date truncation
    of every row (over a second at 200,000 rows on SQLite). Here it takes
    the first and last timestamps (an index lookup), then asks one indexed
    ``EXISTS`` per candidate period: a dozen months, at most 31 days, one
    query per year of the log.
    """

    max_probes = 400

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None) -> Any:
        """Return the aware starts of the ``kind`` periods holding rows, like Django's."""
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        zone = tzinfo or timezone.get_current_timezone()
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        start = _period_start(bounds["first"].astimezone(zone), kind, zone)
        last = _period_start(bounds["last"].astimezone(zone), kind, zone)
        periods = []
        while start <= last and len(periods) <= self.max_probes:
            following = _period_after(start, kind, zone)
            periods.append((start, following))
            start = following
        if len(periods) > self.max_probes:
            return super().datetimes(field_name, kind, order, tzinfo)
        found = [
            begin
            for begin, end in periods
            if self.filter(**{f"{field_name}__gte": begin, f"{field_name}__lt": end}).exists()
        ]
        return found if order == "ASC" else found[::-1]


def _period_start(moment: datetime, kind: str, zone: Any) -> datetime:
    if kind == "year":
        return datetime(moment.year, 1, 1, tzinfo=zone)
    if kind == "month":
        return datetime(moment.year, moment.month, 1, tzinfo=zone)
    return datetime(moment.year, moment.month, moment.day, tzinfo=zone)


def _period_after(start: datetime, kind: str, zone: Any) -> datetime:
    if kind == "year":
        return datetime(start.year + 1, 1, 1, tzinfo=zone)
    if kind == "month":
        year, month = divmod(start.year * 12 + start.month, 12)  # month is 0-based here
        return datetime(year, month + 1, 1, tzinfo=zone)
    following = start.date() + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=zone)


class ResultChangeList(ChangeList):
    """The changelist of results: values deferred, Redis presence checked once per page.

    The presence of each row's entry in Redis is set on the row objects of
    this request (``row.cache_state``), never on the shared ModelAdmin, so
    concurrent requests cannot see each other's pages.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        """Return the filtered rows without their (possibly huge) ``value`` column."""
        queryset = super().get_queryset(request, exclude_parameters).defer("value")
        # Same query, with the date hierarchy's cheap datetimes().
        return PeriodProbingQuerySet(model=queryset.model, query=queryset.query.chain())

    def get_results(self, request: HttpRequest) -> None:
        """Fetch the page, then mark each row "yes"/"no"/"unknown" with one Redis round trip."""
        super().get_results(request)
        rows = list(self.result_list)  # evaluates the page once; the queryset keeps these objects
        for row, state in zip(rows, cache_states(self.model_admin.result_cache, rows), strict=True):
            row.cache_state = state


def cache_states(cache: ResultCache, rows: Sequence[ComputedResult]) -> list[str]:
    """Return "yes"/"no" per row (is its value in Redis now?), all "unknown" if Redis is down."""
    if not rows:
        return []
    found = cache.exists_many([services.query_for_row(row) for row in rows])
    if found is None:
        return ["unknown"] * len(rows)
    return ["yes" if hit else "no" for hit in found]
