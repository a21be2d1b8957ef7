"""compute.database: the cap on threads that wait on the database, and the deadline.

The cap is pure threading and runs on every database. The deadline needs
a PostgreSQL that does not answer in time; the shared server is never
paused, so a query that sleeps on it (``pg_sleep``) stands in for one
that gets no answer: libpq waits on its socket the same way. The
paused-server case itself runs in ``make test-outages`` against a
PostgreSQL those tests start (tests/outages/).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from compute.database import DatabaseBusy, DatabaseSlots, log_step
from compute.services import LogUnavailable, log_access

ON_POSTGRESQL = connection.vendor == "postgresql"


def test_a_thread_past_the_cap_waits_then_is_refused_and_others_get_in_after():
    slots = DatabaseSlots(concurrency=lambda: 1, wait=lambda: 0.2)
    inside, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.hold():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert inside.wait(5)
        started = time.monotonic()
        with pytest.raises(DatabaseBusy), slots.hold():
            pass
        assert 0.15 <= time.monotonic() - started < 1.0
        assert slots.inside == 1
    finally:
        leave.set()
        thread.join(5)
    with slots.hold():  # free again
        assert slots.inside == 1
    assert slots.inside == 0


def test_a_waiting_thread_gets_the_slot_the_holder_gives_back():
    slots = DatabaseSlots(concurrency=lambda: 1, wait=lambda: 5.0)
    inside = threading.Event()

    def holder() -> None:
        with slots.hold():
            inside.set()
            time.sleep(0.1)

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(5)
    started = time.monotonic()
    with slots.hold():
        waited = time.monotonic() - started
    thread.join(5)
    assert waited < 2.0


def test_a_step_inside_a_step_takes_no_second_slot():
    slots = DatabaseSlots(concurrency=lambda: 1, wait=lambda: 0.0)
    with slots.hold(), slots.hold():
        assert slots.inside == 1
    assert slots.inside == 0


@pytest.mark.django_db
def test_a_database_error_inside_the_cap_gives_the_slot_back(settings):
    settings.DATABASE_CONCURRENCY = 1
    settings.DATABASE_QUEUE_WAIT = 0.0
    for _ in range(3):  # a leaked slot would refuse the second round at once
        with pytest.raises(LogUnavailable), log_access():
            raise DatabaseBusy("stands in for a refused connection")
    with log_access(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason="the deadline applies to PostgreSQL only (SQLite's wait is its busy timeout); "
    "CI runs this module on PostgreSQL too (DATABASE_URL)",
)
@pytest.mark.django_db(transaction=True)
def test_a_query_past_the_deadline_ends_in_time_and_the_next_one_works(settings):
    settings.DATABASE_QUERY_DEADLINE = 1.0
    connection.ensure_connection()
    sleeper = connection.connection.info.backend_pid
    started = time.monotonic()
    with pytest.raises(LogUnavailable) as refused, log_access(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(10)")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.5, elapsed
    assert "DATABASE_QUERY_DEADLINE" in str(refused.value.cause)
    assert connection.connection is None  # the broken connection was closed, not kept
    with log_access(), connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
        # The server only notices the client is gone when its sleep ends;
        # end it now, so the test database can be dropped after the run.
        cursor.execute("SELECT pg_terminate_backend(%s)", [sleeper])


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the deadline applies to PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_step_due_before_the_watchdog_wakes_is_broken_in_time(settings):
    """The watchdog thread is woken only for a step due before it would look again: one
    with a shorter deadline, armed while it sleeps towards a longer one, still ends in time."""
    settings.DATABASE_QUERY_DEADLINE = 5.0
    with log_step(), connection.cursor() as cursor:  # the thread now sleeps towards 5 s
        cursor.execute("SELECT 1")
    settings.DATABASE_QUERY_DEADLINE = 0.5
    connection.ensure_connection()
    sleeper = connection.connection.info.backend_pid
    started = time.monotonic()
    with pytest.raises(LogUnavailable), log_access(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(10)")
    assert time.monotonic() - started < 1.5
    with log_access(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [sleeper])


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the deadline applies to PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_step_within_its_deadline_is_left_alone(settings):
    settings.DATABASE_QUERY_DEADLINE = 1.0
    for _ in range(3):  # each step's watchdog entry ends with it
        with log_step(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.3)")
    kept = connection.connection
    time.sleep(1.0)  # past the first deadlines: nothing breaks the kept connection
    assert connection.connection is kept
    # Straight on psycopg's connection: Django's health check would hide a break.
    assert kept.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the deadline applies to PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_large_write_is_allowed_more_time(settings):
    """``sending`` lengthens the deadline: 30 MB to send is three seconds more."""
    settings.DATABASE_QUERY_DEADLINE = 0.5
    with log_step(sending=30_000_000), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")


def test_behind_steps_stuck_for_the_queue_wait_a_newcomer_is_refused_at_once():
    """A paused database: waiting behind its waiters would only take a thread from hits."""
    now = [100.0]
    slots = DatabaseSlots(concurrency=lambda: 1, wait=lambda: 0.5, clock=lambda: now[0])
    inside, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.hold():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert inside.wait(5)
        now[0] += 0.5  # the holder has been inside for the whole queue wait
        started = time.monotonic()
        with pytest.raises(DatabaseBusy), slots.hold():
            pass
        assert time.monotonic() - started < 0.1  # refused without waiting
    finally:
        leave.set()
        thread.join(5)
