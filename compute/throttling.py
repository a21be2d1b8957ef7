"""Throttling of work: requests that have to compute are rate-limited per client.

A fixed-window counter (one atomic INCR per computing request) rather than
DRF's sliding history, whose stored list grows with the rate: the default
rate lets a client warm thousands of results, and a history of thousands
of timestamps per request would cost more than the computation. Cached hits
never reach this class (they are answered before the view). With Redis
down the counter cannot be kept and requests are let through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from .cache import ResultCache, result_cache

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """Return (requests, seconds) for a DRF-style rate such as ``"100/minute"``."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


class ComputeRateThrottle(BaseThrottle):
    """Allow ``THROTTLE_COMPUTE_RATE`` computing requests per client and window."""

    scope = "compute"
    cache: ResultCache = result_cache
    timer: Callable[[], float] = staticmethod(time.time)

    def __init__(self) -> None:
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]
        self.num_requests, self.duration = parse_rate(rate)
        self._wait = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        now = self.timer()
        window = int(now // self.duration)
        key = f"throttle:{self.scope}:{self.get_ident(request)}:{window}"
        count = self.cache.count_hit(key, self.duration)
        if count is None or count <= self.num_requests:
            return True
        self._wait = (window + 1) * self.duration - now
        return False

    def wait(self) -> float:
        return max(self._wait, 1.0)
