"""A cold request end to end (the WSGI front, Django, the view, the service) on the test Redis.

Each round trip to Redis is a large part of what a small computation
costs, so their number is pinned here: a cold request through a front that
has learnt the site's headers makes three (the front's lookup, the lock's
attempt with the compute rate's count and the digit budget's charge, the
store with the lock's release). A change that adds one fails here, not in
a benchmark months later. The guarantees that must survive the merging are
checked on the same request: computed once, logged, cached (sealed),
charged.
"""

from __future__ import annotations

import json

import pytest
from django.core.wsgi import get_wsgi_application
from django.test import RequestFactory

from compute import services
from compute.admission import Client
from compute.admission.gate import BUDGET_WINDOW_SECONDS
from compute.api.throttling import ComputeRateThrottle
from compute.cache import MISSING, result_cache
from compute.domain.query import ResultQuery
from compute.http import hit
from compute.http.wsgi import ResultFront
from compute.models import ComputedResult
from tests.http.test_wsgi import call, learn
from tests.support.caches import counted_round_trips
from tests.support.callers import SETUP

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection")]

PI_CHARGE = 17  # a double's digits (compute.domain.kinds.pi)


@pytest.fixture
def no_sync(settings):
    """No eviction sync (one GET every 0.5 s, carried by whichever request finds it due)
    inside the counted request: the count is the request's own."""
    settings.LOCAL_CACHE_SYNC_SECONDS = 3600


def spent(client: str = "127.0.0.1") -> int:
    """Return the digits charged to ``client`` in this budget window."""
    key = result_cache.budget.request(client, 0, limit=1, window_seconds=BUDGET_WINDOW_SECONDS).key
    value = result_cache.redis().get(key)
    return int(value) if value is not None else 0


def counted(client: str = "127.0.0.1") -> int:
    """Return the computing requests counted for ``client`` in its compute-rate window."""
    charge = ComputeRateThrottle().charge_request(RequestFactory().get("/", REMOTE_ADDR=client))
    assert charge is not None
    value = result_cache.redis().get(charge.key)
    return int(value) if value is not None else 0


def test_a_cold_request_makes_three_round_trips_and_keeps_every_guarantee(no_sync, redis_client):
    front = ResultFront(get_wsgi_application())
    learn(front)  # the front now looks every result request up itself
    result_cache.find(ResultQuery("fib", 93))  # any sync due happens now
    before, requests_before = spent(), counted()
    with counted_round_trips() as sent:
        status, headers, body = call(front, "/api/pi/123457/")
    assert status == "200 OK"
    assert json.loads(body)["cached"] is False
    assert dict(headers)["Cache-Status"] == "mathsite; fwd=miss; stored"
    # The front's lookup, the lock + the rate + the budget, the store + the release.
    assert sent == [3]
    query = ResultQuery("pi", 123457)
    assert ComputedResult.objects.filter(**services.identity(query)).count() == 1  # logged
    result_cache.local.clear()
    stored = result_cache.get_shared(query)  # sealed: a read checks the MAC
    assert stored is not MISSING and stored.text == repr(json.loads(body)["result"])
    assert spent() - before == PI_CHARGE  # charged once
    assert counted() - requests_before == 1  # counted once against the compute rate
    assert redis_client.exists(result_cache.lock_key(query)) == 0  # released


def test_without_the_fronts_verdict_the_view_looks_the_tiers_up_itself(no_sync):
    """Django alone (the front switched off, or not in front): the view's own lookup
    takes the place of the front's, and the count is the same."""
    django = get_wsgi_application()
    result_cache.find(ResultQuery("fib", 93))
    with counted_round_trips() as sent:
        status, _, body = call(django, "/api/pi/123458/")
    assert status == "200 OK" and json.loads(body)["cached"] is False
    assert sent == [3]


def test_the_view_answers_the_query_the_front_parsed_and_ignores_another_kinds(no_sync):
    """The front leaves the query it parsed (with the serializer's parser) and missed; the
    view answers it without validating again, unless it names another kind."""
    front = ResultFront(get_wsgi_application())
    learn(front)
    path, query_string = "/api/fib/123461/", "mod=1000&format=string&mod=97"
    through_front = call(front, path, query_string)
    direct = call(get_wsgi_application(), path, query_string)  # the serializer's query, a hit now
    assert json.loads(through_front[2]) == {**json.loads(direct[2]), "cached": False}
    assert json.loads(direct[2])["mod"] == 97  # the last value wins in both
    assert isinstance(json.loads(direct[2])["result"], str)
    django = get_wsgi_application()
    assert services.result_get(query=ResultQuery("pi", 123459), caller=SETUP).cached is False
    environ_extra = {hit.MISS_KEY: ResultQuery("fib", 1)}
    status, _, body = call_with_environ(django, "/api/pi/123459/", environ_extra)
    assert status == "200 OK" and json.loads(body) == {
        "cached": True,
        "result": json.loads(body)["result"],
        "n": 123459,
    }


def test_a_stale_miss_verdict_still_computes_nothing_twice(redis_client):
    """The lock's attempt reads the entry: a value stored after the front looked is
    found there, not computed again (and not charged)."""
    query = ResultQuery("pi", 123460)
    first = services.result_get(query=query, caller=SETUP)
    assert first.cached is False
    # In Redis only (as when another request stores it while this one looks at the log).
    ComputedResult.objects.filter(**services.identity(query)).delete()
    result_cache.local.clear()
    before = spent("203.0.113.77")
    again = services.result_get(query=query, caller=Client("203.0.113.77"), missed=True)
    assert again.cached is True and again.source is services.Source.COLLAPSED
    assert again.payload.text == first.payload.text
    assert spent("203.0.113.77") == before
    assert not ComputedResult.objects.filter(**services.identity(query)).exists()  # not recomputed


def call_with_environ(app, path: str, extra: dict):
    """``call`` with entries added to the WSGI environ (what a layer in front leaves there)."""

    def wrapped(environ, start_response):
        environ.update(extra)
        return app(environ, start_response)

    return call(wrapped, path)
