"""The front computes the anonymous misses it found (mathsite.front_misses), as the view would.

Same reply, same log row, same access-log line, same headers as a miss
Django computes; a refusal is worded by the view (and nothing is tried
twice); requests with credentials and conditional ones stay Django's.
Reference values: fast doubling on Python integers.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
from prometheus_client import REGISTRY

from compute.http.wsgi import ResultFront
from compute.models import ComputedResult
from mathsite.front_misses import answer_miss
from tests.http.test_wsgi import CountingApp, call, learn
from tests.support.reference import fib_reference

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection")]


@pytest.fixture
def front():
    django = CountingApp()
    fast = ResultFront(django, misses=answer_miss)
    learn(fast)  # the site headers of a 200, from Django's replies
    return fast, django


def budget_refusals() -> float:
    labels = {"kind": "fib", "reason": "budget"}
    return REGISTRY.get_sample_value("mathsite_compute_refusals_total", labels) or 0.0


def headers_of(sent: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in sent}


def test_an_anonymous_miss_is_computed_by_the_front_logged_and_answered_as_django_would(
    front, caplog
):
    fast, django = front
    before = django.calls
    with caplog.at_level(logging.INFO, logger="mathsite.request"):
        status, sent, body = call(fast, "/api/fib/1234/")
    assert django.calls == before  # Django's request cycle never ran
    assert status == "200 OK"
    assert json.loads(body) == {"cached": False, "result": fib_reference(1234), "n": 1234}
    assert headers_of(sent)["cache-status"] == "mathsite; fwd=miss; stored"
    assert ComputedResult.objects.get(kind="fib", n=1234).value == str(fib_reference(1234))
    lines = [r for r in caplog.records if r.name == "mathsite.request"]
    assert [(r.method, r.path, r.status, r.cache, r.route) for r in lines] == [
        ("GET", "/api/fib/1234/", 200, "computed", "fib-detail")
    ]
    # What Django sends for a computed miss, header for header (Date aside: none here).
    computed_by_django = call(fast, "/api/fib/1235/", cookie="x=1")
    assert django.calls == before + 1
    assert headers_of(computed_by_django[1]).keys() == headers_of(sent).keys()
    again = call(fast, "/api/fib/1234/")
    assert json.loads(again[2])["cached"] is True


def test_the_old_routes_are_computed_by_the_front_too(front):
    fast, django = front
    before = django.calls
    status, _, body = call(fast, "/pi", query="n=4321")
    assert status == "200 OK" and json.loads(body)["cached"] is False
    assert django.calls == before


@pytest.mark.parametrize(
    "headers",
    [{"cookie": "sessionid=abc"}, {"authorization": "Token abc"}, {"if_none_match": 'W/"x"'}],
)
def test_requests_with_credentials_or_conditions_are_left_to_django(front, headers):
    fast, django = front
    before = django.calls
    status, _, _body = call(fast, "/api/fib/777/", **headers)
    assert django.calls == before + 1
    assert status.startswith(("200", "401", "403"))


def test_a_refused_miss_is_worded_by_the_view_and_charged_nothing(front, settings):
    fast, django = front
    settings.COMPUTE_DIGITS_PER_HOUR = 30  # fib(300) has 63 digits
    before, refusals = django.calls, budget_refusals()
    status, sent, body = call(fast, "/api/fib/300/")
    assert django.calls == before + 1  # the view answered with the front's refusal
    assert budget_refusals() == refusals + 1  # asked once, not again by the view
    assert status.startswith("429")
    assert "retry-after" in headers_of(sent)
    assert json.loads(body)["retry_after"] >= 1
    assert not ComputedResult.objects.filter(kind="fib", n=300).exists()
    settings.COMPUTE_DIGITS_PER_HOUR = None
    status, _, body = call(fast, "/api/fib/300/")
    assert status == "200 OK" and json.loads(body)["result"] == fib_reference(300)


def test_a_full_compute_rate_is_worded_by_the_view(front, settings):
    fast, django = front
    framework = copy.deepcopy(settings.REST_FRAMEWORK)
    framework["DEFAULT_THROTTLE_RATES"] = {"compute": "1/hour"}
    settings.REST_FRAMEWORK = framework
    refused = None
    for n in (401, 402, 403):  # the fixture's computation may already fill the window
        before = django.calls
        status, sent, _body = call(fast, f"/api/fib/{n}/")
        if status.startswith("429"):
            refused = n
            break
        assert django.calls == before  # computed by the front while the rate allowed
    assert refused is not None
    assert django.calls == before + 1  # the view worded the front's refusal
    assert "retry-after" in headers_of(sent)
    assert not ComputedResult.objects.filter(kind="fib", n=refused).exists()
