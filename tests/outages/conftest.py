"""Fixtures of the outage tests: a PostgreSQL of their own, a Redis, and granian on both.

``make test-outages`` runs these (not ``make test``: they need the
PostgreSQL server binaries, and they stop, pause and restart a server).
The server is the tests' own (``tests.support.postgres``), never the
machine's shared one, and is stopped after the module whatever happens.
Without the binaries the fixture fails, naming what to install: CI has
them, so a missing binary is an error there, not a skip.
"""

from __future__ import annotations

import subprocess

import pytest

from mathsite.paths import BASE_DIR
from tests.support.postgres import PostgresServer
from tests.support.servers import PYTHON, LiveServer, RedisServer


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("outage-pg"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("outage-redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(postgres, store, tmp_path_factory):
    """granian (2 workers, the project's defaults otherwise) on the tests' PostgreSQL.

    ``NUM_PROXIES=1``: each client thread of a test is a client of its own
    (``X-Forwarded-For``), with its own digit budget to check. The process's
    computation slots are raised above the number of client threads, so
    every 503 a test sees is the database's (the slots are tested elsewhere);
    the database's own bounds keep their defaults.
    """
    server = LiveServer(
        tmp_path_factory.mktemp("outage-web"),
        redis_url=store.url(),
        workers=2,
        env={
            "DATABASE_URL": postgres.url("mathsite"),
            "NUM_PROXIES": "1",
            "COMPUTE_CONCURRENCY": "8",
        },
    )
    migrate = [PYTHON, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"]
    subprocess.run(migrate, env=server.environment(), cwd=BASE_DIR, check=True, timeout=120)
    server.start()
    try:
        yield server
    finally:
        server.stop()
