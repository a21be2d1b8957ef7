"""Where an admitted computation runs: large ones in computation processes, at a lower priority.

A server worker answers cached hits and computes in the same process, and
a computation holds the process's GIL while GMP works: fib(1,000,000)
holds it for 10-30 ms per call (more on a busy machine), and every cached
hit of that worker waits meanwhile. Computations of at least
``COMPUTE_OFFLOAD_DIGITS`` digit-equivalents of work (``Kind.cpu_cost``, or
a picture's estimate; 50,000 by default, fib(n) from n of about 240,000)
therefore run in a small pool
of child processes, one per computation slot (``COMPUTE_CONCURRENCY``), at
nice ``NICE`` so that the worker's threads (cached hits) get the CPU first;
smaller ones cost less than the hand-over and run in the calling thread.

The pool is started by each server worker as it starts (``start``, from
``mathsite.warmup``), else on first use (``spawn``: a fresh interpreter
that imports only the pure domain, never a fork of a threaded worker; each
child loads and warms the maths as it starts,
``compute.domain.results.prepare_process``), so no request waits for a
child to be spawned (about 0.1 s each); it is made again if a child died
(the computation that saw it then runs in the calling thread).

The function sent must pickle: a module-level pure function, or a kind's
bound ``compute`` (``compute.domain.results.computation``). As with any ``spawn``, the main
module is imported again in the child unless it is a package's
``__main__`` (``python -m granian``, ``python -m pytest``) or a script
guarded by ``if __name__ == "__main__"`` (``manage.py``, console scripts);
an unguarded script that calls the services should set
``COMPUTE_OFFLOAD_DIGITS=none``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.util
import os
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from compute.conf import app_settings
from compute.domain import results

NICE = 10

T = TypeVar("T")
R = TypeVar("R")


class ComputePool:
    """Run a pure computation of a query, in a child process when it is large."""

    def __init__(
        self, *, processes: Callable[[], int], threshold: Callable[[], int | None]
    ) -> None:
        self.processes = processes
        self.threshold = threshold
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._owner = 0  # the pid the executor belongs to (a forked child makes its own)
        self._guard = threading.Lock()

    def offloads(self, work: int) -> bool:
        """Return True if a computation of ``work`` digit-equivalents runs in a child process."""
        threshold = self.threshold()
        return threshold is not None and work >= threshold

    def run(self, function: Callable[[T], R], argument: T, *, work: int) -> R:
        """Return ``function(argument)``, computed in a child process if ``work`` is large.

        ``work`` is the computation's estimate in digit-equivalents
        (``Kind.cpu_cost``, or a picture's); ``function`` and ``argument``
        must pickle (a module-level function or a kind's bound ``compute``).
        """
        if not self.offloads(work):
            return function(argument)
        try:
            return self._pool().submit(function, argument).result()
        except BrokenProcessPool:
            self.close()  # a child died (killed, out of memory): a new pool next time
            return function(argument)

    def start(self) -> list[concurrent.futures.Future[int]]:
        """Start every computation process now (none if nothing is offloaded).

        An executor spawns a process when a task finds none idle; one
        trivial task per process, submitted at once, spawns them all. Return
        the tasks' futures (each gives the pid of the child that ran it).
        """
        if self.threshold() is None:
            return []
        executor = self._pool()
        return [executor.submit(os.getpid) for _ in range(self.processes())]

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._guard:
            if self._executor is None or self._owner != os.getpid():
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.processes(),
                    mp_context=multiprocessing.get_context("spawn"),
                    # Pure domain: the child unpickles it without importing Django.
                    initializer=results.prepare_process,
                    initargs=(NICE,),
                )
                self._owner = os.getpid()
                # At the process's exit multiprocessing runs its finalizers,
                # then joins its children, which wait for work. The pool's
                # queues close in finalizers of priority 10, after which its
                # shutdown can no longer reach the children: a worker told to
                # stop hung until killed. Shut the pool down before them.
                multiprocessing.util.Finalize(
                    self._executor,
                    self._executor.shutdown,
                    kwargs={"wait": True, "cancel_futures": True},
                    exitpriority=100,
                )
            return self._executor

    def close(self) -> None:
        """Stop the computation processes (the next large computation starts new ones)."""
        with self._guard:
            executor, self._executor = self._executor, None
        if executor is not None and self._owner == os.getpid():
            executor.shutdown(wait=False, cancel_futures=True)


compute_pool = ComputePool(
    processes=lambda: app_settings.COMPUTE_CONCURRENCY,
    threshold=lambda: app_settings.COMPUTE_OFFLOAD_DIGITS,
)
