"""A cold request end to end (the WSGI front, Django, the view, the service) on the test Redis.

Each round trip to Redis is a large part of what a small computation
costs, so their number is pinned here: a cold request makes two (the
lock's attempt, which reads the entry, counts the compute rate and charges
the digit budget; the store with the lock's release), through the shipped
front (which computes the anonymous misses itself) as through Django alone.
A change that adds one fails here, not in a benchmark months later. The
guarantees that must survive the merging are checked on the same request:
computed once, logged, cached (sealed), charged.
"""

from __future__ import annotations

import json

import pytest
from django.core.wsgi import get_wsgi_application
from django.test import RequestFactory

from compute import services
from compute.admission import Client, Refused
from compute.admission.gate import BUDGET_WINDOW_SECONDS
from compute.api import misses
from compute.api.throttling import ComputeRateThrottle
from compute.cache import MISSING, result_cache
from compute.domain.query import ResultQuery
from compute.http import hit
from compute.http.wsgi import ResultFront
from compute.models import ComputedResult
from mathsite.front_misses import answer_miss
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


def test_a_cold_request_makes_two_round_trips_and_keeps_every_guarantee(no_sync, redis_client):
    front = ResultFront(get_wsgi_application(), misses=answer_miss)  # as mathsite.wsgi wires it
    learn(front)  # the front now looks every result request up itself, and computes misses
    result_cache.find(ResultQuery("fib", 93))  # any sync due happens now
    before, requests_before = spent(), counted()
    with counted_round_trips() as sent:
        status, headers, body = call(front, "/api/pi/123457/")
    assert status == "200 OK"
    assert json.loads(body)["cached"] is False
    assert dict(headers)["Cache-Status"] == "mathsite; fwd=miss; stored"
    # The lock + the entry's read + the rate + the budget, then the store + the release.
    assert sent == [2]
    query = ResultQuery("pi", 123457)
    assert ComputedResult.objects.filter(**services.identity(query)).count() == 1  # logged
    result_cache.local.clear()
    stored = result_cache.get_shared(query)  # sealed: a read checks the MAC
    assert stored is not MISSING and stored.text == repr(json.loads(body)["result"])
    assert spent() - before == PI_CHARGE  # charged once
    assert counted() - requests_before == 1  # counted once against the compute rate
    assert redis_client.exists(result_cache.lock_key(query)) == 0  # released


def test_without_the_fronts_verdict_the_view_looks_the_tiers_up_itself(no_sync):
    """Django alone (the front switched off, or not in front): the view looks in the
    in-process tier, then takes the lock reading the entry; the count is the same."""
    django = get_wsgi_application()
    result_cache.find(ResultQuery("fib", 93))
    with counted_round_trips() as sent:
        status, _, body = call(django, "/api/pi/123458/")
    assert status == "200 OK" and json.loads(body)["cached"] is False
    assert sent == [2]


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
    """The lock's attempt reads the entry: a value in Redis (stored by another process,
    or after the front looked) is a Redis hit there, not computed again (and not charged)."""
    query = ResultQuery("pi", 123460)
    first = services.result_get(query=query, caller=SETUP)
    assert first.cached is False
    # In Redis only (as when another request stores it while this one looks at the log).
    ComputedResult.objects.filter(**services.identity(query)).delete()
    result_cache.local.clear()
    before = spent("203.0.113.77")
    again = services.result_get(query=query, caller=Client("203.0.113.77"), missed=True)
    assert again.cached is True and again.source is services.Source.REDIS
    assert again.payload.text == first.payload.text
    assert spent("203.0.113.77") == before
    assert not ComputedResult.objects.filter(**services.identity(query)).exists()  # not recomputed


def call_with_environ(app, path: str, extra: dict):
    """``call`` with entries added to the WSGI environ (what a layer in front leaves there)."""

    def wrapped(environ, start_response):
        environ.update(extra)
        return app(environ, start_response)

    return call(wrapped, path)


def test_a_result_in_redis_only_is_a_one_round_trip_hit_of_the_front(no_sync, redis_client):
    """Stored by another process (not in this one's tier): the front's miss path finds it
    in the lock's read, answers it as a Redis hit and charges nothing."""
    front = ResultFront(get_wsgi_application(), misses=answer_miss)
    learn(front)
    query = ResultQuery("pi", 123462)
    assert services.result_get(query=query, caller=SETUP).cached is False
    result_cache.local.clear()  # as in another worker
    before, requests_before = spent(), counted()
    with counted_round_trips() as sent:
        status, headers, body = call(front, "/api/pi/123462/")
    assert status == "200 OK" and json.loads(body)["cached"] is True
    assert dict(headers)["Cache-Status"] == "mathsite; hit; detail=redis"
    assert sent == [1]
    assert (spent(), counted()) == (before, requests_before)
    assert redis_client.exists(result_cache.lock_key(query)) == 0  # no lock taken
    again = call(front, "/api/pi/123462/")  # now in this process's tier
    assert dict(again[1])["Cache-Status"] == "mathsite; hit; detail=in-process"


def test_a_value_from_the_log_gives_back_the_rate_and_the_digits(no_sync, redis_client):
    """The lock's attempt charged the request; the log then held the value: no work was
    done, so both charges are given back, and Redis holds the value again."""
    query = ResultQuery("pi", 123463)
    first = services.result_get(query=query, caller=SETUP)
    result_cache.clear_namespace()  # Redis lost it; the log has it
    caller = misses.client_caller(
        RequestFactory().get("/", REMOTE_ADDR="203.0.113.78"), refuse=misses.refuse_rate
    )
    before, requests_before = spent("203.0.113.78"), counted("203.0.113.78")
    outcome = services.result_get(query=query, caller=caller)
    assert outcome.source is services.Source.LOG and outcome.payload.text == first.payload.text
    assert (spent("203.0.113.78"), counted("203.0.113.78")) == (before, requests_before)
    result_cache.local.clear()
    assert result_cache.get_shared(query).text == first.payload.text  # stored again
    assert redis_client.exists(result_cache.lock_key(query)) == 0  # released with the store


def test_a_client_out_of_budget_still_gets_what_the_log_holds(no_sync, settings):
    """The budget refuses this client any computation, but a log read is no computation."""
    query = ResultQuery("pi", 123464)
    first = services.result_get(query=query, caller=SETUP)
    result_cache.clear_namespace()
    settings.COMPUTE_DIGITS_PER_HOUR = 20  # one pi (17 digits) fits, a second does not
    caller = misses.client_caller(
        RequestFactory().get("/", REMOTE_ADDR="203.0.113.79"), refuse=misses.refuse_rate
    )
    assert services.result_get(query=ResultQuery("pi", 123465), caller=caller).cached is False
    outcome = services.result_get(query=query, caller=caller)
    assert outcome.source is services.Source.LOG and outcome.payload.text == first.payload.text
    assert spent("203.0.113.79") == PI_CHARGE  # the one computation only
    with pytest.raises(Refused):
        services.result_get(query=ResultQuery("pi", 123466), caller=caller)


def test_a_rate_that_refuses_every_computation_still_answers_what_is_held(no_sync, settings):
    """A compute rate of 0 refuses at once, before the lock: a value in Redis (another
    process's) or only in the log is still answered; only a computation is refused."""
    framework = {**settings.REST_FRAMEWORK}
    framework["DEFAULT_THROTTLE_RATES"] = {"compute": "0/hour"}
    settings.REST_FRAMEWORK = framework
    in_redis, in_log = ResultQuery("pi", 123467), ResultQuery("pi", 123468)
    for query in (in_redis, in_log):
        services.result_get(query=query, caller=SETUP)
    result_cache.local.clear()  # as in another worker
    result_cache.delete(in_log)  # evicted: the log still has it
    caller = misses.client_caller(
        RequestFactory().get("/", REMOTE_ADDR="203.0.113.80"), refuse=misses.refuse_rate
    )
    assert services.result_get(query=in_redis, caller=caller).source is services.Source.REDIS
    assert services.result_get(query=in_log, caller=caller).source is services.Source.LOG
    with pytest.raises(misses.RateRefused):
        services.result_get(query=ResultQuery("pi", 123469), caller=caller)
