"""The million stage of the benchmark (bench/million.py), at a tiny size.

Against the PostgreSQL the machine has (``BENCH_POSTGRES_URL``, default
``postgres://postgres@127.0.0.1:5432/postgres``; skipped when none answers)
and a Redis of the test's own: the stage creates its database, loads real
results, times every page, checks the statistics, and drops the database.
Without PostgreSQL it says "not run".
"""

from __future__ import annotations

import os

import psycopg
import pytest

from bench import million, report
from tests.support.servers import RedisServer, base_environment, free_port

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", million.DEFAULT_POSTGRES_URL)


def _postgres_answers() -> bool:
    try:
        psycopg.connect(SERVER_URL, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def test_without_postgresql_the_stage_says_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_POSTGRES_URL", f"postgres://postgres@127.0.0.1:{free_port()}/x")
    figures = million.stage_million(
        rows=100, redis_entries=10, repeats=1, redis_url="redis://127.0.0.1:1/0",
        env={}, folder=tmp_path, log=lambda _text: None,
    )  # fmt: skip
    assert figures["status"] == "not run" and "no PostgreSQL" in figures["reason"]
    assert report.million_verdicts(figures) == []
    assert "Not run: no PostgreSQL" in "\n".join(report._million_markdown(figures))


@pytest.mark.slow
@pytest.mark.skipif(not _postgres_answers(), reason=f"no PostgreSQL at {SERVER_URL}")
def test_the_stage_loads_times_checks_and_drops_its_database(tmp_path):
    redis_server = RedisServer(tmp_path / "redis").start()
    lines: list[str] = []
    env = base_environment() | {"SECURE_SSL_REDIRECT": "false"}
    try:
        figures = million.stage_million(
            rows=3_000, redis_entries=6_000 // 2, repeats=1, redis_url=redis_server.url(),
            env=env, folder=tmp_path / "stage", log=lines.append,
        )  # fmt: skip
    finally:
        redis_server.stop()
    assert figures["status"] == "run"
    assert [check for check in figures["checks"] if not check["ok"]] == []
    assert {row["name"].split(",")[0] for row in figures["timings"]} >= {
        "admin changelist", "admin statistics page", "GET /api/pi/", "manage.py cache_stats",
    }  # fmt: skip
    assert all(row["median_ms"] > 0 for row in figures["timings"])
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        names = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert figures["database"] not in names  # dropped
    text = "\n".join(report._million_markdown(figures))
    assert "3,000 real results" in text and "**wrong**" not in text
