"""The client a request comes from: ``compute.domain.clients`` read from a request.

``client_id`` is who a client is for everything that limits or locks out
clients: the compute throttle (``ComputeRateThrottle.get_ident``), the
digit budget and compute slots (the view's ``ComputeGate``) and the admin's
login lock-out (django-axes' ``AXES_CLIENT_IP_CALLABLE``). ``client_address``
is the address before it is counted as a client (the access log's
``client``; ``/metrics``' allowed addresses).

The settings are DRF's ``NUM_PROXIES`` (how many proxies append to
``X-Forwarded-For``; the same setting DRF's throttles read) and
``CLIENT_IPV6_PREFIX`` (the bits of an IPv6 network that count as one
client, 64 by default).

    >>> client_id(request)  # doctest: +SKIP
    '2001:db8:1:2::'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.settings import api_settings

from compute.conf import app_settings
from compute.domain.clients import client_identity, reported_address

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request

__all__ = ["client_address", "client_id"]


def client_address(request: HttpRequest | Request) -> str:
    """Return the client's address as the proxies report it (``REMOTE_ADDR``, or
    ``X-Forwarded-For`` behind ``NUM_PROXIES`` proxies), before it is counted as a client."""
    meta = request.META
    return reported_address(
        meta.get("REMOTE_ADDR", ""),
        meta.get("HTTP_X_FORWARDED_FOR"),
        num_proxies=api_settings.NUM_PROXIES or 0,
    )


def client_id(request: HttpRequest | Request) -> str:
    """Return who the client of ``request`` is: its address, IPv4-mapped as IPv4, IPv6 per
    ``CLIENT_IPV6_PREFIX`` bits (``compute.domain.clients.client_identity``)."""
    return client_identity(client_address(request), ipv6_prefix=app_settings.CLIENT_IPV6_PREFIX)
