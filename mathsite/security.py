"""The admin's login throttle (django-axes) and the guard of ``/metrics``.

Who a client is is defined once, in ``compute.clients`` (``client_id``:
the address the proxies report, ``NUM_PROXIES``, counted per IPv6 /64 and
IPv4-mapped as IPv4); axes locks out by it (``AXES_CLIENT_IP_CALLABLE``).

``metrics_access_allowed`` guards ``/metrics``: a direct connection from
``METRICS_ALLOWED_IPS`` (addresses or networks), or a request carrying
``Authorization: Bearer $METRICS_TOKEN``. A request relayed by a proxy
(it has ``X-Forwarded-For``) is never let in by address, because behind a
proxy on the same host every visitor would come from 127.0.0.1.

``LoginThrottleBackend`` is axes' backend for HTTP logins only: an
``authenticate()`` call without a request (the test client's ``login()``,
scripts) has no client to lock out, so it is left to the next backend
instead of failing as axes' own backend does.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from compute.clients import client_address
from compute.domain.clients import parse_address


@functools.cache
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {exc}. Set it to comma-separated addresses or networks "
            "(e.g. 127.0.0.1,10.0.0.0/8)."
        ) from exc


def metrics_access_allowed(request: HttpRequest) -> bool:
    """Return True if ``request`` may read /metrics (allowed address or bearer token)."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            return True
    if "HTTP_X_FORWARDED_FOR" in request.META:
        return False  # relayed: whatever NUM_PROXIES says, judged by the token only
    # The address itself, not the client it counts as (an IPv6 /64): an
    # allowed ::1 must not let in the rest of ::/64. IPv4-mapped is IPv4.
    address = parse_address(client_address(request))
    if address is None:
        return False
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuse logins from locked-out clients; ignore calls that carry no request."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Raise axes' PermissionDenied for a locked-out client; otherwise return None."""
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
