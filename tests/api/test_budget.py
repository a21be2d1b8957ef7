"""The per-client digit budget and the concurrency refusals through the API.

Mirrors ``compute/admission`` as clients see it: Django's test client on
the real view, the run's real Redis (the budget's ledger) and database. The
budget is made tiny through the settings; the ledger's clock is pinned (its
``clock`` attribute) so Retry-After is exact. Clients are told apart by
``X-Forwarded-For`` behind one trusted proxy (``NUM_PROXIES=1``), as the
throttle does. Reference values: fast doubling on Python integers.
"""

from __future__ import annotations

import copy
import json

import pytest
from rest_framework.test import APIClient

from compute.admission import process_slots
from compute.cache import result_cache
from compute.domain.query import ResultQuery
from compute.models import ComputedResult
from tests.support.junk import junk_id, malformed_count, plant
from tests.support.reference import fib_reference

pytestmark = pytest.mark.django_db

HOUR = 3600
T0 = HOUR * 500_000 + 600.0  # 600 s into an hour: 3000 s of it left
# fib(4000) has 836 digits, fib(1000) 209, pi as a double 17.
BUDGET = 1000


@pytest.fixture
def proxied(settings):
    """One trusted proxy in front: clients are told apart by X-Forwarded-For."""
    framework = copy.deepcopy(settings.REST_FRAMEWORK)
    framework["NUM_PROXIES"] = 1
    settings.REST_FRAMEWORK = framework


@pytest.fixture
def budget(settings, monkeypatch, proxied):
    """A 1000-digit budget, clients told apart by X-Forwarded-For, the ledger's clock pinned."""
    settings.COMPUTE_DIGITS_PER_HOUR = BUDGET

    class Clock:
        now = T0

    monkeypatch.setattr(result_cache.budget, "clock", lambda: Clock.now)
    return Clock


def get(path: str, client: str = "203.0.113.1"):
    response = APIClient().get(path, HTTP_X_FORWARDED_FOR=client)
    assert response["Content-Type"].startswith("application/json")
    return response, json.loads(response.content)


def spent(redis_client, client: str = "203.0.113.1") -> int:
    value = redis_client.get(result_cache.make_key(f"budget:{client}:{int(T0 // HOUR)}"))
    return int(value or 0)


def test_over_the_budget_is_a_429_with_retry_after_and_nothing_is_stored(budget, redis_client):
    response, body = get("/api/fib/4000/")
    assert response.status_code == 200 and body["cached"] is False
    assert spent(redis_client) == 836

    refused, body = get("/api/fib/1000/")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "3000"
    assert body["retry_after"] == 3000
    assert "budget of 1000 digits per hour is spent" in body["detail"]
    assert "this result costs 209" in body["detail"]
    # Refused before any work: no row, no cache entry, nothing more charged.
    assert not ComputedResult.objects.filter(kind="fib", n=1000).exists()
    assert redis_client.exists(result_cache.make_key("fib:1000")) == 0
    assert spent(redis_client) == 836
    # The seed route is the same computation, refused alike.
    assert get("/fib/1000")[0].status_code == 429

    # What still fits is computed (pi as a double costs 17 digits).
    response, body = get("/api/pi/10/")
    assert response.status_code == 200 and body["cached"] is False
    assert spent(redis_client) == 853

    # Another client has its own budget and gets the right value.
    response, body = get("/api/fib/1000/", client="203.0.113.2")
    assert response.status_code == 200
    assert body == {"cached": False, "result": fib_reference(1000), "n": 1000}

    # The next hour the first client computes again.
    budget.now = T0 + 3000.0
    response, body = get("/api/fib/999/")
    assert response.status_code == 200 and body["result"] == fib_reference(999)


def test_cached_hits_and_log_reads_are_never_charged(budget, redis_client):
    assert get("/api/fib/4000/")[0].status_code == 200
    assert spent(redis_client) == 836
    for _ in range(5):
        response, body = get("/api/fib/4000/")
        assert response.status_code == 200 and body["cached"] is True
    # Redis lost the value: it comes back from the log, still not charged.
    result_cache.delete(ResultQuery("fib", 4000))
    response, body = get("/api/fib/4000/")
    assert (response.status_code, body["cached"]) == (200, True)
    assert body["result"] == fib_reference(4000)
    assert spent(redis_client) == 836
    # Only what computes counts: the budget still has room for 164 digits.
    assert get("/api/fib/700/")[0].status_code == 200  # 146 digits
    assert spent(redis_client) == 982


def test_budget_none_switches_it_off(budget, settings, redis_client):
    settings.COMPUTE_DIGITS_PER_HOUR = None
    for n in (4000, 4001, 4002):
        assert get(f"/api/fib/{n}/")[0].status_code == 200
    assert spent(redis_client) == 0


def test_a_client_over_its_concurrent_share_gets_429_and_a_full_process_503(settings, proxied):
    # Another computation of this client is running in this process (held here).
    with process_slots.hold("203.0.113.9"):
        refused, body = get("/api/fib/321/", client="203.0.113.9")
        assert refused.status_code == 429 and refused["Retry-After"] == "1"
        assert "COMPUTE_CONCURRENCY_PER_CLIENT" in body["detail"] and body["retry_after"] == 1
        settings.COMPUTE_CONCURRENCY, settings.COMPUTE_QUEUE_LENGTH = 1, 0
        busy, body = get("/api/fib/321/", client="203.0.113.10")
        assert busy.status_code == 503 and busy["Retry-After"] == "1"
        assert "COMPUTE_CONCURRENCY" in body["detail"]
    assert not ComputedResult.objects.filter(kind="fib", n=321).exists()
    # The slot is free again: the same request computes.
    response, body = get("/api/fib/321/", client="203.0.113.9")
    assert response.status_code == 200 and body["result"] == fib_reference(321)


def test_one_slash_64_spends_one_budget(budget, redis_client):
    """The gate's client is the throttle's: addresses of one IPv6 /64 share a budget."""
    assert get("/api/fib/4000/", client="2001:db8:7:8::1")[0].status_code == 200  # 836 digits
    assert spent(redis_client, "2001:db8:7:8::") == 836
    refused, body = get("/api/fib/1000/", client="2001:db8:7:8:ffff::2")
    assert refused.status_code == 429 and "budget" in body["detail"]
    assert get("/api/fib/1000/", client="2001:db8:7:9::1")[0].status_code == 200  # another /64


@pytest.mark.parametrize("junk", [b"x", b"-836", "hash"], ids=junk_id)
def test_junk_in_a_clients_budget_is_reset_not_an_error(budget, redis_client, junk):
    """Through the API: the charge resets the junk and counts; no 500, no breaker."""
    key = result_cache.make_key(f"budget:203.0.113.1:{int(T0 // HOUR)}")
    plant(redis_client, key, junk)
    before = malformed_count("budget")
    response, body = get("/api/fib/4000/")
    assert response.status_code == 200
    assert body == {"cached": False, "result": fib_reference(4000), "n": 4000}
    assert spent(redis_client) == 836  # counted from nothing, in Redis
    assert malformed_count("budget") - before == 1
    assert result_cache.available
    assert get("/api/fib/1000/")[0].status_code == 429  # and the budget holds again


def test_a_budget_set_to_its_limit_refuses_that_client_for_the_rest_of_the_hour(
    budget, redis_client
):
    """The most a well-formed hostile value can do (docs/operations.md, "No client can exhaust the
    service"): cached results stay available and other clients are untouched."""
    assert get("/api/fib/30/")[0].status_code == 200
    redis_client.set(result_cache.make_key(f"budget:203.0.113.1:{int(T0 // HOUR)}"), BUDGET)
    refused, body = get("/api/fib/31/")
    assert refused.status_code == 429 and refused["Retry-After"] == "3000"
    assert f"budget of {BUDGET} digits per hour is spent ({BUDGET} charged" in body["detail"]
    assert get("/api/fib/30/")[1]["cached"] is True  # hits are never charged
    assert get("/api/fib/31/", client="203.0.113.2")[0].status_code == 200
    budget.now = T0 + 3000.0
    assert get("/api/fib/32/")[0].status_code == 200
