"""The result log down or locked, on a live server: hits answer, misses get a JSON 503.

A granian server on its own SQLite file (busy timeout 0.5 s) and its own
Redis. The test locks the database the way a stuck writer does (another
connection holding ``BEGIN EXCLUSIVE``), then asks for a cached result, a
result that must be computed through the API, the old route and the front
page's form, and the admin. SPEC "Operations": cached hits keep answering;
a request that must compute gets a 503 with ``Retry-After`` (never a 500)
within a bound (the busy timeout); nothing is half-written (no cache entry
without its row) and nothing charged; the service recovers by itself.
Reference values: fast doubling on Python integers.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
import redis

from tests.support.reference import fib_reference
from tests.support.servers import LiveServer, RedisServer, http_get

pytestmark = pytest.mark.slow

BUSY_TIMEOUT = 0.5
CLIENT = "198.51.100.20"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    store = RedisServer(tmp_path_factory.mktemp("outage-redis")).start()
    server = LiveServer(
        tmp_path_factory.mktemp("outage-web"),
        redis_url=store.url(),
        workers=1,
        env={"SQLITE_BUSY_TIMEOUT": str(BUSY_TIMEOUT), "NUM_PROXIES": "1"},
    )
    try:
        yield server.start(), redis.Redis.from_url(store.url())
    finally:
        server.stop()
        store.stop()


def get(server: LiveServer, path: str, **headers: str):
    return http_get(server.port, path, headers={"X-Forwarded-For": CLIENT, **headers})


def budget_spent(client: redis.Redis, server: LiveServer) -> int:
    keys = client.keys(server.key(f"budget:{CLIENT}:*"))
    return sum(int(client.get(key) or 0) for key in keys)


def test_a_locked_database_is_a_503_for_work_and_hits_keep_answering(live):
    server, store = live
    assert get(server, "/api/fib/300/").status == 200  # computed, logged, cached
    spent = budget_spent(store, server)
    holder = sqlite3.connect(server.database, timeout=5, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        hit = get(server, "/api/fib/300/")
        assert (hit.status, hit.data["cached"]) == (200, True)
        assert hit.data["result"] == fib_reference(300)

        started = time.monotonic()
        refused = get(server, "/api/fib/301/")
        assert time.monotonic() - started < BUSY_TIMEOUT + 2.0
        assert refused.status == 503, refused.body
        assert refused.headers["retry-after"] == "5"
        assert refused.data["retry_after"] == 5 and "database" in refused.data["detail"]
        assert get(server, "/fib/302").status == 503  # the old route alike

        page = get(server, "/?kind=fib&n=303", Accept="text/html")
        assert page.status == 503 and page.headers["retry-after"] == "5"
        assert b"database" in page.body

        admin = get(server, "/admin/login/?next=/admin/")
        assert admin.status in (200, 503)  # reading may still work; it is never a 500

        # Nothing half-written: no entry without its row, nothing charged.
        for n in (301, 302, 303):
            assert store.exists(server.key(f"fib:{n}:fmt2")) == 0
        assert budget_spent(store, server) == spent
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    recovered = get(server, "/api/fib/301/")
    assert (recovered.status, recovered.data["cached"]) == (200, False)
    assert recovered.data["result"] == fib_reference(301)


def test_postgresql_down_is_a_503_at_once_and_hits_keep_answering(tmp_path_factory):
    """A PostgreSQL that refuses connections (stopped; here a port where nothing listens,
    the machine's own PostgreSQL is shared and never stopped): the results another
    instance of the deployment cached are still served, the rest is a fast 503."""
    store = RedisServer(tmp_path_factory.mktemp("pg-down-redis")).start()
    healthy = LiveServer(tmp_path_factory.mktemp("pg-down-a"), redis_url=store.url(), workers=1)
    down = LiveServer(
        tmp_path_factory.mktemp("pg-down-b"),
        redis_url=store.url(),
        workers=1,
        prefix=healthy.prefix,  # the same deployment: one key prefix, one secret
        env={"DATABASE_URL": "postgres://mathsite@127.0.0.1:9/mathsite"},
    )
    try:
        healthy.start()
        assert http_get(healthy.port, "/api/fib/400/").status == 200
        healthy.stop()
        down.start()
        hit = http_get(down.port, "/api/fib/400/")
        assert (hit.status, hit.data["cached"]) == (200, True)
        assert hit.data["result"] == fib_reference(400)
        started = time.monotonic()
        refused = http_get(down.port, "/api/fib/401/")
        assert refused.status == 503 and refused.headers["retry-after"] == "5"
        assert time.monotonic() - started < 3.0
        # Staff with a session: the admin reads it from the database, and says it is down.
        admin = http_get(down.port, "/admin/", headers={"Cookie": "sessionid=" + "x" * 32})
        assert admin.status == 503 and b"Database unavailable" in admin.body
    finally:
        healthy.stop()
        down.stop()
        store.stop()
