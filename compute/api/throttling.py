"""Throttling of work: requests that may compute are rate-limited per client.

What is cheap and what is expensive decides where the throttle sits:

- a cached hit (the cheap work), answered by the WSGI front or by the
  view from a cache tier or the result log, never reaches a throttle: it
  costs a lookup, and counting it would add a Redis round trip to every hit;
- a request that must compute (the expensive work) is counted once no
  tier has the value, by the attempt that takes the stampede lock to
  compute it (``RequestRate``, which the view and the form hand the
  service: the count rides in the lock's round trip with the digit
  budget's charge, so it costs no round trip of its own and a request
  that gets another's result is never counted), at
  ``THROTTLE_COMPUTE_RATE`` per client (default 20000/hour: a client can
  warm thousands of results; ``none`` switches it off). Where the lock
  cannot carry it (Redis away, a cluster) and for the convergence picture,
  ``ComputeRateThrottle.allow_request`` counts in a round trip of its own.

The counter is a fixed window in Redis (one count with an expiry per
computing request) rather than DRF's sliding history, whose stored list
grows with the rate: at the default rate a history of thousands of
timestamps would be read and written per request. The client is
``compute.clients.client_id`` (``REMOTE_ADDR``, or ``X-Forwarded-For``
behind ``NUM_PROXIES`` trusted proxies; an IPv6 /64 is one client), which
is also this throttle's ``get_ident``. Over the rate the response is 429
with ``Retry-After`` (whole seconds to the window's end) and
``retry_after`` in the body.

Beside this request rate, ``compute.admission`` bounds the work itself
(digits per hour, computations at once) for the same client identity.

With Redis down the counter cannot be kept, and requests are let through
rather than refused: the service stays available, the cache's breaker has
already logged the outage once, and each process still serialises equal
computations (its per-process stampede lock) while Redis is away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from compute.cache import ResultCache, result_cache
from compute.cache.budget import Charge, ChargeRequest
from compute.cache.values import THROTTLE
from compute.clients import client_id
from compute.domain.rates import parse_rate


class ComputeRateThrottle(BaseThrottle):
    """Allow ``THROTTLE_COMPUTE_RATE`` computing requests per client and window."""

    scope = "compute"
    cache: ResultCache = result_cache
    timer: Callable[[], float] = staticmethod(time.time)

    def __init__(self) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.num_requests, self.duration = parse_rate(rate) if rate else (None, 0)
        self._wait = 0.0

    def get_ident(self, request: Request) -> str:
        """Return who the client is: ``compute.clients.client_id``, not DRF's own reading."""
        return client_id(request)

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Count this request in the client's window; False once the window is full."""
        if self.num_requests is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"throttle:{self.scope}:{self.get_ident(request)}:{window}"
        count = self.cache.count_hit(key, self.duration)
        if count is None:  # Redis unreachable: let the request through
            return True
        if count <= self.num_requests:
            return True
        self._wait = (window + 1) * self.duration - now
        return False

    def wait(self) -> float:
        """Return the seconds until the client's window ends (at least 1)."""
        return max(self._wait, 1.0)

    def charge_request(self, request: Request | HttpRequest) -> ChargeRequest | None:
        """Return this request's count in its client's window, unmade; None if the rate is off.

        The count ``allow_request`` makes, for the stampede lock's attempt to
        make in the round trip that takes the lock (``compute.cache.locks``):
        one more request fits while the window holds fewer than the rate.
        """
        if self.num_requests is None:
            return None
        now = self.timer()
        window = int(now // self.duration)
        self._wait = (window + 1) * self.duration - now
        key = self.cache.make_key(f"throttle:{self.scope}:{self.get_ident(request)}:{window}")
        return ChargeRequest(
            key, 1, self.num_requests, self.duration + 1, window, self._wait, counter=THROTTLE
        )


class RequestRate:
    """The compute rate of one request, as the service asks for it (``Client.throttle``).

    The service has the stampede lock's attempt count the request
    (``charge_request``) and calls ``refuse`` if it did not fit; where the
    lock cannot carry the count (Redis away, a cluster), it calls the object,
    which counts in a round trip of its own. ``refuse`` raises what the
    entrance answers with (DRF's ``Throttled``, through the view's
    ``throttled``): a 429 with ``Retry-After``.
    """

    def __init__(self, request: Request | HttpRequest, refuse: Callable[[float], Any]) -> None:
        self.request = request
        self._refuse = refuse

    def __call__(self) -> None:
        """Count the request in a round trip of its own; refuse it if the window is full."""
        throttle = ComputeRateThrottle()
        if not throttle.allow_request(self.request, None):  # type: ignore[arg-type]
            self._raise(throttle.wait())

    def charge_request(self) -> ChargeRequest | None:
        """Return the count for the lock's attempt to make; None if the rate is off.

        A rate of 0 gives a count that can never fit (``limit`` 0): the
        service refuses it before the lock (``Charges.never_fit``).
        """
        throttle = ComputeRateThrottle()
        return throttle.charge_request(self.request)  # type: ignore[arg-type]

    def refuse(self, charge: Charge | ChargeRequest) -> NoReturn:
        """Refuse the request whose count did not fit, or never can (``charge``)."""
        self._raise(max(charge.retry_after, 1.0))

    def _raise(self, wait: float) -> NoReturn:
        self._refuse(wait)
        raise AssertionError("refuse must raise")  # pragma: no cover
