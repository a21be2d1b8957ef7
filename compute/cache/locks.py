"""Stampede locks: one computation of a value at a time, across processes when Redis is up.

The Redis lock expires after ``COMPUTE_LOCK_TIMEOUT``, so a worker killed
mid-computation blocks the key no longer than that; waiters poll every
2 ms and give up after ``COMPUTE_LOCK_WAIT``. With Redis down (the breaker
open, or the acquire failing) a per-process lock still stops a stampede
within the process.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import redis

from compute.cache.breaker import Breaker


class ComputeLocks:
    """Named locks held while computing, in Redis or (without it) in this process."""

    def __init__(
        self,
        *,
        client: Callable[[], redis.Redis],
        breaker: Breaker,
        timeout: Callable[[], float],
        wait: Callable[[], float],
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.timeout = timeout
        self.wait = wait
        self._process_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """Hold the lock ``name``; yield False if it could not be had within the wait."""
        lock = acquired = None
        if self.breaker.available:
            # Building the lock does no I/O, so it stays outside the breaker:
            # only a real round trip may count as Redis being reachable again.
            lock = self.client().lock(
                name,
                timeout=self.timeout(),
                sleep=0.002,  # a waiter sees the result within 2 ms
                blocking_timeout=self.wait(),
            )
            acquired = self.breaker.call(lock.acquire, None)
        if acquired is None or lock is None:
            with self._process_lock(name) as held:
                yield held
            return
        try:
            yield bool(acquired)
        finally:
            if acquired:
                # Through the breaker: if Redis failed during the computation,
                # the release must not pay a second timeout (the key expires).
                self.breaker.call(lambda: _release(lock), None)

    @contextlib.contextmanager
    def _process_lock(self, name: str) -> Iterator[bool]:
        with self._guard:
            lock = self._process_locks.get(name)
            if lock is None:
                lock = threading.Lock()
                self._process_locks[name] = lock
        held = lock.acquire(timeout=self.wait())
        try:
            yield held
        finally:
            if held:
                lock.release()


def _release(lock: Any) -> None:
    """Release a Redis lock; one that expired meanwhile (a computation that outlived
    ``COMPUTE_LOCK_TIMEOUT``) has nothing to release and is not a Redis failure."""
    with contextlib.suppress(redis.exceptions.LockError):
        lock.release()
