"""Caps on the computations one process runs at once: in all, per client, and a short queue.

A server worker runs requests in a few threads (granian's blocking threads,
4 by default) and a cached hit needs a free one. If computations could take
every thread, hits would wait behind them, so a process admits:

- at most ``concurrency`` computations running at once (``COMPUTE_CONCURRENCY``);
- at most ``queue`` more waiting for one of those slots (``COMPUTE_QUEUE_LENGTH``),
  each for at most ``wait`` seconds (``COMPUTE_QUEUE_WAIT``), then refused
  (``ServiceBusy``); a request that finds the queue full is refused at once;
- at most ``per_client`` computations, running or waiting, of one client
  (``COMPUTE_CONCURRENCY_PER_CLIENT``); one more is refused at once
  (``ClientBusy``): a client's extra parallel requests never sit in a thread.

With the defaults (2 running, 1 waiting, 4 threads) at least one thread of
every worker is always free for hits. The caps are per process (in memory,
nothing to lose when a worker dies); across a deployment a client can run
``per_client`` computations in each worker, and the digit budget
(``compute.cache.budget``) bounds what it causes in all.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from compute.admission.refusals import ClientBusy, ServiceBusy

# Retry-After of an immediate refusal: computations take milliseconds to a
# few seconds, so a second is long enough for a slot to have come free.
RETRY_SECONDS = 1.0


class ComputeSlots:
    """Computation slots of this process; ``hold(client)`` runs one or raises a refusal."""

    def __init__(
        self,
        *,
        concurrency: Callable[[], int],
        per_client: Callable[[], int],
        queue: Callable[[], int],
        wait: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.per_client = per_client
        self.queue = queue
        self.wait = wait
        self.clock = clock
        self.running = 0
        self.waiting = 0
        self.clients: dict[str, int] = {}  # running or waiting, by client
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, client_id: str) -> Iterator[None]:
        """Run the block in a slot; raise ClientBusy or ServiceBusy if none can be had."""
        self.acquire(client_id)
        try:
            yield
        finally:
            self.release(client_id)

    def acquire(self, client_id: str, *, patient: bool = False) -> None:
        """Take a slot for ``client_id`` (waiting in the queue if there is room) or raise.

        A ``patient`` owner (a system caller: a command, the admin) is never
        refused: it waits for a slot however long that takes, outside the
        queue and the per-client cap, so clients' queue places stay theirs.
        """
        with self._changed:
            if patient:
                self.clients[client_id] = self.clients.get(client_id, 0) + 1
                while self.running >= self.concurrency():
                    self._changed.wait(self.wait() or RETRY_SECONDS)
                self.running += 1
                return
            self._enter(client_id)

    def release(self, client_id: str) -> None:
        """Give back a slot ``acquire`` gave ``client_id``; wake a waiter."""
        with self._changed:
            self.running -= 1
            self._leave(client_id)
            self._changed.notify()

    def _enter(self, client_id: str) -> None:
        per_client = self.per_client()
        if self.clients.get(client_id, 0) >= per_client:
            raise ClientBusy(limit=per_client, retry_after=RETRY_SECONDS)
        if self.running < self.concurrency():
            self.clients[client_id] = self.clients.get(client_id, 0) + 1
            self.running += 1
            return
        if self.waiting >= self.queue():
            raise ServiceBusy(retry_after=RETRY_SECONDS)
        self.clients[client_id] = self.clients.get(client_id, 0) + 1
        self.waiting += 1
        deadline = self.clock() + self.wait()
        try:
            while self.running >= self.concurrency():
                left = deadline - self.clock()
                if left <= 0:
                    self._leave(client_id)
                    raise ServiceBusy(retry_after=RETRY_SECONDS)
                self._changed.wait(left)
        finally:
            self.waiting -= 1
        self.running += 1

    def _leave(self, client_id: str) -> None:
        count = self.clients.get(client_id, 0) - 1
        if count > 0:
            self.clients[client_id] = count
        else:
            self.clients.pop(client_id, None)
