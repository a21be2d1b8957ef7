"""Two app instances sharing one Redis and one database, as a scaled-out deployment runs.

Two real granian servers (two workers each) on different ports, both on
the run's Redis (one key prefix, as one deployment) and one database: the
run's PostgreSQL test database when the suite runs on PostgreSQL, else one
migrated SQLite file. What one instance computes, the other serves as a
hit and lists in its log; a staff DELETE on one is seen by the other
within a second; one instance's ``/metrics`` adds up its workers'
counters; and, with DEBUG off, the collected (compressed) static files are
served without the finders.

The staff user and token are made with the runbook's commands
(``createsuperuser --noinput``, ``drf_create_token``), and static files
with ``collectstatic``, in subprocesses against the shared database.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.db import connection

from compute.metrics import FRONT_FLUSH_SECONDS
from tests.support.reference import fib_reference
from tests.support.servers import BASE_DIR, LiveServer, base_environment, metric_samples
from tests.support.servers import template_database as sqlite_template

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

N = 1234
PATH = f"/api/fib/{N}/"


def shared_database_url(folder: Path) -> str:
    """Return a database both instances can use: the PostgreSQL test DB, or a SQLite file."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        credentials = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            credentials += ":" + quote(db["PASSWORD"], safe="")
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return f"postgres://{credentials}@{host}/{db['NAME']}"
    path = folder / "shared.sqlite3"
    shutil.copyfile(sqlite_template(), path)
    return f"sqlite:///{path}"


def manage(env: dict[str, str], *args: str) -> str:
    """Run a manage.py command with ``env``; return its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def request(port: int, method: str, path: str, headers: dict[str, str]) -> int:
    import http.client

    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection_.request(method, path, headers=headers)
        response = connection_.getresponse()
        response.read()
        return response.status
    finally:
        connection_.close()


def metric(port: int, name: str, **labels: str) -> float:
    """Return one sample of /metrics on ``port`` (0 if absent)."""
    for found, value in metric_samples(port, name):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return 0.0


@pytest.fixture
def instances(tmp_path):
    """Start instances A and B on one Redis and one database; yield (A, B, staff token)."""
    redis_url = os.environ["REDIS_URL"]
    prefix = f"two-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    database_url = shared_database_url(tmp_path)
    folder_a, folder_b = tmp_path / "a", tmp_path / "b"
    folder_a.mkdir()
    tools = base_environment()
    tools.update(
        {
            "DJANGO_SETTINGS_MODULE": "mathsite.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": prefix,
            "MATHSITE_DATA_DIR": str(folder_a),
            "DJANGO_SUPERUSER_PASSWORD": "two-instances-staff-pw",
        }
    )

    def staff_token() -> str:
        manage(tools, "createsuperuser", "--noinput", "--username", "ops", "--email", "o@x.org")
        found = re.search(
            r"Generated token (\w+) for user ops", manage(tools, "drf_create_token", "ops")
        )
        assert found
        return found[1]

    common = {"DATABASE_URL": database_url}
    server_a = LiveServer(
        folder_a,
        redis_url=redis_url,
        workers=2,
        prefix=prefix,
        env={
            **common,
            "WHITENOISE_USE_FINDERS": "false",
            "PROMETHEUS_MULTIPROC_DIR": str(folder_a / "metrics"),
        },
    )
    server_b = LiveServer(folder_b, redis_url=redis_url, workers=2, prefix=prefix, env=common)
    try:
        with ThreadPoolExecutor(4) as pool:
            token = pool.submit(staff_token)
            collected = pool.submit(manage, tools, "collectstatic", "--noinput", "-v", "0")
            collected.result()  # A serves only collected files: collect before it starts
            started = [pool.submit(server.start) for server in (server_a, server_b)]
            for future in started:
                future.result()
            yield server_a, server_b, token.result()
    finally:
        server_a.stop()
        server_b.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


def test_two_instances_share_the_cache_the_log_and_evictions(instances):
    a, b, token = instances
    expected = fib_reference(N)

    first = a.get(PATH)
    assert first.status == 200 and first.data == {"cached": False, "result": expected, "n": N}
    on_b = b.get(PATH)
    assert on_b.status == 200 and on_b.data == {"cached": True, "result": expected, "n": N}
    listed = b.get("/api/fib/").data["results"]
    assert [item["n"] for item in listed] == [N]  # the row A wrote, read by B

    # One instance's /metrics adds up the counters of all its workers.
    hits: list = []
    lock = threading.Lock()

    def hit() -> None:
        reply = a.get(PATH)
        with lock:
            hits.append(reply)

    for _ in range(10):  # until both workers have served some (bounded)
        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        served_by = {a.accesses()[r.test_id].pid for r in hits if r.test_id in a.accesses()}
        if len(served_by) >= 2:
            break
    assert len(served_by) == 2, "one worker served every request"
    assert all(r.status == 200 and r.data["cached"] is True for r in hits)
    labels = {"route": "fib-detail", "method": "GET", "status": "200"}
    # Hits the WSGI front answered reach the shared files within
    # FRONT_FLUSH_SECONDS (each worker's tally is flushed by a thread).
    deadline = time.monotonic() + 5 * FRONT_FLUSH_SECONDS + 2
    while (
        metric(a.port, "mathsite_http_requests_total", **labels) < 1 + len(hits)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert metric(a.port, "mathsite_http_requests_total", **labels) == 1 + len(hits)
    assert metric(a.port, "mathsite_cache_lookups_total", kind="fib", result="hit") == len(hits)
    assert metric(a.port, "mathsite_cache_lookups_total", kind="fib", result="miss") == 1
    assert metric(a.port, "mathsite_compute_duration_seconds_count", kind="fib") == 1

    # Warm B's workers' in-process tiers, then delete on A.
    for _ in range(6):
        assert b.get(PATH).data["cached"] is True
    assert request(a.port, "DELETE", PATH, {}) == 401
    assert request(a.port, "DELETE", PATH, {"Authorization": f"Token {token}"}) == 204
    deleted_at = time.monotonic()
    while True:
        reply = b.get(PATH)
        if reply.data["cached"] is False or time.monotonic() - deleted_at > 1.0:
            break
        time.sleep(0.02)
    assert reply.data == {"cached": False, "result": expected, "n": N}
    assert time.monotonic() - deleted_at <= 1.0 + reply.elapsed

    # DEBUG off, finders off on A: the collected, pre-compressed files are served.
    css = a.get("/static/admin/css/base.css", headers={"Accept-Encoding": "gzip"})
    assert css.status == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers.get("content-encoding") == "gzip"  # the copy collectstatic compressed
    docs = a.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert docs.status == 200 and len(docs.body) > 100_000
    for server in (a, b):
        ready = server.get("/readyz")
        assert ready.status == 200 and ready.data["status"] == "ok"
