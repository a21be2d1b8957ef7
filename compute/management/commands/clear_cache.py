"""``manage.py clear_cache``: empty this deployment's cache namespace, and only it.

Deletes the Redis keys of the configured key prefix and version
(``CACHE_KEY_PREFIX``, ``CACHE_VERSION``); keys of other deployments or
applications in the same Redis stay. The result log is untouched, so the
next request for a result refills Redis from it without recomputing; the
eviction generation is bumped, so every server process drops its
in-process tier within ``LOCAL_CACHE_SYNC_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compute.cache import REDIS_ERRORS, result_cache


class Command(BaseCommand):
    help = "Delete every cache key of this deployment's namespace (prefix and version)."

    def handle(self, *args: Any, **options: Any) -> None:
        namespace = result_cache.namespace
        try:
            deleted = result_cache.clear_namespace()
        except REDIS_ERRORS as exc:
            raise CommandError(
                f"Redis is unreachable ({type(exc).__name__}: {exc}); nothing was cleared."
            ) from exc
        if options["verbosity"] > 0:
            self.stdout.write(f"Cleared {deleted:,} keys from namespace {namespace!r}.")
