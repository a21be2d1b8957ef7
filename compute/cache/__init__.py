"""The result cache: the only package that talks to Django's cache framework and Redis.

``result_cache`` is the process's ``ResultCache``, built on first use (not
at import) and built again after a setting it depends on changes, so
``override_settings`` reaches it. Pieces: ``store`` (the front), ``local``,
``breaker``, ``invalidation`` (with ``host_counter``), ``locks``,
``stats``, ``counters``, ``budget``, ``pictures`` (sealed picture entries),
``values`` (bookkeeping values read with care) and
``serializer`` (django-redis's, never pickle).
"""

from __future__ import annotations

import threading
from typing import Any

from compute.cache.local import MISSING
from compute.cache.store import FAILURE_REASONS, REDIS_ERRORS, ResultCache, Tier
from compute.conf import on_change

__all__ = ["FAILURE_REASONS", "MISSING", "REDIS_ERRORS", "ResultCache", "Tier", "result_cache"]

_REBUILD_ON = {"CACHES", "LOCAL_CACHE_MAX_BYTES"}


class _ProcessCache:
    """The process's ``ResultCache``, made when first used; attribute access goes to it."""

    def __init__(self) -> None:
        self._instance: ResultCache | None = None
        self._guard = threading.Lock()
        on_change(_REBUILD_ON, self.rebuild)

    @property
    def instance(self) -> ResultCache:
        """Return the current cache, building it on first use."""
        instance = self._instance
        if instance is None:
            with self._guard:
                if self._instance is None:
                    self._instance = ResultCache()
                instance = self._instance
        return instance

    def rebuild(self) -> None:
        """Drop the current cache: the next use builds one from the settings of then."""
        self._instance = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.instance, name)


result_cache: Any = _ProcessCache()
