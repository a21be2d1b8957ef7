"""Bounds on every wait for the result log's database: a cap on waiters and a deadline.

A server worker answers requests in a few threads (granian's blocking
threads, 4 by default) and a cached hit needs a free one. A database that
is down answers at once (connection refused), but one that is paused,
partitioned or failing over may never answer: the kernel on its side still
acknowledges every packet, so TCP keepalives and ``tcp_user_timeout`` never
fire, ``connect_timeout`` only bounds connecting, and libpq would wait for
the reply to a query for ever. Two bounds, both applied by ``log_step``
(the one way ``compute.services`` reaches the log):

- **A cap on waiters.** At most ``DATABASE_CONCURRENCY`` (2) threads of a
  process are inside a step at once; another waits at most
  ``DATABASE_QUEUE_WAIT`` (0.25 s) for one to finish, and not at all once
  those inside have been there that long, then gets ``DatabaseBusy`` (the
  request a 503). However stuck the database, the other threads stay free
  for hits.
- **A deadline per step (PostgreSQL).** A step that has not finished after
  ``DATABASE_QUERY_DEADLINE`` (2 s) has its connection's socket shut down
  by the process's watchdog thread; the blocked read returns at once,
  psycopg raises ``OperationalError``, and the step raises
  ``DeadlineExceeded`` (an ``OperationalError`` too) and closes the
  connection, so the next step connects afresh. Shutting the socket down
  is the only client-side way out: psycopg 3 has no per-query timeout,
  and the server-side ``statement_timeout`` needs a server that runs.
  SQLite needs none: its busy timeout (``SQLITE_BUSY_TIMEOUT``) bounds its
  only wait, a lock.

    >>> with log_step():  # doctest: +SKIP
    ...     ComputedResult.objects.filter(kind="fib", n=10).first()
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

from compute.conf import app_settings

# How often the watchdog looks again at a step whose connection is still
# being opened when its deadline passes (connect_timeout bounds that part).
_RECHECK_SECONDS = 0.05
# A step that sends many bytes (``warm_cache``'s batches of large results) is
# allowed a second more per this many bytes: slow for any database that
# answers at all, so only a stuck one reaches the deadline.
SEND_BYTES_PER_SECOND = 10_000_000


class DatabaseBusy(OperationalError):
    """``DATABASE_CONCURRENCY`` threads of this process already wait on the database."""


class DeadlineExceeded(OperationalError):
    """The database did not answer a step within ``DATABASE_QUERY_DEADLINE`` seconds."""


class DatabaseSlots:
    """At most ``concurrency()`` threads inside a step; the others wait ``wait()`` at most.

    A newcomer waits only while the database is answering: if even the
    latest step to get in has been inside for ``wait()`` already, the
    holders are stuck (a paused or unreachable server), and waiting behind
    them would only take a thread from the hits, so it is refused at once.
    Re-entrant per thread (a step inside a step takes no second slot), and
    read at use, so a settings change applies to the next step.
    """

    def __init__(
        self,
        *,
        concurrency: Callable[[], int],
        wait: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.wait = wait
        self.clock = clock
        self.inside = 0
        self._entered: dict[int, float] = {}  # holder thread -> when it got in
        self._changed = threading.Condition()
        self._depth = threading.local()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Run the block holding a slot; raise DatabaseBusy if none comes free in time."""
        depth = getattr(self._depth, "value", 0)
        if depth == 0:
            self._acquire()
        self._depth.value = depth + 1
        try:
            yield
        finally:
            self._depth.value = depth
            if depth == 0:
                self._release()

    def _acquire(self) -> None:
        with self._changed:
            wait = self.wait()
            deadline = self.clock() + wait
            while self.inside >= self.concurrency():
                now = self.clock()
                stuck = max(self._entered.values(), default=now) + wait <= now
                if stuck or now >= deadline:
                    # "timed out": the class of failure /readyz reports.
                    raise DatabaseBusy(
                        f"timed out waiting for the database: {self.inside} requests of this "
                        "process already wait on it (DATABASE_CONCURRENCY)"
                    )
                self._changed.wait(deadline - now)
            self.inside += 1
            self._entered[threading.get_ident()] = self.clock()

    def _release(self) -> None:
        with self._changed:
            self.inside -= 1
            self._entered.pop(threading.get_ident(), None)
            self._changed.notify()


@dataclass(order=True)
class _Step:
    due: float
    number: int
    connection: Any = field(compare=False)  # Django's DatabaseWrapper of the step's thread
    fired: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class Watchdog:
    """One thread per process that breaks the connection of a step past its deadline.

    ``arm`` registers a step, ``disarm`` ends it and says whether the
    watchdog broke its connection. The thread starts on first use and again
    in a forked child (a server's worker), where the parent's is gone.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._numbers = itertools.count()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._changed = threading.Condition()
        self._due: list[_Step] = []
        self._thread: threading.Thread | None = None
        # When the thread looks at the steps next by itself (inf: it waits to be told).
        self._next_wake = math.inf

    def arm(self, connection: Any, seconds: float) -> _Step:
        """Break ``connection`` (a Django DatabaseWrapper) if the step outlives ``seconds``."""
        if self._pid != os.getpid():
            self._reset()
        step = _Step(self.clock() + seconds, next(self._numbers), connection)
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="database-watchdog", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._due, step)
            # Woken only if it would look too late: steps come with one deadline, so
            # a new one is almost never due before the step it already waits for,
            # and waking it for every query cost each query a thread switch.
            if step.due < self._next_wake:
                self._next_wake = step.due
                self._changed.notify()
        return step

    def disarm(self, step: _Step) -> bool:
        """End ``step``; return True if the watchdog broke its connection."""
        with self._changed:
            step.done = True  # left in the heap; the thread drops it when it comes up
            return step.fired

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._due and self._due[0].done:
                    heapq.heappop(self._due)
                if not self._due:
                    self._next_wake = math.inf
                    self._changed.wait()
                    continue
                left = self._due[0].due - self.clock()
                if left > 0:
                    self._next_wake = self._due[0].due
                    self._changed.wait(left)
                    continue
                step = heapq.heappop(self._due)
                # Under the lock: ``disarm`` cannot return (and the thread reuse
                # the connection for another step) while it is being broken.
                if not _break(step.connection):
                    step.due = self.clock() + _RECHECK_SECONDS  # still connecting
                    heapq.heappush(self._due, step)
                    continue
                step.fired = True


def _break(connection: Any) -> bool:
    """Shut down the socket of ``connection``'s psycopg connection; False if it has none yet.

    ``shutdown`` (not ``close``) on a duplicate of the descriptor: the
    socket stays owned by libpq, which sees end-of-file on its blocked read
    and fails the query, while the descriptor number cannot be reused
    under it.
    """
    raw = connection.connection
    if raw is None:
        return False
    try:
        descriptor = os.dup(raw.pgconn.socket)
    except Exception:  # closed meanwhile (psycopg or OSError): nothing left to break
        return True
    with socket.socket(fileno=descriptor) as duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)
    return True


database_slots = DatabaseSlots(
    concurrency=lambda: app_settings.DATABASE_CONCURRENCY,
    wait=lambda: app_settings.DATABASE_QUEUE_WAIT,
)
watchdog = Watchdog()


@contextlib.contextmanager
def log_step(*, sending: int = 0, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run one step of work on the database within the process's bounds (module docstring).

    Raise DatabaseBusy if no slot comes free within ``DATABASE_QUEUE_WAIT``,
    DeadlineExceeded if PostgreSQL does not finish the step within
    ``DATABASE_QUERY_DEADLINE`` (plus a second per ``SEND_BYTES_PER_SECOND``
    bytes the step ``sending``: a batch of large rows legitimately takes
    longer); other database errors pass through.
    """
    connection = connections[using]
    with database_slots.hold():
        seconds = app_settings.DATABASE_QUERY_DEADLINE
        if connection.vendor != "postgresql" or seconds is None:
            yield
            return
        seconds += sending / SEND_BYTES_PER_SECOND
        step = watchdog.arm(connection, seconds)
        try:
            yield
        except OperationalError as exc:
            if watchdog.disarm(step):  # the watchdog's doing: say what happened
                raise DeadlineExceeded(
                    f"timed out: no answer from the database within {seconds:g} s "
                    "(DATABASE_QUERY_DEADLINE)"
                ) from exc
            raise
        finally:
            if watchdog.disarm(step):  # idempotent: True again after the except above
                _discard(connection)


def _discard(connection: Any) -> None:
    """Close a connection the watchdog broke, so the next step opens a new one.

    Inside a transaction Django refuses to close; the error already marked
    the connection (``errors_occurred``), and the end of the request closes it.
    """
    if not connection.in_atomic_block:
        with contextlib.suppress(Exception):
            connection.close()
