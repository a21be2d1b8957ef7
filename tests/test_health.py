"""Health probes: liveness always, readiness with the state of each dependency.

Mirrors the probe views of ``mathsite/views.py``. Redis down is a Redis URL
where nothing listens (connections refused): reported, never fatal.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client

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


def test_readyz_reports_redis_down_but_stays_ready(settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is False and "ConnectionError" in body["redis"]["detail"]
    # The service still answers results meanwhile.
    assert Client().get("/api/fib/25/").json() == {"cached": False, "result": 75025, "n": 25}


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
        assert "Timeout" in first.json()["redis"]["detail"]
        elapsed = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get("/readyz")
            elapsed.append(time.perf_counter() - started)
            body = response.json()
            assert response.status_code == 200 and body["status"] == "degraded"
            assert body["redis"]["ok"] is False and "breaker is open" in body["redis"]["detail"]
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
