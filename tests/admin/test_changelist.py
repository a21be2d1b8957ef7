"""The results changelist (``compute.admin.changelist``) through the admin's pages.

One Redis round trip per page and no value loaded, capped counts, the date
hierarchy's probing queryset against Django's own ``datetimes()``, and
"unknown" when Redis cannot be reached.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import caches
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compute.admin import changelist as result_changelist
from compute.admin import options as result_admin
from compute.cache import result_cache
from compute.models import ComputedResult
from tests.admin.pages import CHANGELIST, QUERIES, cell, change_url, page_rows

pytestmark = pytest.mark.django_db


def test_changelist_in_redis_is_one_round_trip_and_never_loads_values(
    admin_client, results, redis_client, monkeypatch
):
    redis_client.delete(caches["default"].make_key(QUERIES["fib10"].cache_key))
    calls = []
    real = result_cache.exists_many

    def counting(queries):
        calls.append(len(queries))
        return real(queries)

    monkeypatch.setattr(result_cache, "exists_many", counting)
    from django.db import connection

    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST)
    assert calls == [5]  # one pipelined check for the whole page
    rows = page_rows(response.content.decode())
    assert cell(rows[results["fib10"].pk], "in_redis") == "no"
    assert cell(rows[results["fib1000"].pk], "in_redis") == "yes"
    row_reads = [q["sql"] for q in captured if "compute_computedresult" in q["sql"]]
    assert row_reads
    assert not any('"value"' in sql for sql in row_reads)
    # No full-table COUNT(*): every count is over a LIMITed subquery.
    counts = [sql for sql in row_reads if "COUNT(" in sql.upper()]
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts)


def test_count_is_capped_on_large_logs(admin_client, results, monkeypatch):
    monkeypatch.setattr(result_changelist.CappedCountPaginator, "count_cap", 3)
    monkeypatch.setattr(result_admin.ComputedResultAdmin, "list_per_page", 2)
    response = admin_client.get(CHANGELIST)
    assert b"more than 3 computed results" in response.content
    assert len(page_rows(response.content.decode())) == 2
    response = admin_client.get(CHANGELIST, {"kind__exact": "pi"})
    assert b"2 computed results" in response.content
    assert b"more than" not in response.content


def test_filter_by_kind_and_date(admin_client, results):
    pis = {results["pi100"].pk, results["pi100d50"].pk}
    response = admin_client.get(CHANGELIST, {"kind__exact": "pi"})
    assert set(page_rows(response.content.decode())) == pis
    old = results["fib0"]
    ComputedResult.objects.filter(pk=old.pk).update(
        computed_at=timezone.now() - timedelta(days=800)
    )
    this_year = timezone.now().year
    response = admin_client.get(CHANGELIST, {"computed_at__year": this_year})
    assert old.pk not in page_rows(response.content.decode())
    assert len(page_rows(response.content.decode())) == 4
    response = admin_client.get(CHANGELIST, {"computed_at__year": this_year - 2})
    assert set(page_rows(response.content.decode())) == {old.pk}
    assert b'class="date-back"' in response.content  # the date hierarchy's way back up
    years = admin_client.get(CHANGELIST).content.decode()
    assert f"?computed_at__year={this_year - 2}" in years  # a link per year in the log


def test_date_hierarchy_periods_match_djangos_distinct(results):
    # Around a year end and Paris's spring DST change (2024-03-31 01:00 UTC).
    moments = [
        datetime(2023, 12, 31, 23, 30, tzinfo=UTC),
        datetime(2024, 3, 30, 23, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 0, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 22, 30, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
    ]
    for row, moment in zip(results.values(), moments, strict=True):
        ComputedResult.objects.filter(pk=row.pk).update(computed_at=moment)
    levels = [
        ("year", {}),
        ("month", {"computed_at__year": 2024}),
        ("day", {"computed_at__year": 2024, "computed_at__month": 3}),
        ("day", {"computed_at__year": 2023, "computed_at__month": 12}),
    ]
    for zone in ("UTC", "Europe/Paris", "America/New_York"):
        with timezone.override(zone):
            for kind, lookups in levels:
                plain = ComputedResult.objects.filter(**lookups)
                probing = result_changelist.PeriodProbingQuerySet(
                    model=ComputedResult, query=plain.query.chain()
                )
                expected = list(plain.datetimes("computed_at", kind))
                assert probing.datetimes("computed_at", kind) == expected, (zone, kind)
                assert probing.datetimes("computed_at", kind, "DESC") == expected[::-1]


def test_date_hierarchy_never_scans_with_distinct(admin_client, results):
    from django.db import connection

    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(CHANGELIST).status_code == 200
    assert not any("DISTINCT" in q["sql"].upper() for q in captured)


def test_redis_down_changelist_and_detail_say_unknown(admin_client, results, unreachable_redis):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = page_rows(response.content.decode())
    assert {cell(html, "in_redis") for html in rows.values()} == {"unknown"}
    assert not unreachable_redis.available  # the refused connection opened the breaker
    page = admin_client.get(change_url(results["fib10"])).content.decode()
    assert re.search(r"In Redis now:</label>\s*<div class=\"readonly\">unknown<", page)
