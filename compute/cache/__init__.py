"""The result cache: the only package that talks to Django's cache framework and Redis."""

from compute.cache.store import MISSING, REDIS_ERRORS, ResultCache, result_cache

__all__ = ["MISSING", "REDIS_ERRORS", "ResultCache", "result_cache"]
