"""The live-server helpers clean up after themselves (tests/support/servers.py, caches.py).

Every deployment a test starts maps a shared-memory eviction counter named
after its Redis and key prefix (``compute.cache.host_counter``); stopping
the server, or the end of a test that pointed a cache elsewhere, removes
that file, so test runs leave nothing in /dev/shm/mathsite-<uid>/.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from compute.cache import result_cache
from tests.support.caches import PointedCache, backend_at, remove_host_counters
from tests.support.servers import LiveServer, RedisServer


def test_a_pointed_cache_leaves_no_counter_file(tmp_path):
    cache = PointedCache(backend_at(f"unix://{tmp_path / 'none.sock'}", prefix="cleanup-test"))
    path = cache.evictions.host.path  # mapped, as any lookup would
    assert path.exists() and path == cache.evictions.host_path
    remove_host_counters(keep=result_cache.evictions.host_path)
    assert not path.exists()
    assert result_cache.evictions.host_path.exists()  # the run's own counter stays


@pytest.mark.slow
@pytest.mark.django_db
def test_a_stopped_live_server_leaves_no_counter_file(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    live = LiveServer(tmp_path / "web", redis_url=redis_server.url(), workers=1)
    try:
        live.start()
        assert live.get("/api/fib/12/").data["result"] == 144
        path = PointedCache(backend_at(live.redis_url, prefix=live.prefix)).evictions.host_path
        assert path.exists()  # the worker mapped it
    finally:
        live.stop()
        redis_server.stop()
    assert not path.exists()


def test_a_postgresql_run_has_a_test_database_of_its_own():
    name = settings.TEST_DATABASE_NAME
    assert name.startswith("test_mathsite_") and name != "test_mathsite"
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        assert database["TEST"]["NAME"] == name
