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
``compute.domain.results.serve``), so no request waits for a child to be
spawned (about 0.1 s each); a child that died is replaced (the computation
that saw it then runs in the calling thread).

The calling thread talks to its child itself, through two pipes: it sends
the function and its argument and reads the reply, and the child writes
the reply in one piece (a pipe of 1 MB). ``concurrent.futures``'s process
pool, used before, passed each task through a feeder thread and each
reply through a manager thread, each a thread woken under the GIL: the
hand-over of a fib(10**6) (all but the maths) was 1.2 ms, and is 0.5 ms
now (medians of 40, side by side on the 2-core test machine).

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
import contextlib
import multiprocessing
import multiprocessing.util
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from compute.conf import app_settings
from compute.domain import results

NICE = 10
# How long a caller waits for a computation process to start (spawn, imports, warm-up).
START_SECONDS = 60.0

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Child:
    """One computation process: its process, the parent's ends of its pipes, its pid once ready."""

    process: Any
    tasks: Any  # the parent writes (function, argument) here
    replies: Any  # and reads (ok, value) here
    ready: concurrent.futures.Future[int] = field(default_factory=concurrent.futures.Future)


class ComputePool:
    """Run a pure computation of a query, in a child process when it is large."""

    def __init__(
        self, *, processes: Callable[[], int], threshold: Callable[[], int | None]
    ) -> None:
        self.processes = processes
        self.threshold = threshold
        self._owner = 0  # the pid the children belong to (a forked child makes its own)
        self._children: list[_Child] = []  # every live child
        self._idle: list[_Child] = []  # the ready ones no thread is using
        self._changed = threading.Condition()

    def offloads(self, work: int) -> bool:
        """Return True if a computation of ``work`` digit-equivalents runs in a child process."""
        threshold = self.threshold()
        return threshold is not None and work >= threshold

    def run(self, function: Callable[[T], R], argument: T, *, work: int) -> R:
        """Return ``function(argument)``, computed in a child process if ``work`` is large.

        ``work`` is the computation's estimate in digit-equivalents
        (``Kind.cpu_cost``, or a picture's); ``function`` and ``argument``
        must pickle (a module-level function or a kind's bound ``compute``).
        An exception raised in the child is raised here.
        """
        if not self.offloads(work):
            return function(argument)
        child = self._take()
        if child is None:  # no child could be started
            return function(argument)
        try:
            child.tasks.send((function, argument))
            ok, value = child.replies.recv()
        except (EOFError, OSError, TypeError, ValueError):
            # The child died (killed, out of memory), the pool was closed under this
            # call, or the task would not pickle: computed here all the same.
            self._discard(child)
            return function(argument)
        except BaseException:
            self._discard(child)  # in an unknown state: never reused
            raise
        self._give_back(child)
        if ok:
            return value
        raise value

    def start(self) -> list[concurrent.futures.Future[int]]:
        """Start every computation process now (none if nothing is offloaded).

        Return a future per child, resolved with its pid once it is ready.
        """
        if self.threshold() is None:
            return []
        with self._changed:
            self._own()
            while len(self._children) < self.processes():
                self._spawn()
            return [child.ready for child in self._children]

    def close(self) -> None:
        """Stop the computation processes (the next large computation starts new ones)."""
        with self._changed:
            if self._owner != os.getpid():
                return
            children, self._children, self._idle = self._children, [], []
        for child in children:
            _stop(child)

    # --- the children ------------------------------------------------------------------

    def _own(self) -> None:
        """Forget children of another process (this one was forked from their parent)."""
        if self._owner != os.getpid():
            self._children, self._idle = [], []
            self._owner = os.getpid()
            multiprocessing.util.Finalize(self, self.close, exitpriority=100)

    def _take(self) -> _Child | None:
        """Return a ready child for this thread alone, starting one if there are too few."""
        with self._changed:
            self._own()
            spawned = 0
            while True:
                if self._idle:
                    return self._idle.pop()
                if len(self._children) < self.processes():
                    if spawned > self.processes():
                        return None  # children die as they start: compute here
                    self._spawn()
                    spawned += 1
                if not self._changed.wait(timeout=START_SECONDS):
                    return None

    def _give_back(self, child: _Child) -> None:
        with self._changed:
            if child in self._children:
                self._idle.append(child)
                self._changed.notify()

    def _discard(self, child: _Child) -> None:
        with self._changed:
            if child in self._children:
                self._children.remove(child)
            if child in self._idle:
                self._idle.remove(child)
            self._changed.notify()
        _stop(child)

    def _spawn(self) -> None:
        """Start one child (under ``_changed``); a thread of its own waits for it to be ready."""
        context = multiprocessing.get_context("spawn")
        task_reader, task_writer = context.Pipe(duplex=False)
        reply_reader, reply_writer = context.Pipe(duplex=False)
        process = context.Process(
            target=results.serve,
            args=(task_reader, reply_writer, NICE),
            name="mathsite-computation",
            daemon=True,  # multiprocessing stops it at exit instead of waiting for it
        )
        process.start()
        task_reader.close()
        reply_writer.close()  # the child widens the reply pipe (``results.serve``): one pipe
        child = _Child(process, task_writer, reply_reader)
        self._children.append(child)
        threading.Thread(
            target=self._await_ready, args=(child,), name="mathsite-computation-start", daemon=True
        ).start()

    def _await_ready(self, child: _Child) -> None:
        """Read the child's first reply (its pid), then offer it; a child that fails is dropped."""
        try:
            pid = child.replies.recv()
        except Exception as exc:  # it died, or the pool was closed (its pipe with it) meanwhile
            child.ready.set_exception(exc)
            self._discard(child)
            return
        child.ready.set_result(pid)
        self._give_back(child)


def _stop(child: _Child) -> None:
    """Ask ``child`` to stop, close the parent's ends of its pipes, and reap it."""
    with contextlib.suppress(OSError, ValueError):  # dead already, or closed
        child.tasks.send(None)
    child.tasks.close()
    if child.ready.done():  # else the thread waiting for it still reads the pipe: it ends
        child.replies.close()  # with the child, and the pipe is closed when collected
    child.process.join(timeout=1.0)
    if child.process.is_alive():
        child.process.kill()
        child.process.join(timeout=1.0)


compute_pool = ComputePool(
    processes=lambda: app_settings.COMPUTE_CONCURRENCY,
    threshold=lambda: app_settings.COMPUTE_OFFLOAD_DIGITS,
)
