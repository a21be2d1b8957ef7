"""gunicorn stays a supported server (SPEC, Serving): the repository's configuration serves the API.

The first test runs the documented production command, ``gunicorn`` from
the repository root with nothing else on its command line: gunicorn finds
``gunicorn.conf.py`` there by itself and reads everything from the
environment (``GUNICORN_BIND``, ``WEB_CONCURRENCY``, ...). It serves
``mathsite.wsgi:application`` (the plain production application) on a
SQLite copy and a Redis of its own: /healthz, a computed result, the same
result as a cached hit, a 304, and its logs come out as the configuration's
JSON lines; SIGTERM stops it cleanly.

The second checks the live-test harness's gunicorn option
(``LiveServer(server="gunicorn")``, the configuration through
``tests/support/gunicorn_conf.py``): the test application's access log
names gunicorn's own workers, as it names granian's for every other
live test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.reference import fib_reference
from tests.support.servers import PYTHON, LiveServer, RedisServer

pytestmark = pytest.mark.slow

WORKERS = 2
N = 1234
PATH = f"/api/fib/{N}/"


class ProductionGunicorn(LiveServer):
    """``gunicorn`` as the README runs it: no arguments, the configuration file, the environment."""

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = self.environment()
        env.update(
            {
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": str(self.workers),
                "LOG_LEVEL": "info",  # gunicorn's startup lines too, to check their format
            }
        )
        for name in ("MATHSITE_TEST_COMPUTE_LOG", "MATHSITE_TEST_ACCESS_LOG"):
            env.pop(name)  # not the test application: nothing writes them
        return [str(Path(PYTHON).with_name("gunicorn"))], env


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("gunicorn-redis")).start()
    yield server.url()
    server.stop()


def test_gunicorn_conf_serves_the_api(tmp_path, redis_url):
    server = ProductionGunicorn(
        tmp_path / "web", redis_url=redis_url, workers=WORKERS, server="gunicorn"
    )
    try:
        server.start()
        assert len(server.worker_pids()) == WORKERS

        health = server.get("/healthz")
        assert health.status == 200 and health.data["status"] == "ok"

        computed = server.get(PATH)
        assert computed.status == 200
        assert computed.data == {"cached": False, "result": fib_reference(N), "n": N}
        etag = computed.headers["etag"]
        hits = [server.get(PATH) for _ in range(4)]
        assert all(hit.status == 200 and hit.data["cached"] is True for hit in hits)
        assert all(hit.data["result"] == fib_reference(N) for hit in hits)
        assert {hit.headers["etag"] for hit in hits} == {etag}
        assert server.get(PATH, headers={"If-None-Match": etag}).status == 304
    finally:
        server.stop()
    assert server.process.returncode == 0  # SIGTERM: a graceful stop

    # The configuration's logging: every line JSON, gunicorn's own included.
    lines = [line for line in server.error_log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    booted = [r for r in records if r["logger"] == "gunicorn.error" and "Booting" in r["message"]]
    assert len(booted) == WORKERS
    assert any("Listening at" in r["message"] and str(server.port) in r["message"] for r in records)


def test_live_server_option_runs_gunicorn_with_the_test_application(tmp_path, redis_url):
    server = LiveServer(tmp_path / "web", redis_url=redis_url, workers=WORKERS, server="gunicorn")
    try:
        server.start()
        workers = server.worker_pids()
        replies = [server.get(PATH) for _ in range(6)]
        assert [r.status for r in replies] == [200] * 6
        assert [r.data["cached"] for r in replies] == [False] + [True] * 5
        assert [event for event, _ in server.computations("fib", N)] == ["start", "end"]
        served = server.accesses_of(replies)
        assert {served[r.test_id].pid for r in replies} <= workers
        assert all(served[r.test_id].path == PATH for r in replies)
        assert all(served[r.test_id].sent == len(r.body) for r in replies)
        assert "gunicorn" in (Path("/proc") / str(server.process.pid) / "cmdline").read_text()
    finally:
        server.stop()
    assert server.process.returncode == 0
