"""Result caches for in-process tests: the production cache stack pointed elsewhere.

``ResultCache`` takes its django-redis backend and its clock as
constructor arguments; ``PointedCache`` passes a backend built from the
project's own ``CACHES`` options (only the location changed) and a clock
the test steps, so a test can talk to a paused or missing Redis, or step
time, without touching the process's ``result_cache``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django_redis.cache import RedisCache
from redis.connection import AbstractConnection

from compute.cache import ResultCache


class FakeClock:
    """A monotonic clock that starts at the real one's reading and moves only when told to.

    Starting at the real reading matters when it replaces the clock of the
    process's own ``result_cache``, whose deadlines were set by the real one.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.monotonic() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def backend_at(location: str, *, prefix: str | None = None) -> RedisCache:
    """Return a django-redis backend with the project's options, at ``location``."""
    params: dict[str, Any] = copy.deepcopy(
        {k: v for k, v in settings.CACHES["default"].items() if k not in ("BACKEND", "LOCATION")}
    )
    if prefix is not None:
        params["KEY_PREFIX"] = prefix
    return RedisCache(location, params)


class PointedCache(ResultCache):
    """A ResultCache on a backend of its own (default: the configured one) and a stepped clock.

    Every instance is remembered until ``remove_host_counters`` (run after
    each test by tests/conftest.py) deletes the shared-memory counter files
    of their namespaces.
    """

    made: ClassVar[list[PointedCache]] = []

    def __init__(self, backend: RedisCache | None = None, clock: FakeClock | None = None) -> None:
        self.fake_clock = clock or FakeClock()
        super().__init__(backend, clock=self.fake_clock)
        PointedCache.made.append(self)


def remove_host_counters(keep: Path) -> None:
    """Delete the host counter files of every PointedCache made so far, except ``keep``.

    ``keep`` is the run's own counter (the process's ``result_cache``), in
    use until the run ends. Only files named after these caches' own
    namespaces are touched: other runs on this host keep theirs.
    """
    for cache in PointedCache.made:
        path = cache.evictions.host_path
        if path != keep:
            path.unlink(missing_ok=True)
    PointedCache.made.clear()


def remove_host_counter(redis_url: str, prefix: str) -> None:
    """Delete the host counter file of the deployment at ``redis_url`` with key ``prefix``."""
    path = ResultCache(backend_at(redis_url, prefix=prefix)).evictions.host_path
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def counted_round_trips() -> Iterator[list[int]]:
    """Count the round trips this process makes to Redis meanwhile (one per command or pipeline).

    A spy on redis-py's real connection: every request, single command,
    script or pipeline, is sent by one call of ``send_packed_command``.
    """
    sent = [0]
    real = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        sent[0] += 1
        return real(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = real  # type: ignore[method-assign]
