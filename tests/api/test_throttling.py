"""Throttling of computing requests, over real HTTP (pytest-django's live server).

Mirrors ``compute/throttling.py``. The rate is lowered per test through the
settings; the throttle's clock is pinned (its ``timer`` class attribute) so
the fixed window never rolls over mid-test and Retry-After is exact. The
counters live in the run's real Redis; "Redis down" is a Redis URL where
nothing listens (connections refused), not a mock.
"""

from __future__ import annotations

import copy

import pytest
import requests

from compute.api.throttling import ComputeRateThrottle
from compute.cache import result_cache
from compute.domain.rates import parse_rate
from compute.models import ComputedResult
from tests.support.junk import junk_id, malformed_count, plant
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

# 30 s into a one-minute window: 30 s are left of it.
T0 = 60.0 * 1_000_000 + 30.0


@pytest.fixture
def clock(monkeypatch):
    """Pin the throttle's clock; ``clock.now`` moves it."""

    class Clock:
        now = T0

    monkeypatch.setattr(ComputeRateThrottle, "timer", staticmethod(lambda: Clock.now))
    return Clock


@pytest.fixture
def rate(settings):
    """Set the compute rate (e.g. ``rate("3/minute")``); DRF reloads its settings."""

    def set_rate(value: str | None, num_proxies: int = 0) -> None:
        framework = copy.deepcopy(settings.REST_FRAMEWORK)
        framework["DEFAULT_THROTTLE_RATES"] = {"compute": value}
        framework["NUM_PROXIES"] = num_proxies
        settings.REST_FRAMEWORK = framework

    return set_rate


def get(server, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=10)


def test_parse_rate():
    assert parse_rate("3/minute") == (3, 60)
    assert parse_rate("20000/hour") == (20000, 3600)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("7/day") == (7, 86400)
    for bad in ("fast", "3/fortnight", "-1/minute", "x/hour"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_computing_requests_over_the_rate_get_429_with_retry_after(live_server, clock, rate):
    rate("3/minute")
    for n in (1, 2, 3):
        response = get(live_server, f"/api/fib/{n + 10}/")
        assert response.status_code == 200 and response.json()["cached"] is False
    refused = get(live_server, "/api/fib/14/")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    body = refused.json()
    assert body["retry_after"] == pytest.approx(30.0)
    assert "throttled" in body["detail"].lower()
    # Cached hits are cheap work: never throttled, even with the window full.
    hit = get(live_server, "/api/fib/11/")
    assert hit.status_code == 200 and hit.json() == {"cached": True, "result": 89, "n": 11}
    # Seed routes compute too, and share the client's window.
    assert get(live_server, "/fib/15").status_code == 429
    # The next window lets the client compute again.
    clock.now = T0 + 30.0
    again = get(live_server, "/api/fib/14/")
    assert again.status_code == 200 and again.json()["result"] == 377


def test_a_rate_of_zero_refuses_every_computation_with_the_views_429(live_server, clock, rate):
    """No count can fit: the service refuses before the lock, with the entrance's own
    refusal (DRF's 429, Retry-After to the window's end); a cached result is still sent."""
    assert get(live_server, "/api/fib/31/").status_code == 200  # cached before the rate drops
    rate("0/minute")
    for path in ("/api/fib/32/", "/fib/32", "/pi?n=32"):
        refused = get(live_server, path)
        assert refused.status_code == 429, path
        assert refused.headers["Retry-After"] == "30"
        assert refused.json()["retry_after"] == pytest.approx(30.0)
    assert not ComputedResult.objects.filter(n=32).exists()
    hit = get(live_server, "/api/fib/31/")
    assert hit.status_code == 200 and hit.json() == {"cached": True, "result": 1346269, "n": 31}


def test_a_forged_forwarded_for_does_not_open_a_new_window(live_server, clock, rate):
    rate("2/minute")  # NUM_PROXIES=0: X-Forwarded-For is not trusted
    statuses = [
        get(live_server, f"/api/pi/{n}/", **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code
        for n in range(2, 6)
    ]
    assert statuses == [200, 200, 429, 429]


def test_behind_a_proxy_each_forwarded_client_has_its_own_window(live_server, clock, rate):
    rate("1/minute", num_proxies=1)
    first = get(live_server, "/api/pi/7/", **{"X-Forwarded-For": "203.0.113.1"})
    second = get(live_server, "/api/pi/8/", **{"X-Forwarded-For": "203.0.113.2"})
    repeat = get(live_server, "/api/pi/9/", **{"X-Forwarded-For": "203.0.113.1"})
    assert (first.status_code, second.status_code, repeat.status_code) == (200, 200, 429)


def test_one_slash_64_and_an_ipv4_address_mapped_or_not_are_one_client_each(
    live_server, clock, rate
):
    rate("1/minute", num_proxies=1)
    statuses = [
        get(live_server, f"/api/pi/{n}/", **{"X-Forwarded-For": address}).status_code
        for n, address in [
            (21, "2001:db8:1:2::1"),
            (22, "2001:db8:1:2::2"),  # the same /64: the same window
            (23, "2001:db8:1:3::1"),  # another /64
            (24, "::ffff:203.0.113.5"),
            (25, "203.0.113.5"),  # the same IPv4 client
        ]
    ]
    assert statuses == [200, 429, 200, 200, 429]


def test_rate_none_switches_the_throttle_off(live_server, clock, rate):
    rate(None)
    statuses = {get(live_server, f"/api/fib/{n}/").status_code for n in range(30, 36)}
    assert statuses == {200}


def test_with_redis_down_requests_are_let_through(live_server, clock, rate, settings):
    rate("1/minute")
    dead = copy.deepcopy(settings.CACHES)
    dead["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = dead  # connections refused from now on
    bodies = [get(live_server, f"/api/fib/{n}/").json() for n in range(40, 44)]
    assert [body["cached"] for body in bodies] == [False] * 4
    assert bodies[-1]["result"] == 433494437
    assert not result_cache.available  # the breaker is open: Redis really was down


@pytest.mark.parametrize("junk", [b"x", "list"], ids=junk_id)
def test_junk_in_a_clients_counter_is_reset_not_an_outage(
    live_server, clock, rate, redis_client, junk
):
    """``INCR`` on junk is refused by Redis; that refusal counted as an outage and opened
    the breaker for every request of the process (and the throttle then let all through)."""
    rate("2/minute")
    key = result_cache.make_key(f"throttle:compute:127.0.0.1:{int(T0 // 60)}")
    plant(redis_client, key, junk)
    before = malformed_count("throttle")
    first = get(live_server, "/api/fib/50/")
    assert first.status_code == 200
    assert first.json() == {"cached": False, "result": 12586269025, "n": 50}
    assert result_cache.available
    assert malformed_count("throttle") - before == 1
    assert get(live_server, "/api/fib/51/").status_code == 200
    assert get(live_server, "/api/fib/52/").status_code == 429  # the count holds again
    ready = get(live_server, "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
