"""SQLite locked by another writer under load: hits answer, misses get a 503 in time.

granian (2 workers) on a SQLite file of its own (busy timeout
``BUSY_TIMEOUT``) serves the stream of hits and misses of
``tests.outages.load``; two seconds in, another connection holds the
database's write lock (``BEGIN EXCLUSIVE``, a stuck writer) for 5 s. Reads
go on (WAL), so misses find the log and compute, and their row waits for
the lock: at most ``DATABASE_CONCURRENCY`` threads of a worker wait for it,
the others are refused at once, so hits keep their threads. The checks are
``load.check``'s, with the bound docs/operations.md states for SQLite:
``DATABASE_QUEUE_WAIT + SQLITE_BUSY_TIMEOUT``.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.outages import load
from tests.support.servers import LiveServer

pytestmark = [pytest.mark.outages, pytest.mark.slow]

OUTAGE = 5.0  # seconds the lock is held
BUSY_TIMEOUT = 2.0  # the test's SQLITE_BUSY_TIMEOUT (default 20 s: a long test)
QUEUE_WAIT = 0.25  # DATABASE_QUEUE_WAIT's default


@pytest.fixture(scope="module")
def sqlite_live(store, tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("outage-sqlite-web"),
        redis_url=store.url(),
        workers=2,
        env={
            "SQLITE_BUSY_TIMEOUT": str(BUSY_TIMEOUT),
            "NUM_PROXIES": "1",
            "COMPUTE_CONCURRENCY": "8",  # every 503 is the database's (see conftest.live)
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()


def locked(database) -> None:
    holder = sqlite3.connect(database, timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(OUTAGE)
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def logged(database) -> set[tuple[str, int]]:
    with sqlite3.connect(database) as connection:
        return set(connection.execute("SELECT kind, n FROM compute_computedresult").fetchall())


def test_sqlite_locked_under_load(sqlite_live, store, request, tmp_path):
    outage = load.under_load(
        sqlite_live, lambda: locked(sqlite_live.database), name="SQLite locked", case=5
    )
    load.check(
        outage,
        live=sqlite_live,
        store=store.client(),
        logged=lambda: logged(sqlite_live.database),
        bound=QUEUE_WAIT + BUSY_TIMEOUT,
        felt=True,
        request=request,
        folder=tmp_path,
    )
