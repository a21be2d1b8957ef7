"""The result-log admin through Django's test client, on the real database and Redis.

Reference values come from independent computations here (a Fibonacci loop,
an exact Basel partial sum with ``fractions`` and ``decimal``), never from
``compute.domain.maths``. "Redis down" is a real unreachable server: the admin's
``result_cache`` collaborator is swapped for a ``ResultCache`` whose cache
alias points at a TCP port that is bound but not listening, so every
connection attempt is refused by the kernel, exactly as when Redis has
died; the rest of the process keeps using the test Redis.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compute import services
from compute.admin import changelist as result_changelist
from compute.admin import options as result_admin
from compute.admin.charts import Axis, Series, loglog_chart
from compute.admin.statistics import chart_series
from compute.cache import ResultCache, result_cache
from compute.domain.query import ResultQuery
from compute.models import ComputedResult

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:compute_computedresult_changelist")
STATISTICS = reverse("admin:compute_computedresult_statistics")
INDEX = reverse("admin:index")


def fib_reference(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def pi_digits_reference(n: int, digits: int) -> str:
    """sqrt(6 * sum(1/i**2, i < n)) to ``digits`` significant digits, ties to even."""
    total = sum(Fraction(1, i * i) for i in range(1, n)) * 6
    with localcontext() as ctx:
        ctx.prec = digits + 30
        root = (Decimal(total.numerator) / Decimal(total.denominator)).sqrt()
        exponent = root.adjusted() - digits + 1
        return str(root.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN))


FIB_1000 = str(fib_reference(1000))
PI_100 = "3.131980747244363"  # SPEC: the exact value for n = 100, correctly rounded
PI_100_D50 = pi_digits_reference(100, 50)

QUERIES = {
    "fib0": ResultQuery("fib", 0),
    "fib10": ResultQuery("fib", 10),
    "fib1000": ResultQuery("fib", 1000),
    "pi100": ResultQuery("pi", 100),
    "pi100d50": ResultQuery("pi", 100, digits=50),
}


@pytest.fixture
def results() -> dict[str, ComputedResult]:
    """Compute five results through the service (log rows + Redis entries)."""
    for query in QUERIES.values():
        services.result_get(query=query)
    return {
        name: ComputedResult.objects.get(kind=q.kind, n=q.n, precision=q.precision)
        for name, q in QUERIES.items()
    }


def redis_has(redis_client, query: ResultQuery) -> bool:
    """Ask the test Redis directly whether ``query``'s entry exists."""
    return bool(redis_client.exists(caches["default"].make_key(query.cache_key)))


def change_url(row: ComputedResult) -> str:
    return reverse("admin:compute_computedresult_change", args=[row.pk])


def page_rows(html: str) -> dict[int, str]:
    """Map each changelist row's primary key to that row's HTML."""
    rows = {}
    for chunk in html.split("<tr")[1:]:
        found = re.search(r'name="_selected_action" value="(\d+)"', chunk)
        if found:
            rows[int(found.group(1))] = chunk
    return rows


def cell(row_html: str, column: str) -> str:
    found = re.search(rf'class="field-{column}[^"]*">(.*?)</t[dh]>', row_html, re.S)
    assert found, f"no {column} cell"
    return found.group(1)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client, action: str, rows: list[ComputedResult], **extra):
    data = {"action": action, "index": "0", "_selected_action": [r.pk for r in rows], **extra}
    return client.post(CHANGELIST, data, follow=True)


@pytest.fixture
def view_only_staff(django_user_model):
    """A staff member who may view (not add, change or delete) results."""
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_computedresult"))
    return user


@pytest.fixture
def unreachable_redis(settings, monkeypatch) -> Iterator[ResultCache]:
    """Point the admin at a Redis address where nothing listens (connection refused)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))  # bound, never listening: the port stays closed and ours
    port = holder.getsockname()[1]
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"},
    }
    down = ResultCache(alias="unreachable")
    monkeypatch.setattr(result_admin.ComputedResultAdmin, "result_cache", down)
    try:
        yield down
    finally:
        holder.close()


# --- access -------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, results):
    for url in (INDEX, CHANGELIST, change_url(results["fib10"]), STATISTICS):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_non_staff_gets_the_login_page(client, django_user_model, results):
    user = django_user_model.objects.create_user("visitor", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_computedresult"))
    client.force_login(user)
    for url in (CHANGELIST, STATISTICS):
        response = client.get(url, follow=True)
        assert response.redirect_chain[-1][0].startswith(reverse("admin:login"))
        assert b'id="login-form"' in response.content
        assert b"not authorized to access this page" in response.content


def test_staff_without_permission_is_forbidden(client, django_user_model, results):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(STATISTICS).status_code == 403
    assert b"compute_computedresult_statistics" not in client.get(INDEX).content


def test_view_only_staff_browses_and_may_evict_but_not_delete(client, view_only_staff, results):
    client.force_login(view_only_staff)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    actions = dict(response.context["action_form"].fields["action"].choices)
    assert set(actions) == {"", "evict_from_cache", "recompute"}
    assert client.get(STATISTICS).status_code == 200
    assert client.get(change_url(results["fib10"])).status_code == 200


def test_staff_cannot_add_rows(admin_client):
    add = reverse("admin:compute_computedresult_add")
    assert admin_client.get(add).status_code == 403
    response = admin_client.post(
        add, {"kind": "fib", "n": 5, "value": "5", "preview": "5", "length": 1}
    )
    assert response.status_code == 403
    assert not ComputedResult.objects.exists()
    assert add not in admin_client.get(CHANGELIST).content.decode()


def test_staff_cannot_edit_rows(admin_client, results):
    row = results["fib10"]
    page = admin_client.get(change_url(row))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # a view-only page: nothing to submit
    assert b'name="n"' not in page.content
    response = admin_client.post(
        change_url(row), {"kind": "fib", "n": 11, "value": "1", "compute_ms": 0}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.n, row.value) == (10, "55")


# --- the changelist -----------------------------------------------------------------


def test_changelist_shows_every_column_and_a_preview_not_the_value(admin_client, results):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = page_rows(response.content.decode())
    assert set(rows) == {row.pk for row in results.values()}
    big = rows[results["fib1000"].pk]
    assert cell(big, "kind").endswith(">fib</a>")
    assert ">1000</a>" in cell(big, "n")
    assert cell(big, "precision_display") == "exact"
    assert f"{FIB_1000[:10]}…{FIB_1000[-10:]}" in cell(big, "preview_display")
    assert f"({len(FIB_1000)} digits)" in cell(big, "preview_display")
    assert cell(big, "digits_display") == str(len(FIB_1000))
    assert cell(big, "compute_time").endswith(" ms")
    assert FIB_1000 not in response.content.decode()
    assert cell(rows[results["pi100"].pk], "precision_display") == "double"
    assert cell(rows[results["pi100d50"].pk], "precision_display") == "50 digits"
    assert cell(rows[results["pi100"].pk], "preview_display").count(PI_100) == 1
    digits50 = cell(rows[results["pi100d50"].pk], "preview_display")
    assert f"{PI_100_D50[:10]}…{PI_100_D50[-10:]}" in digits50
    assert "(50 digits)" in digits50
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cell(big, "computed_when"))
    # Sortable columns: every one but the preview and the Redis state.
    headers = response.context["cl"].list_display
    assert "column-preview_display" in response.content.decode()
    assert headers[-1] == "in_redis"
    assert b'class="sortable column-compute_time' in response.content
    assert b'class="column-in_redis' in response.content


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


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("1000", {"fib1000"}),
        ("100", {"pi100", "pi100d50"}),
        (" 10, 0 ", {"fib10", "fib0"}),
        ("0010", {"fib10"}),
    ],
)
def test_search_by_n(admin_client, results, term, expected):
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert set(page_rows(response.content.decode())) == {results[k].pk for k in expected}


@pytest.mark.parametrize("term", ["abc", "-5", "1e3", "10.0", "\u0661\u0660", "9" * 30, "10 x"])
def test_search_that_is_not_a_number_finds_nothing(admin_client, results, term):
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert page_rows(response.content.decode()) == {}


def test_columns_sort(admin_client, results):
    # list_display: 1 kind, 2 n, ... ; "o=2" sorts by n ascending, "-2" descending.
    ascending = admin_client.get(CHANGELIST, {"o": "2.1"})
    order = list(page_rows(ascending.content.decode()))
    assert [ComputedResult.objects.get(pk=pk).n for pk in order] == [0, 10, 100, 100, 1000]
    descending = admin_client.get(CHANGELIST, {"o": "-5"})  # digit count, largest first
    lengths = [
        ComputedResult.objects.get(pk=pk).length for pk in page_rows(descending.content.decode())
    ]
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[0] == len(FIB_1000)


# --- the detail page ----------------------------------------------------------------


def test_detail_shows_the_full_value_copyable_with_its_api_link(admin_client, client, results):
    row = results["fib1000"]
    page = admin_client.get(change_url(row)).content.decode()
    assert f'<pre id="result-value" class="result-value" tabindex="0">{FIB_1000}</pre>' in page
    assert 'class="button result-copy"' in page
    assert "compute/admin/copy.js" in page
    assert "compute/admin/results.css" in page
    assert re.search(r"In Redis now:</label>\s*<div class=\"readonly\">yes<", page)
    assert '<a href="/api/fib/1000/" class="result-api-link">' in page
    assert client.get("/api/fib/1000/?format=string").json()["result"] == FIB_1000

    page = admin_client.get(change_url(results["pi100d50"])).content.decode()
    assert f">{PI_100_D50}</pre>" in page
    link = re.search(r'<a href="([^"]+)" class="result-api-link">', page).group(1)
    assert link == "/api/pi/100/?digits=50"
    assert client.get(link).json()["result"] == PI_100_D50


def test_copy_script_is_served_locally(admin_client):
    response = admin_client.get("/static/compute/admin/copy.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"navigator.clipboard" in body
    assert b"execCommand" in body


# --- actions ------------------------------------------------------------------------


def test_evict_removes_the_keys_and_keeps_the_rows(admin_client, client, results, redis_client):
    chosen = [results["fib1000"], results["pi100d50"]]
    assert all(redis_has(redis_client, services.query_for_row(r)) for r in chosen)
    response = run_action(admin_client, "evict_from_cache", chosen)
    assert messages_of(response) == [  # newest first, as listed
        "Evicted 2 results from the cache: pi(100) (50 digits), fib(1000). "
        "Their log rows stay; the next request reads them from the log."
    ]
    assert not any(redis_has(redis_client, services.query_for_row(r)) for r in chosen)
    assert redis_has(redis_client, QUERIES["fib10"])
    assert ComputedResult.objects.count() == 5
    rows = page_rows(response.content.decode())
    assert cell(rows[results["fib1000"].pk], "in_redis") == "no"
    body = client.get("/api/fib/1000/?format=string").json()
    assert body["cached"] is True and body["result"] == FIB_1000  # from the log


def test_recompute_refreshes_value_time_and_cache(admin_client, client, results, redis_client):
    row = results["fib10"]
    past = timezone.now() - timedelta(days=3)
    ComputedResult.objects.filter(pk=row.pk).update(
        value="54", preview="54", compute_ms=12345.0, computed_at=past
    )
    services.results_evict(rows=[row])
    assert client.get("/api/fib/10/").json()["result"] == 54  # the bad row reached Redis
    response = run_action(admin_client, "recompute", [row])
    [message] = messages_of(response)
    assert message.startswith("Recomputed 1 result in ")
    assert "fib(10)" in message
    refreshed = ComputedResult.objects.get(kind="fib", n=10)
    assert refreshed.value == str(fib_reference(10)) == "55"
    assert refreshed.compute_ms < 12345.0
    assert refreshed.computed_at > past
    assert ComputedResult.objects.filter(kind="fib", n=10, precision=0).count() == 1
    assert redis_has(redis_client, QUERIES["fib10"])
    body = client.get("/api/fib/10/").json()
    assert body == {"cached": True, "result": 55, "n": 10}


def test_recompute_refuses_more_than_its_limit(admin_client, results, monkeypatch):
    monkeypatch.setattr(result_admin.ComputedResultAdmin, "recompute_limit", 1)
    before = {r.pk: r.computed_at for r in ComputedResult.objects.all()}
    response = run_action(admin_client, "recompute", [results["fib10"], results["pi100"]])
    assert messages_of(response) == [
        "Nothing was recomputed: 2 results were selected and at most 1 are recomputed at a time."
    ]
    assert {r.pk: r.computed_at for r in ComputedResult.objects.all()} == before


def test_delete_selected_evicts_the_cache_entries(admin_client, results, redis_client):
    chosen = [results["fib10"], results["pi100"]]
    confirm = run_action(admin_client, "delete_selected", chosen)
    assert b"Are you sure" in confirm.content
    response = run_action(admin_client, "delete_selected", chosen, post="yes")
    assert "Successfully deleted 2 computed results." in messages_of(response)
    assert any(
        m.startswith("Evicted the cache entries of 2 results") for m in messages_of(response)
    )
    assert not ComputedResult.objects.filter(pk__in=[r.pk for r in chosen]).exists()
    assert not redis_has(redis_client, QUERIES["fib10"])
    assert not redis_has(redis_client, QUERIES["pi100"])
    assert redis_has(redis_client, QUERIES["fib1000"])


def test_delete_from_the_detail_page_evicts(admin_client, client, results, redis_client):
    row = results["fib1000"]
    url = reverse("admin:compute_computedresult_delete", args=[row.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert "Evicted the cache entry of fib(1000)." in messages_of(response)
    assert not ComputedResult.objects.filter(pk=row.pk).exists()
    assert not redis_has(redis_client, QUERIES["fib1000"])
    assert client.get("/api/fib/1000/").json()["cached"] is False  # computed again


# --- Redis down ---------------------------------------------------------------------


def test_redis_down_changelist_and_detail_say_unknown(admin_client, results, unreachable_redis):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = page_rows(response.content.decode())
    assert {cell(html, "in_redis") for html in rows.values()} == {"unknown"}
    assert not unreachable_redis.available  # the refused connection opened the breaker
    page = admin_client.get(change_url(results["fib10"])).content.decode()
    assert re.search(r"In Redis now:</label>\s*<div class=\"readonly\">unknown<", page)


def test_redis_down_evict_says_it_could_not_reach_redis(
    admin_client, results, unreachable_redis, redis_client
):
    response = run_action(admin_client, "evict_from_cache", [results["fib10"]])
    assert messages_of(response) == [
        "Could not reach Redis: evicted 0 of 1 result; the others are still cached. "
        "Try again when Redis is back."
    ]
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert redis_has(redis_client, QUERIES["fib10"])  # the real entry was not touched


def test_redis_down_recompute_and_delete_still_work(admin_client, results, unreachable_redis):
    response = run_action(admin_client, "recompute", [results["pi100"]])
    texts = messages_of(response)
    assert texts[0].startswith("Recomputed 1 result in ")
    assert texts[1].startswith("Could not reach Redis: the cache entries were not refreshed")
    assert ComputedResult.objects.get(pk=results["pi100"].pk).value == PI_100

    response = run_action(admin_client, "delete_selected", [results["fib10"]], post="yes")
    texts = messages_of(response)
    assert "Successfully deleted 1 computed result." in texts
    assert any(t.startswith("Could not reach Redis: the cache entries of fib(10)") for t in texts)
    assert not ComputedResult.objects.filter(pk=results["fib10"].pk).exists()


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


# --- statistics ---------------------------------------------------------------------


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


def test_chart_places_points_on_log_axes():
    # Decades 10..1000 on x and 1..100 ms on y: the points sit on the corners.
    series = [Series("fib", "#000", "circle", [(10, 1.0), (1000, 100.0), (100, 10.0)])]
    n, ms = Axis("n", tip=lambda n: f"n = {n:,}"), Axis("ms", tip=lambda ms: f"{ms:.3g} ms")
    svg = loglog_chart(series, x_axis=n, y_axis=ms, width=400, height=300)
    left, right, top, bottom = 64, 150, 16, 52
    plot_w, plot_h = 400 - left - right, 300 - top - bottom
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)[:3]]
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)[:3]]
    assert xs == pytest.approx([left, left + plot_w, left + plot_w / 2], abs=0.06)
    assert ys == pytest.approx([top + plot_h, top, top + plot_h / 2], abs=0.06)
    assert "fib: n = 1,000, 100 ms" in svg


def test_chart_series_split_by_kind_and_precision():
    rows = [("fib", 0, 0, 0.01), ("fib", 0, 5, 0.02), ("pi", 0, 7, 0.5), ("pi", 20, 7, 0.0)]
    series, left_out = chart_series(rows)
    assert [(s.label, s.points) for s in series] == [
        ("fib", [(5, 0.02)]),
        ("pi (double)", [(7, 0.5)]),
    ]
    assert left_out == 2
