"""A result's admin page: one format for numbers and dates, evict and recompute buttons,
the convergence picture of pi; the plain breadcrumb, the search hint and the icon."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from compute.models import ComputedResult
from tests.admin.pages import (
    CHANGELIST,
    STATISTICS,
    cell,
    change_url,
    messages_of,
    page_rows,
    redis_has,
)

pytestmark = pytest.mark.django_db

MOMENT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def action_url(row: ComputedResult, action: str) -> str:
    return reverse(f"admin:compute_computedresult_{action}", args=[row.pk])


def readonly(html: str, field: str) -> str:
    found = re.search(rf'field-{field}.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert found, field
    return found.group(1).strip()


def test_numbers_and_dates_read_the_same_on_list_detail_and_statistics(admin_client, results):
    row = results["fib1000"]
    listed = page_rows(admin_client.get(CHANGELIST).content.decode())[row.pk]
    detail = admin_client.get(change_url(row)).content.decode()
    assert re.fullmatch(MOMENT, cell(listed, "computed_when"))
    assert readonly(detail, "computed_when") == cell(listed, "computed_when")
    assert readonly(detail, "compute_time") == cell(listed, "compute_time")
    assert readonly(detail, "n_display") == "1,000" and ">1,000</a>" in cell(listed, "n_display")
    assert readonly(detail, "digits_display") == cell(listed, "digits_display") == "209"
    stats = admin_client.get(STATISTICS).content.decode()
    mean = re.search(r'<tr class="kind-fib">.*?</tr>', stats, re.S).group(0)
    assert re.search(r"<td>\d+\.\d{3} ms</td>|<td>\d+\.\d\d ms</td>", mean)  # formats.milliseconds
    assert "1,000" in mean  # the largest n


def test_the_breadcrumb_names_the_app_then_the_model(admin_client, results):
    html = admin_client.get(CHANGELIST).content.decode()
    crumbs = re.sub(
        r"<[^>]+>|\s+", " ", re.search(r'class="breadcrumbs">(.*?)</div>', html, re.S).group(1)
    )
    assert " ".join(unescape(crumbs).split()) == "Home \u203a Result log \u203a Computed results"


def test_the_changelist_leaves_out_the_navigation_sidebar(admin_client, results):
    assert 'id="nav-sidebar"' not in admin_client.get(CHANGELIST).content.decode()


def test_a_search_that_is_not_a_number_says_why_nothing_matches(admin_client, results):
    response = admin_client.get(CHANGELIST, {"q": "abc"})
    (message,) = messages_of(response)
    assert "“abc” is not one" in message and "digits 0-9" in message
    assert not page_rows(response.content.decode())
    assert not messages_of(admin_client.get(CHANGELIST, {"q": "1000"}))


def test_the_detail_page_has_evict_and_recompute_buttons(admin_client, results):
    html = admin_client.get(change_url(results["fib1000"])).content.decode()
    assert f'action="{action_url(results["fib1000"], "evict")}"' in html
    assert f'action="{action_url(results["fib1000"], "recompute")}"' in html
    assert 'id="evict-button"' in html and 'id="recompute-button"' in html


def test_evict_from_the_detail_page(admin_client, results, redis_client):
    row = results["fib1000"]
    response = admin_client.post(action_url(row, "evict"), follow=True)
    assert response.redirect_chain[-1][0] == change_url(row)
    assert messages_of(response)[0].startswith("Evicted 1 result from the cache: fib(1000).")
    assert not redis_has(redis_client, services_query(row))
    assert ComputedResult.objects.filter(pk=row.pk).exists()  # the log row stays


def test_recompute_from_the_detail_page(admin_client, results, redis_client):
    row = results["pi100"]
    before = row.computed_at
    response = admin_client.post(action_url(row, "recompute"), follow=True)
    assert messages_of(response)[0].startswith("Recomputed 1 result")
    row.refresh_from_db()
    assert row.computed_at > before and row.value == "3.131980747244363"
    assert redis_has(redis_client, services_query(row))


def test_the_buttons_only_post(admin_client, results):
    assert admin_client.get(action_url(results["fib10"], "evict")).status_code == 405


def services_query(row):
    from compute.services import query_for_row

    return query_for_row(row)


def test_without_the_evict_permission_there_is_no_button_and_a_post_is_refused(
    client, results, view_only_staff
):
    evict = Permission.objects.get(codename="evict_computedresult")
    client.force_login(view_only_staff)
    row = results["fib10"]
    html = client.get(change_url(row)).content.decode()
    assert 'id="evict-button"' not in html and 'id="recompute-button"' not in html
    assert client.post(action_url(row, "evict")).status_code == 403
    assert client.post(action_url(row, "recompute")).status_code == 403
    view_only_staff.user_permissions.add(evict)
    client.force_login(type(view_only_staff).objects.get(pk=view_only_staff.pk))
    html = client.get(change_url(row)).content.decode()
    assert 'id="evict-button"' in html and 'id="recompute-button"' not in html
    assert client.post(action_url(row, "evict")).status_code == 302
    assert client.post(action_url(row, "recompute")).status_code == 403


def test_a_pi_result_shows_its_convergence_picture(admin_client, results):
    pi = admin_client.get(change_url(results["pi100"])).content.decode()
    assert 'src="/api/pi/100/convergence/"' in pi
    fib = admin_client.get(change_url(results["fib1000"])).content.decode()
    assert "convergence" not in fib


def test_admin_pages_carry_the_site_icon(admin_client, results):
    for url in (CHANGELIST, STATISTICS, change_url(results["fib10"]), reverse("admin:index")):
        assert (
            'rel="icon" href="/static/compute/favicon.svg"'
            in admin_client.get(url).content.decode()
        )
