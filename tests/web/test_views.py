"""The front page at ``/``: HTML for browsers, a JSON index for programs, the form's answers.

Reference values are computed here (fib by Python integers, pi's message
from SPEC.md's limits); the API itself is asked for the 400 messages the
page must repeat.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

from compute.models import ComputedResult
from tests.support.reference import fib_reference, unlimited_int_digits

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def client() -> Client:
    return Client()


def page(client, query: str = "", **headers):
    return client.get(f"/{query}", HTTP_ACCEPT=BROWSER, **headers)


def text_of(response, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', response.content.decode(), re.S)
    assert found, element_id
    return unescape(found.group(1)).strip()


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html;q=0"])
def test_programs_get_a_json_index_of_the_api(client, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = client.get("/", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "Accept" in response["Vary"]
    index = response.json()
    assert index["pi"] == "http://testserver/api/pi/"
    assert index["fib"] == "http://testserver/api/fib/"
    assert index["docs"] == "http://testserver/api/docs/"
    assert index["schema"] == "http://testserver/api/schema/"
    assert index["pi_result"] == "http://testserver/api/pi/{n}/"
    assert index["pi_convergence"] == "http://testserver/api/pi/{n}/convergence/"
    assert b": " not in response.content and b", " not in response.content  # compact


def test_browsers_get_the_page_with_the_form_the_picture_and_the_links(client):
    response = page(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]
    body = response.content.decode()
    assert '<form method="get"' in body
    for name in ("kind", "n", "digits", "mod"):
        assert f'name="{name}"' in body
    assert 'src="/api/pi/1000/convergence/"' in body
    for link in ('href="/api/docs/"', 'href="/api/schema/"', 'href="/admin/"'):
        assert link in body
    assert "http://" not in body.replace("http://www.w3.org", "")  # nothing from elsewhere
    assert 'rel="icon"' in body


def test_fib_is_answered_with_the_exact_value_and_the_cached_flag(client):
    first = page(client, "?kind=fib&n=100")
    assert first.status_code == 200
    assert text_of(first, "result") == str(fib_reference(100))
    assert text_of(first, "cached") == "cached: false"
    second = page(client, "?kind=fib&n=100")
    assert text_of(second, "cached") == "cached: true"
    assert ComputedResult.objects.filter(kind="fib", n=100).count() == 1
    assert 'href="/api/fib/100/?format=string"' in second.content.decode()


def test_pi_with_digits_and_its_picture(client):
    response = page(client, "?kind=pi&n=100&digits=30&mod=")
    assert text_of(response, "result") == "3.13198074724436280185781483831"  # SPEC / README
    assert 'src="/api/pi/100/convergence/"' in response.content.decode()


def test_a_huge_result_is_previewed_with_a_link_to_the_full_one(client):
    response = page(client, "?kind=fib&n=100000")
    with unlimited_int_digits():
        digits = str(fib_reference(100_000))
    shown = text_of(response, "result")
    assert len(response.content) < 20_000
    assert shown == f"{digits[:60]}…{digits[-60:]}"
    assert f"{len(digits):,} digits" in response.content.decode()
    assert 'id="full-result" href="/api/fib/100000/?format=string"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "api"),
    [
        ("?kind=fib&n=abc", "/api/fib/abc/"),
        ("?kind=fib&n=1000001", "/api/fib/1000001/"),
        ("?kind=pi&n=0", "/api/pi/0/"),
        ("?kind=pi&n=10&digits=1001", "/api/pi/10/?digits=1001"),
        ("?kind=fib&n=10&digits=3", "/api/fib/10/?digits=3"),
        ("?kind=pi&n=-5", "/api/pi/-5/"),
    ],
)
def test_bad_input_shows_the_apis_400_message(client, query, api):
    response = page(client, query)
    assert response.status_code == 400
    (message,) = next(iter(client.get(api).json().values()))
    assert message in unescape(response.content.decode())
    assert not ComputedResult.objects.exists()


def test_an_unknown_kind_is_a_400_page(client):
    response = page(client, "?kind=tau&n=3")
    assert response.status_code == 400
    assert "kind must be one of pi, fib." in unescape(response.content.decode())


def test_mod_is_passed_to_the_api_validation(client):
    response = page(client, "?kind=fib&n=10&mod=7")
    assert response.status_code in (200, 400)
    if response.status_code == 200:  # the API computes fib(n) mod M
        assert text_of(response, "result") == str(fib_reference(10) % 7)
    else:  # this API has no ?mod= yet: the page says so, and nothing is computed
        assert "mod" in text_of(response, "answer-errors")
        assert not ComputedResult.objects.exists()


def test_other_methods_are_a_json_405(client):
    response = client.post("/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}


def test_the_favicon_is_served_locally(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


def test_the_admins_view_site_link_is_the_front_page(admin_client):
    body = admin_client.get("/admin/").content.decode()
    assert 'href="/"' in body
    assert page(Client()).status_code == 200


def test_computing_from_the_page_counts_against_the_compute_rate(client, settings):
    import copy

    framework = copy.deepcopy(settings.REST_FRAMEWORK)
    framework["DEFAULT_THROTTLE_RATES"] = {"compute": "2/hour"}
    settings.REST_FRAMEWORK = framework
    assert page(client, "?kind=fib&n=11").status_code == 200
    assert page(client, "?kind=fib&n=12").status_code == 200
    refused = page(client, "?kind=fib&n=13")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many computations" in refused.content.decode()
    assert page(client, "?kind=fib&n=11").status_code == 200  # a cached result is never refused
    assert not ComputedResult.objects.filter(n=13).exists()
