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
instead of failing as axes' own backend does. It is the first
authentication backend, so its refusal comes before ``ModelBackend``
hashes the password (PBKDF2 with Django's 1,000,000 iterations: 0.3 s of
CPU per attempt here).

``LoginLockoutHandler`` is axes' database handler with a second lock: on
the client address alone, once its failures over every username reach
``AXES_ADDRESS_FAILURE_LIMIT`` within the cool-off. axes locks the pair
(username, address), which keeps a guesser from locking the real staff
out, but lets one address try a new username on every attempt, each
costing a password hash (for an unknown username too: Django hashes
anyway, so that timing does not tell which users exist). The address lock
bounds that work per address; it is looked up (one indexed query) before
any hash.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum
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


class LoginLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, also locking an address after AXES_ADDRESS_FAILURE_LIMIT failures.

    ``is_locked`` is what the first authentication backend asks before
    any password is hashed, so a locked address's attempts cost no hash.
    ``user_login_failed`` marks the failure that reaches the limit, and
    those after it, as a lock-out (axes' middleware answers 429), as axes
    does for the pair.
    """

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        """Return True if the (username, address) pair or the address alone is locked out."""
        return super().is_locked(request, credentials) or self.address_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        """Record the failure (axes); mark the request locked out if its address now is."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and not request.axes_locked_out and self.address_locked(request):
            request.axes_locked_out = True
            request.axes_credentials = credentials

    def address_locked(self, request: HttpRequest) -> bool:
        """Return True if the request's address has reached AXES_ADDRESS_FAILURE_LIMIT."""
        return self.address_failures(request) >= settings.AXES_ADDRESS_FAILURE_LIMIT

    def address_failures(self, request: HttpRequest) -> int:
        """Return the failed logins from the request's address, any username, in the cool-off."""
        address = getattr(request, "axes_ip_address", None)
        if not address:
            return 0
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0
