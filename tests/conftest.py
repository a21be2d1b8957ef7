"""Shared fixtures: every test starts and ends with an empty cache namespace."""

from __future__ import annotations

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from compute.cache import REDIS_ERRORS, result_cache
from tests.support.caches import remove_host_counters


def reset_cache() -> None:
    """Close the breaker, forget the process tier and clear this run's keys."""
    result_cache.reset()
    result_cache.clear_namespace()


@pytest.fixture(autouse=True)
def clean_cache():
    """Empty this run's cache namespace and the process tier around every test.

    Afterwards the shared-memory counters of the caches the test pointed
    elsewhere are removed (they would pile up in /dev/shm otherwise).
    """
    reset_cache()
    yield result_cache
    reset_cache()
    remove_host_counters(keep=result_cache.evictions.host_path)


@pytest.fixture(scope="session", autouse=True)
def remove_namespace_at_exit():
    """Leave nothing behind in a shared Redis: drop every key of this run's prefix."""
    yield
    result_cache.evictions.host.path.unlink(missing_ok=True)
    try:
        client = result_cache.redis()
        keys = list(client.scan_iter(match=result_cache.make_key("*"), count=1000))
        if keys:
            client.delete(*keys)
    except REDIS_ERRORS:
        pass  # Redis already gone: nothing of ours left to remove there


@pytest.fixture
def redis_client():
    """A raw client on the test Redis (to inspect what the service stored)."""
    return result_cache.redis()


@pytest.fixture
def keep_test_connection():
    """Do what Django's test client does when a test calls a WSGI app itself.

    A real request's end closes database connections that are in an odd
    state; inside a test's transaction that would close the test's own
    connection (PostgreSQL).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
