"""Health probes: liveness always, readiness with the state of each dependency.

Mirrors the probe views of ``mathsite/views.py``. Redis down is a Redis URL
where nothing listens (connections refused): reported, never fatal. Anyone
may ask ``/readyz``: its body names a class of failure, never the error's
text (hosts, paths, user names), which goes to the log once per outage.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.db.utils import OperationalError
from django.test import Client

from mathsite import views
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


def test_healthz_answers_get_and_head_without_credentials():
    client = Client()
    response = client.get("/healthz", HTTP_AUTHORIZATION="Token not-a-real-token")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200


def test_readyz_details_each_dependency():
    body = Client().get("/readyz").json()
    assert body["status"] == "ok"
    for name in ("database", "redis"):
        assert body[name]["ok"] is True and body[name]["detail"] == "ok"
        assert 0 <= body[name]["latency_ms"] < 5000


def test_readyz_reports_redis_down_but_stays_ready(settings, caplog):
    port = free_port()
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    with caplog.at_level(logging.WARNING):
        response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is True
    assert body["redis"] == {**body["redis"], "ok": False, "detail": "refused"}
    assert str(port) not in response.content.decode()  # nothing of the address
    # The error itself is in the server's log (the breaker's line of the outage).
    logged = [r.getMessage() for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(logged) == 1 and f"127.0.0.1:{port}" in logged[0] and "refused" in logged[0]
    # The service still answers results meanwhile.
    assert Client().get("/api/fib/25/").json() == {"cached": False, "result": 75025, "n": 25}


class Broken:
    """A stand-in for ``django.db.connection`` whose cursor raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def cursor(self):
        raise self.error


def test_readyz_tells_a_failing_database_s_class_and_logs_its_error_once(monkeypatch, caplog):
    """A PostgreSQL refusing connections: 503 with "refused"; host and user only in the log."""
    text = (
        'connection failed: connection to server at "db.internal" (10.0.0.5), port 5432 '
        'failed: Connection refused\n\tIs the server running on that host? user "mathsite"'
    )
    monkeypatch.setattr(views, "_database_outages", views.OutageLog("database"))
    monkeypatch.setattr(views, "connection", Broken(OperationalError(text)))
    client = Client()
    with caplog.at_level(logging.WARNING, logger="mathsite.views"):
        responses = [client.get("/readyz") for _ in range(3)]
        monkeypatch.setattr(views, "connection", connection)
        back = client.get("/readyz")
    for response in responses:
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"] == {**body["database"], "ok": False, "detail": "refused"}
        for secret in ("db.internal", "10.0.0.5", "5432", 'mathsite"'):
            assert secret not in response.content.decode()
    assert back.status_code == 200 and back.json()["database"]["detail"] == "ok"
    lines = [r.getMessage() for r in caplog.records if r.name == "mathsite.views"]
    assert lines == [
        f"readyz: the database check failed (refused): OperationalError: {text}",
        "readyz: the database is reachable again",
    ]


def test_readyz_on_a_sqlite_file_it_cannot_open_says_unreachable(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder" / "db.sqlite3"
    settings_dict = {**connection.settings_dict, "NAME": str(missing), "OPTIONS": {}}
    unreachable = DatabaseWrapper(settings_dict, "readyz")
    monkeypatch.setattr(views, "_database_outages", views.OutageLog("database"))
    monkeypatch.setattr(views, "connection", unreachable)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"]["detail"] == "unreachable"
    assert str(tmp_path) not in response.content.decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("database is locked", "locked"),
        ("connection timeout expired", "timeout"),
        ('password authentication failed for user "mathsite"', "authentication"),
        ('could not translate host name "db.internal" to address', "unreachable"),
        ('database "mathsite" does not exist', "error"),
    ],
)
def test_database_failures_are_told_by_class(text, reason):
    assert views.database_reason(OperationalError(text)) == reason


def test_readyz_goes_through_the_breaker_while_redis_hangs(tmp_path, monkeypatch):
    """A SIGSTOPped Redis costs one probe a socket timeout; the next ones answer at once."""
    from mathsite import views
    from tests.support.caches import PointedCache, backend_at
    from tests.support.servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    cache = PointedCache(backend_at(server.url()))
    monkeypatch.setattr(views, "result_cache", cache)
    client = Client()
    try:
        assert client.get("/readyz").json()["redis"]["ok"] is True
        server.pause()
        first = client.get("/readyz")
        assert first.status_code == 200 and first.json()["status"] == "degraded"
        assert first.json()["redis"]["detail"] == "timeout"
        elapsed = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get("/readyz")
            elapsed.append(time.perf_counter() - started)
            body = response.json()
            assert response.status_code == 200 and body["status"] == "degraded"
            assert body["redis"]["ok"] is False and body["redis"]["detail"] == "backing off"
            assert body["database"]["ok"] is True
        # The old probe paid REDIS_SOCKET_TIMEOUT (0.25 s) every time.
        assert max(elapsed) < 0.1, elapsed
        server.resume()
        cache.fake_clock.advance(10)  # past REDIS_BACKOFF_SECONDS: the breaker tries again
        back = client.get("/readyz").json()
        assert back["status"] == "ok" and back["redis"]["detail"] == "ok"
    finally:
        server.resume()
        server.stop()
