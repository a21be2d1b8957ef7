"""The statistics page and its figures (``compute.admin.statistics``)."""

from __future__ import annotations

import re

import pytest

from compute.admin.statistics import chart_series
from compute.cache import result_cache
from tests.admin.pages import CHANGELIST, INDEX, QUERIES, STATISTICS
from tests.support.junk import plant

pytestmark = pytest.mark.django_db


def test_statistics_page_is_linked_and_counts_by_kind(admin_client, results):
    assert STATISTICS in admin_client.get(INDEX).content.decode()
    assert STATISTICS in admin_client.get(CHANGELIST).content.decode()
    response = admin_client.get(STATISTICS)
    assert response.status_code == 200
    counts = {row["kind"]: row for row in response.context["counts"]}
    assert counts["fib"]["results"] == 3
    assert counts["pi"]["results"] == 2 and counts["pi"]["with_digits"] == 1
    assert counts["fib"]["largest_n"] == 1000
    html = response.content.decode()
    assert re.search(r'id="hit-ratio">(\d+\.\d%|no lookups yet)<', html)
    entries = re.search(r'id="cache-entries">(\d+)<', html)
    assert entries and int(entries.group(1)) >= 5  # five results (and any bookkeeping key)
    # Four points: fib(0) has no place on a log axis and is reported instead.
    assert html.count('class="point"') == 4
    assert "1 not drawn" in html
    chart = html.split('<svg xmlns="http://www.w3.org/2000/svg" class="result-chart"', 1)[1]
    assert "<script" not in chart.split("</svg>")[0]


def test_statistics_with_an_empty_log(admin_client):
    response = admin_client.get(STATISTICS)
    assert response.status_code == 200
    assert b"No results have been computed yet." in response.content
    assert b'class="result-chart"' not in response.content


def test_redis_down_statistics_say_unknown(admin_client, results, unreachable_redis):
    unreachable_redis.exists_many([QUERIES["fib10"]])  # opens the breaker, as a page would
    response = admin_client.get(STATISTICS)
    assert response.status_code == 200
    assert re.search(rb'id="hit-ratio">unknown<', response.content)


def test_redis_down_statistics_even_with_the_breaker_closed(
    admin_client, results, unreachable_redis
):
    assert unreachable_redis.available
    response = admin_client.get(STATISTICS)
    assert re.search(rb'id="hit-ratio">unknown<', response.content)


@pytest.mark.parametrize("junk", ["list", "hash"])
def test_junk_in_the_statistics_hash_is_no_figure_not_an_error(
    admin_client, results, redis_client, junk
):
    """A list where the hash should be (WRONGTYPE), or a hash whose hits are "x": the
    page used to say Redis was unreachable, or answer 500; now the tally reads as none."""
    plant(redis_client, result_cache.make_key("{meta}:stats"), junk)
    response = admin_client.get(STATISTICS)
    assert response.status_code == 200
    assert re.search(rb'id="hit-ratio">no lookups yet<', response.content)
    assert re.search(rb'id="cache-entries">\d+<', response.content)  # the rest is there
    assert result_cache.available


def test_chart_series_split_by_kind_and_precision():
    # (kind, precision, n, ms, digits, modulus), as chart_rows reads them
    rows = [
        ("fib", 0, 0, 0.01, 1, 0),
        ("fib", 0, 5, 0.02, 1, 0),
        ("pi", 0, 7, 0.5, 17, 0),
        ("pi", 20, 7, 0.0, 20, 0),
    ]
    series, left_out = chart_series(rows)
    assert [(s.label, s.points) for s in series] == [
        ("fib", [(5, 0.02)]),
        ("pi (double)", [(7, 0.5)]),
    ]
    assert left_out == 2


def test_statistics_label_the_cache_estimates_of_a_large_redis(admin_client, results, settings):
    # Every database counts as large: the cache's figures come from a sample.
    settings.CACHE_STATS_EXACT_MAX_KEYS = 0
    html = admin_client.get(STATISTICS).content.decode()
    assert "entries in this namespace (estimate)" in html
    assert re.search(r'id="cache-entries">~[\d,]+ \u00b1 [\d,]+<', html)
    assert 'id="cache-estimate-note"' in html and "random sample" in html
    settings.CACHE_STATS_EXACT_MAX_KEYS = 10**9
    html = admin_client.get(STATISTICS).content.decode()
    assert "(estimate)" not in html and "exact: every key of the database scanned" in html


def test_statistics_read_no_column_of_every_row(admin_client, results):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(STATISTICS)
    assert response.status_code == 200
    log = [q["sql"] for q in queries.captured_queries if "compute_computedresult" in q["sql"]]
    # Sums and means need every row; they come from the recent rows only (a LIMIT).
    assert not [sql for sql in log if "SUM(" in sql.upper() or "AVG(" in sql.upper()]
    assert any("LIMIT 2000" in sql for sql in log)
    counts = {row["kind"]: row for row in response.context["counts"]}
    assert counts["fib"]["recent"] == 3 and counts["pi"]["recent"] == 2
