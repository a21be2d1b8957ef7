"""The breaker around Redis: after a failure, Redis is not tried for a while.

A dead or paused server must cost one short timeout, not one per request.
``Breaker.call`` runs one Redis operation; a connection error or timeout
opens the breaker for ``REDIS_BACKOFF_SECONDS``, during which every call
returns its default at once. The outage is logged once per process (not
per request, not per thread) and the first successful round trip after it
is logged as the recovery. Whoever keeps state that an outage makes stale
(the in-process tier, the eviction generation) subscribes with
``on_trip``.

The breaker is for outages only. An error that ``data_error`` recognises
(``compute.cache.values.is_data_error``: ``WRONGTYPE``, "value is not an
integer") is Redis answering about one key's value, which whoever can
write to the Redis controls: it must not stop this process from using
Redis for everything else. Such an error returns the default without
opening the breaker (and counts as an answer, so it may end an outage);
the readers of those keys handle them before they get here, and
``on_data_error`` listeners hear of any that still do.

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
        data_error: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self.errors = errors
        self.backoff = backoff
        self.clock = clock
        self.data_error = data_error
        self._down_until = float("-inf")
        self._tripped_at = float("-inf")
        self._in_outage = False
        self._guard = threading.Lock()
        self._listeners: list[Callable[[BaseException], None]] = []
        self._data_listeners: list[Callable[[BaseException], None]] = []

    def on_trip(self, listener: Callable[[BaseException], None]) -> None:
        """Call ``listener(exc)`` each time a failure opens the breaker."""
        self._listeners.append(listener)

    def on_data_error(self, listener: Callable[[BaseException], None]) -> None:
        """Call ``listener(exc)`` for each data error that reaches the breaker (not an outage)."""
        self._data_listeners.append(listener)

    @property
    def available(self) -> bool:
        """Return False while the breaker is open after a failure."""
        return self.clock() >= self._down_until

    def call(self, operation: Callable[[], T], default: T) -> T:
        """Run ``operation`` unless the breaker is open; return ``default`` on failure.

        ``operation`` must make a round trip: its success ends an outage. A
        data error (``data_error``) returns ``default`` without opening the
        breaker.
        """
        started = self.clock()
        if started < self._down_until:
            return default
        try:
            result = operation()
        except self.errors as exc:
            if not self.data_error(exc):
                self.trip(exc)
                return default
            for listener in self._data_listeners:
                listener(exc)
            result = default  # Redis answered: what follows treats it as a round trip
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
