"""Who the client is, and the admin's login throttle (django-axes) built on it.

``client_ip`` is the one definition of a client's address: the socket's
address, or, behind ``NUM_PROXIES`` trusted proxies, the address that many
hops from the right of ``X-Forwarded-For`` (what DRF's throttles use too).
Trusting the header without knowing how many proxies wrote it would let a
client pick a fresh address on every request.

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
from rest_framework.settings import api_settings


def client_ip(request: HttpRequest) -> str:
    """Return the client's address, trusting ``X-Forwarded-For`` only as far as NUM_PROXIES."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(proxies, len(hops))]


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
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack socket
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
