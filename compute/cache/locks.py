"""Stampede locks: one computation of a value at a time, across processes when Redis is up.

The Redis lock has a short time to live, ``COMPUTE_LOCK_TIMEOUT`` (2 s by
default), which a keep-alive thread of the holder renews every third of
it while the computation runs. So a computation may take as long as it
needs, and a holder that dies (a killed worker) stops renewing: its lock is
gone within ``COMPUTE_LOCK_TIMEOUT``, and a waiter (polling every 2 ms)
takes it over at once. A waiter therefore waits at most the computation
plus ``COMPUTE_LOCK_TIMEOUT``, and never longer than ``COMPUTE_LOCK_WAIT``
(then it computes itself). With Redis down (the breaker open, or the
acquire failing) a per-process lock still stops a stampede within the
process.
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
                thread_local=False,  # the keep-alive thread renews it with the same token
            )
            acquired = self.breaker.call(lock.acquire, None)
        if acquired is None or lock is None:
            with self._process_lock(name) as held:
                yield held
            return
        keepalive = _KeepAlive(lock, every=self.timeout() / 3) if acquired else None
        try:
            yield bool(acquired)
        finally:
            if keepalive is not None:
                keepalive.stop()
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


class _KeepAlive:
    """Renew a held Redis lock's time to live every ``every`` seconds until stopped."""

    def __init__(self, lock: Any, *, every: float) -> None:
        self.lock = lock
        self.every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-keepalive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            try:
                self.lock.reacquire()  # back to the full time to live
            except (redis.RedisError, OSError):
                return  # Redis failed or the lock was lost: it expires by itself

    def stop(self) -> None:
        """Stop renewing (before the release)."""
        self._stopped.set()
        self._thread.join()


def _release(lock: Any) -> None:
    """Release a Redis lock; one that expired meanwhile (a computation that outlived
    ``COMPUTE_LOCK_TIMEOUT``) has nothing to release and is not a Redis failure."""
    with contextlib.suppress(redis.exceptions.LockError):
        lock.release()
