"""The client a request comes from (``compute.clients``), and everything that counts clients by it.

The throttle, the compute gate (through the view), the login lock-out and
``/metrics`` are tested through their entrances in ``tests/api`` and
``tests/test_settings.py``; here, that each asks the one function.
"""

from __future__ import annotations

import pytest
from axes.helpers import get_client_ip_address
from django.test import RequestFactory
from rest_framework.request import Request

from compute.api.throttling import ComputeRateThrottle
from compute.clients import client_address, client_id


@pytest.fixture
def proxies(settings):
    """Set NUM_PROXIES (DRF's setting, reloaded on change)."""

    def set_proxies(count: int) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return set_proxies


def request_from(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/api/fib/7/", REMOTE_ADDR=remote, **extra)


def test_without_proxies_the_socket_is_the_client(proxies):
    proxies(0)
    request = request_from("::ffff:198.51.100.7", "203.0.113.1")
    assert client_address(request) == "::ffff:198.51.100.7"
    assert client_id(request) == "198.51.100.7"


def test_behind_num_proxies_the_header_names_the_client(proxies):
    proxies(1)
    assert client_id(request_from("127.0.0.1", "6.6.6.6, 2001:db8:1:2::9")) == "2001:db8:1:2::"
    proxies(2)
    assert client_id(request_from("127.0.0.1", "6.6.6.6, 203.0.113.1, 10.0.0.2")) == "203.0.113.1"


def test_the_ipv6_prefix_is_a_setting(settings):
    request = request_from("2001:db8:1:2:3:4:5:6")
    assert client_id(request) == "2001:db8:1:2::"
    settings.CLIENT_IPV6_PREFIX = 48
    assert client_id(request) == "2001:db8:1::"
    settings.CLIENT_IPV6_PREFIX = 128
    assert client_id(request) == "2001:db8:1:2:3:4:5:6"


@pytest.mark.parametrize(
    ("remote", "forwarded", "count"),
    [
        ("::ffff:198.51.100.7", None, 0),
        ("2001:db8:1:2::1", "203.0.113.1", 0),
        ("127.0.0.1", "6.6.6.6, 2001:db8:1:2::9", 1),
        ("127.0.0.1", "203.0.113.1", 3),
    ],
)
def test_the_throttle_and_the_lockout_ask_the_one_function(proxies, remote, forwarded, count):
    proxies(count)
    request = request_from(remote, forwarded)
    expected = client_id(request)
    assert ComputeRateThrottle().get_ident(Request(request)) == expected
    assert get_client_ip_address(request) == expected  # django-axes, AXES_CLIENT_IP_CALLABLE
