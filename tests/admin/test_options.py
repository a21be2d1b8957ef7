"""``ComputedResultAdmin`` through Django's test client, on the real database and Redis.

Who may see and do what, the columns, search and sorting, the detail page,
the actions and deletes, and what they say when Redis is down. The
changelist machinery is tested in ``test_changelist``, the statistics page
in ``test_statistics``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from compute import services
from compute.admin import options as result_admin
from compute.models import ComputedResult
from tests.admin.pages import (
    CHANGELIST,
    FIB_1000,
    INDEX,
    PI_100,
    PI_100_D50,
    QUERIES,
    STATISTICS,
    cell,
    change_url,
    fib_reference,
    messages_of,
    page_rows,
    redis_has,
    run_action,
)

pytestmark = pytest.mark.django_db

# --- access ---------------------------------------------------------------------------


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


def _offered_actions(client) -> set[str]:
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is allowed
    return set() if form is None else set(dict(form.fields["action"].choices)) - {""}


def _grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_view_only_staff_browses_but_may_not_evict_recompute_or_delete(
    client, view_only_staff, results
):
    client.force_login(view_only_staff)
    assert _offered_actions(client) == set()
    assert client.get(STATISTICS).status_code == 200
    page = client.get(change_url(results["fib10"]))
    assert page.status_code == 200
    assert b"deletelink" not in page.content


def test_view_only_staff_forging_an_action_post_changes_nothing(
    client, view_only_staff, results, redis_client
):
    """A POST naming an action the user lacks is refused by Django: no eviction, no recompute."""
    client.force_login(view_only_staff)
    row = results["fib10"]
    ComputedResult.objects.filter(pk=row.pk).update(compute_ms=12345.0)
    for action in ("evict_from_cache", "recompute", "delete_selected"):
        response = run_action(client, action, list(results.values()))
        assert response.status_code == 200
        assert not any(m.startswith(("Evicted", "Recomputed")) for m in messages_of(response))
    assert all(redis_has(redis_client, query) for query in QUERIES.values())
    assert ComputedResult.objects.get(pk=row.pk).compute_ms == 12345.0  # not recomputed
    assert ComputedResult.objects.count() == len(QUERIES)


def test_staff_with_the_evict_permission_may_evict_only(
    client, view_only_staff, results, redis_client
):
    _grant(view_only_staff, "evict_computedresult")
    client.force_login(view_only_staff)
    assert _offered_actions(client) == {"evict_from_cache"}
    chosen = [results["fib1000"]]
    response = run_action(client, "evict_from_cache", chosen)
    assert messages_of(response)[0].startswith("Evicted 1 result from the cache: fib(1000).")
    assert not redis_has(redis_client, QUERIES["fib1000"])
    assert redis_has(redis_client, QUERIES["fib10"])


def test_staff_with_the_recompute_permission_may_recompute_only(client, view_only_staff, results):
    _grant(view_only_staff, "recompute_computedresult")
    client.force_login(view_only_staff)
    assert _offered_actions(client) == {"recompute"}
    row = results["fib10"]
    ComputedResult.objects.filter(pk=row.pk).update(value="54", compute_ms=12345.0)
    response = run_action(client, "recompute", [row])
    assert messages_of(response)[0].startswith("Recomputed 1 result in ")
    refreshed = ComputedResult.objects.get(pk=row.pk)
    assert refreshed.value == str(fib_reference(10))
    assert refreshed.compute_ms < 12345.0


def test_superusers_have_every_action(admin_client):
    assert _offered_actions(admin_client) == {"evict_from_cache", "recompute", "delete_selected"}


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


# --- columns, search and sorting ------------------------------------------------------


def test_changelist_shows_every_column_and_a_preview_not_the_value(admin_client, results):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = page_rows(response.content.decode())
    assert set(rows) == {row.pk for row in results.values()}
    big = rows[results["fib1000"].pk]
    assert cell(big, "kind").endswith(">fib</a>")
    assert ">1,000</a>" in cell(big, "n_display")
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


# --- the detail page ------------------------------------------------------------------


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


# --- actions --------------------------------------------------------------------------


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


# --- Redis down -----------------------------------------------------------------------


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


def test_redis_down_recompute_still_works(admin_client, results, unreachable_redis):
    # A result is a pure function of its inputs: the entry Redis keeps holds the
    # value the row gets again, so recomputing without Redis serves nothing wrong.
    response = run_action(admin_client, "recompute", [results["pi100"]])
    texts = messages_of(response)
    assert texts[0].startswith("Recomputed 1 result in ")
    assert texts[1].startswith("Could not reach Redis: the cache entries were not refreshed")
    assert ComputedResult.objects.get(pk=results["pi100"].pk).value == PI_100


REFUSED = re.compile(
    r"Could not reach Redis: nothing was deleted \((?P<names>.*)\)\. Deleting a result needs "
    r"Redis, or its cache entry would be served again without a log row once Redis is back\. "
    r"Try again when Redis is back\."
)


def refused_names(response) -> set[str]:
    """Return the results a refusal names; fail unless the response says exactly that."""
    (text,) = messages_of(response)
    found = REFUSED.fullmatch(text)
    assert found, text
    return set(found["names"].split(", "))


def test_redis_down_delete_selected_refuses_and_deletes_nothing(
    admin_client, results, unreachable_redis, redis_client
):
    """A row deleted without its entry would be served, unlogged, once Redis is back."""
    chosen = [results["fib10"], results["pi100"]]
    response = run_action(admin_client, "delete_selected", chosen, post="yes")
    assert refused_names(response) == {"fib(10)", "pi(100)"}
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert ComputedResult.objects.filter(pk__in=[r.pk for r in chosen]).count() == 2
    assert not LogEntry.objects.exists()  # Django's "deleted" entries were rolled back
    assert redis_has(redis_client, QUERIES["fib10"])


def test_redis_lost_during_delete_selected_deletes_none_of_the_rows(
    admin_client, results, monkeypatch, unreachable_redis
):
    """All or nothing: the rows deleted before Redis was lost come back with the refusal."""
    down = unreachable_redis
    monkeypatch.setattr(result_admin.ComputedResultAdmin, "result_cache", services.result_cache)
    deleted = []

    def delete_then_lose_redis(**kwargs):
        deleted.append(services_result_delete(**kwargs))  # the first row: Redis still up
        monkeypatch.setattr(result_admin.ComputedResultAdmin, "result_cache", down)
        return deleted[-1]

    services_result_delete = services.result_delete
    monkeypatch.setattr(services, "result_delete", delete_then_lose_redis)
    chosen = [results["fib10"], results["pi100"], results["fib1000"]]
    response = run_action(admin_client, "delete_selected", chosen, post="yes")
    assert deleted == [True, False]  # the first row was deleted, the second refused
    assert refused_names(response) == {"fib(10)", "fib(1000)", "pi(100)"}
    assert ComputedResult.objects.filter(pk__in=[r.pk for r in chosen]).count() == 3
    assert not LogEntry.objects.exists()


def test_redis_down_delete_from_the_detail_page_refuses_and_deletes_nothing(
    admin_client, results, unreachable_redis, redis_client
):
    row = results["fib1000"]
    url = reverse("admin:compute_computedresult_delete", args=[row.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert response.redirect_chain == [(change_url(row), 302)]
    assert refused_names(response) == {"fib(1000)"}
    assert ComputedResult.objects.filter(pk=row.pk).exists()
    assert not LogEntry.objects.exists()
    assert redis_has(redis_client, QUERIES["fib1000"])
