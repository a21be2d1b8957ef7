"""The breaker around Redis: after a failure, Redis is not tried for a while.

A dead or paused server must cost one short timeout, not one per request.
``Breaker.call`` runs one Redis operation; a connection error or timeout
opens the breaker for ``REDIS_BACKOFF_SECONDS``, during which every call
returns its default at once. The outage is logged once per process (not
per request, not per thread) and the first successful round trip after it
is logged as the recovery. Whoever keeps state that an outage makes stale
(the in-process tier, the eviction generation) subscribes with
``on_trip``.

    >>> breaker = Breaker(errors=(OSError,), backoff=lambda: 2.0)
    >>> breaker.call(lambda: 1 / 1, default=None)
    1.0
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("compute.cache")

T = TypeVar("T")


class Breaker:
    """Open for ``backoff()`` seconds after one of ``errors``; log outage and recovery once."""

    def __init__(
        self,
        *,
        errors: tuple[type[BaseException], ...],
        backoff: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.errors = errors
        self.backoff = backoff
        self.clock = clock
        self._down_until = float("-inf")
        self._tripped_at = float("-inf")
        self._in_outage = False
        self._guard = threading.Lock()
        self._listeners: list[Callable[[BaseException], None]] = []

    def on_trip(self, listener: Callable[[BaseException], None]) -> None:
        """Call ``listener(exc)`` each time a failure opens the breaker."""
        self._listeners.append(listener)

    @property
    def available(self) -> bool:
        """Return False while the breaker is open after a failure."""
        return self.clock() >= self._down_until

    def call(self, operation: Callable[[], T], default: T) -> T:
        """Run ``operation`` unless the breaker is open; return ``default`` on failure.

        ``operation`` must make a round trip: its success ends an outage.
        """
        started = self.clock()
        if started < self._down_until:
            return default
        try:
            result = operation()
        except self.errors as exc:
            self.trip(exc)
            return default
        # Only a round trip that began after the last failure proves Redis is
        # back: one that another thread's failure overtook proves nothing (it
        # would end the outage and the next failure would be logged again).
        if self._in_outage and started > self._tripped_at:
            with self._guard:
                recovered, self._in_outage = self._in_outage, False
            if recovered:
                logger.warning("Redis is reachable again; caching resumed")
        return result

    def trip(self, exc: BaseException) -> None:
        """Open the breaker after ``exc``, telling the listeners; log the outage once."""
        backoff = self.backoff()
        self._tripped_at = self.clock()
        self._down_until = self._tripped_at + backoff
        for listener in self._listeners:
            listener(exc)
        with self._guard:  # threads of one process log an outage once
            first = not self._in_outage
            self._in_outage = True
        if first:
            logger.warning(
                "Redis unreachable (%s: %s); serving without it, retrying every %.1fs",
                type(exc).__name__,
                exc,
                backoff,
            )

    def reset(self) -> None:
        """Close the breaker and forget any outage (a fresh start, e.g. between tests)."""
        self._down_until = float("-inf")
        with self._guard:
            self._in_outage = False
