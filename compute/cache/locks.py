"""Stampede locks: one computation of a value at a time, across processes when Redis is up.

The Redis lock has a short time to live, ``COMPUTE_LOCK_TIMEOUT`` (2 s by
default), which the process's renewal thread (one per process, shared by
every lock it holds) extends every third of it while the computation runs.
So a computation may take as long as it needs, and a holder that dies (a
killed worker) stops renewing: its lock is gone within
``COMPUTE_LOCK_TIMEOUT``, and a waiter (polling every 2 ms) takes it over
at once. A waiter therefore waits at most the computation plus
``COMPUTE_LOCK_TIMEOUT``, and never longer than ``COMPUTE_LOCK_WAIT`` (then
it computes itself). With Redis down (the breaker open, or an attempt
failing) a per-process lock still stops a stampede within the process.

Within a process only one thread goes to Redis for a given lock at a time
(a "flight"): the others wait for it in memory and take what it found or
stored, without a round trip of their own. A burst of cold requests for
one value thus costs Redis one poller per process instead of one per
thread, and those threads wake the moment their own process's holder is
done instead of at their next poll.

A cold request makes as few round trips as the protocol allows, since each
one is a large part of what a small computation costs:

- each attempt to take the lock reads the value's key in the same round
  trip (``watch``), so a request that finds the value there (the holder
  finished meanwhile) returns it at once, and one that takes the lock
  knows the value is still missing;
- the holder stores the value and releases the lock in one round trip
  (``Lease.release_with``), the store first: whenever the lock is free,
  the value is already there, which is what keeps it to one computation;
- a request charged for computing (a client's compute rate and digit
  budget, ``charges``) has the attempt that takes the lock make those
  charges in the same round trip (one script), so it is charged only if it
  computes, and a charge that does not fit gives the lock back at once.

Both need the two keys on one server, in order: always true on a single
Redis or a Sentinel master; on a cluster the lock's name carries the
value's key as its hash tag (``lock_name``), and where that cannot put
them in one slot the steps are taken one after the other instead.

Whoever can write to the Redis can put anything under a lock's name, and
a waiter must never wait on junk. A lock is *sound* when it is what a
holder writes: a string of ``TOKEN_CHARS`` lowercase hex digits with a
time to live of at most this process's ``COMPUTE_LOCK_TIMEOUT`` (a
holder never sets more; so every instance must be configured with the
same). Each attempt reads the lock's value and time to live in its round
trip; an unsound lock (junk, another type, no expiry, a longer one) is
reported (``compute.cache.values``, once per process, counted) and taken
over at once by a script that checks it again. A sound hostile lock holds
a value back no longer than a killed holder's would. The watched key is
read with the same care: another type there reads as a missing value
(``unfit`` hears of it) and the holder's store overwrites it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.crc import key_slot

from compute.cache.breaker import Breaker
from compute.cache.budget import LUA_CHARGE, Charge, ChargeRequest
from compute.cache.values import LOCK, MalformedValues, execute, returning_data_errors

POLL_SECONDS = 0.002  # a waiter sees the result within 2 ms
TOKEN_BYTES = 16
TOKEN_CHARS = 2 * TOKEN_BYTES  # a token is written as lowercase hex
_TOKEN = re.compile(rb"[0-9a-f]{%d}" % TOKEN_CHARS)

# KEYS[1]: the lock. ARGV[1]: the holder's token. Deletes the lock only if still ours
# (TYPE first: GET of another type would be an error, and it is not ours anyway).
_OURS = "redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1]"
_RELEASE = f"""
if {_OURS} then return redis.call('DEL', KEYS[1]) end
return 0
"""
# ARGV[2]: the time to live in ms. Extends the lock only if still ours.
_RENEW = f"""
if {_OURS} then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# ARGV[1]: the taker's token, ARGV[2]: the time to live in ms. Takes the lock unless
# it is (now) sound: the same judgement as ``sound_lock``, made again atomically.
# Returns 1 if taken.
_TAKE_OVER = f"""
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
  local token = redis.call('GET', KEYS[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if #token == {TOKEN_CHARS} and not string.find(token, '[^0-9a-f]')
      and ttl > 0 and ttl <= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# The attempt of a request that is charged for computing (a client's compute
# rate and digit budget): one script reads the watched key, takes the lock if no
# sound holder has it (taking over junk, as ``_TAKE_OVER``) and, having taken it,
# makes the charges in order (``budget.LUA_CHARGE``); the first that does not fit
# gives the lock back and stops there. So a cold request's lock, rate and budget
# cost one round trip, and nothing is charged unless this request is the one
# that computes.
# KEYS[1]: the lock, KEYS[2]: the watched key, KEYS[3..]: the counters charged.
# ARGV: the token, the lock's time to live in ms, then per counter its cost, limit
# and seconds to live. Returns {0, the watched value} if it is a string (nothing
# taken or charged), {2} if a sound holder has the lock, else {1, the watched key's
# type, the lock's state before ('free', 'unsound' or 'wrongtype'), an unsound
# lock's value or type, its PTTL, then per charge made: allowed, spent, reset}.
_TAKE_CHARGING = (
    LUA_CHARGE
    + f"""
local function lock_state(key, timeout)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return 'free', false, 0 end
  if kind ~= 'string' then return 'wrongtype', kind, -1 end
  local token = redis.call('GET', key)
  local ttl = redis.call('PTTL', key)
  if #token == {TOKEN_CHARS} and not string.find(token, '[^0-9a-f]')
      and ttl > 0 and ttl <= timeout then
    return 'sound', false, 0
  end
  return 'unsound', token, ttl
end
local entry = redis.call('TYPE', KEYS[2])['ok']
if entry == 'string' then return {{0, redis.call('GET', KEYS[2])}} end
local timeout = tonumber(ARGV[2])
local state, junk, junk_ttl = lock_state(KEYS[1], timeout)
if state == 'sound' then return {{2}} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', timeout)
local reply = {{1, entry, state, junk, junk_ttl}}
for i = 3, #KEYS do
  local at = 3 + (i - 3) * 3
  local allowed, spent, reset = charge(KEYS[i], tonumber(ARGV[at]), tonumber(ARGV[at + 1]),
                                       ARGV[at + 2])
  table.insert(reply, allowed)
  table.insert(reply, spent)
  table.insert(reply, reset)
  if allowed == 0 then
    redis.call('DEL', KEYS[1])
    break
  end
end
return reply
"""
)
# Bound to no client: each call names its own.
_TAKE_CHARGING_SCRIPT: Any = Script(None, _TAKE_CHARGING.encode())  # type: ignore[arg-type]
_FAILED = object()


def new_token() -> bytes:
    """Return a fresh holder's token (what a sound lock holds)."""
    return secrets.token_hex(TOKEN_BYTES).encode()


def sound_lock(value: Any, ttl_ms: int, timeout_ms: int) -> bool:
    """Return True unless the lock read as ``value`` (its ``GET`` reply) with ``ttl_ms``
    (its ``PTTL``) is one no holder writes: junk, another type, no expiry or a longer one.

    A lock that vanished (``None``) is not unsound: the next attempt takes it.
    """
    if value is None:
        return True
    if isinstance(value, BaseException) or not _TOKEN.fullmatch(value):
        return False
    # PTTL -2: gone since the GET (sound: free now); -1: no expiry.
    return ttl_ms == -2 or 0 < ttl_ms <= timeout_ms


def lock_name(make_key: Callable[[str], str], watched_key: str) -> str:
    """Return the Redis name of the lock on the full key ``watched_key`` (hash-tagged by it)."""
    return make_key(f"lock:{{{watched_key}}}")


def same_server(client: Any, first: str, second: str) -> bool:
    """Return True if ``first`` and ``second`` live on one server, so one pipeline orders them."""
    if not isinstance(client, RedisCluster):
        return True
    return key_slot(first.encode()) == key_slot(second.encode())


@dataclass(eq=False)
class Lease:
    """One hold of a stampede lock.

    ``held``: this request may compute (it holds the lock, or the per-process
    one). ``found``: what ``accept`` made of the watched key's value when it
    was read while taking the lock, or None (then the value was missing).
    ``charges``: the charges made in the round trip that took the lock
    (asked for with ``hold(charges=...)``, in their order), or None if that
    attempt made none (the caller charges on its own); the last one did not
    fit if the lease is not ``held``: the lock was given back, the charges
    after it were not made. ``waited``: ``found`` came after this request
    saw another holder (it got that computation's value), not at its first look.
    """

    held: bool
    found: Any = None
    charges: tuple[Charge, ...] | None = None
    _redis: _RedisHold | None = field(default=None, repr=False)
    _flight: _Flight | None = field(default=None, repr=False)
    waited: bool = False

    def share(self, value: Any) -> None:
        """Hand ``value`` (just stored under the watched key) to this process's waiting threads."""
        if self._flight is not None:
            self._flight.found = value
            self._flight.landed.set()  # they need not wait for the rest of the holder's block

    def release_with(self, write: Callable[[Any], None]) -> bool | None:
        """Queue ``write``'s commands on a pipeline, then release the lock, in one round trip.

        Return True once done, False if Redis failed, None if this lease
        holds no Redis lock (the caller then writes on its own).
        """
        if self._redis is None or self._redis.released:
            return None
        return self._redis.release(write)


class ComputeLocks:
    """Named locks held while computing, in Redis or (without it) in this process."""

    def __init__(
        self,
        *,
        client: Callable[[], redis.Redis],
        breaker: Breaker,
        timeout: Callable[[], float],
        wait: Callable[[], float],
        malformed: MalformedValues,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.timeout = timeout
        self.wait = wait
        self.malformed = malformed
        self._process_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._flights: dict[str, _Flight] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(
        self,
        name: str,
        *,
        watch: str | None = None,
        accept: Callable[[bytes], Any] = lambda data: data,
        unfit: Callable[[BaseException], None] = lambda exc: None,
        charges: Sequence[ChargeRequest] = (),
    ) -> Iterator[Lease]:
        """Hold the lock ``name`` while the block runs.

        With ``watch``, each attempt also reads that key; a value that
        ``accept`` turns into something other than None ends the wait as
        ``found`` (and the lock, if taken, is given back at once); a data
        error in its place (another type) goes to ``unfit`` and reads as
        missing. The lease is not ``held`` if the lock could not be had
        within the wait. With ``charges`` (and ``watch``, off a cluster) the
        attempt that takes the lock makes them in the same round trip
        (``Lease.charges``); if one does not fit, the lock is given back.
        """
        deadline = time.monotonic() + self.wait()
        flight, found = self._board(name, deadline)
        if found is not None:
            yield Lease(False, found, waited=True)
            return
        try:
            with self._hold(name, watch, accept, unfit, deadline, flight, charges) as lease:
                yield lease
        finally:
            if flight is not None:
                self._land(name, flight)

    def _board(self, name: str, deadline: float) -> tuple[_Flight | None, Any]:
        """Lead this process's flight for ``name``, or wait for its leader; return which.

        Return (the flight this thread now leads, None), or (None, what the
        leader found or stored), or (None, None) if the wait ended first or
        Redis is down (the thread then acts alone).
        """
        while self.breaker.available:
            with self._guard:
                flight = self._flights.get(name)
                if flight is None:
                    flight = self._flights[name] = _Flight()
                    return flight, None
            flight.landed.wait(max(0.0, deadline - time.monotonic()))
            if flight.found is not None:
                return None, flight.found
            if time.monotonic() >= deadline:
                break
            # The leader gave up (or failed) without a value: lead, or wait for the next one.
        return None, None

    def _land(self, name: str, flight: _Flight) -> None:
        with self._guard:
            if self._flights.get(name) is flight:
                del self._flights[name]
        flight.landed.set()

    @contextlib.contextmanager
    def _hold(
        self,
        name: str,
        watch: str | None,
        accept: Callable[[bytes], Any],
        unfit: Callable[[BaseException], None],
        deadline: float,
        flight: _Flight | None,
        charges: Sequence[ChargeRequest],
    ) -> Iterator[Lease]:
        attempt = (
            self._attempt(name, watch, accept, unfit, deadline, charges)
            if self.breaker.available
            else None
        )
        if attempt is None:
            with self._process_lock(name) as held:
                yield Lease(held)
            return
        hold, found, charged, waited = attempt
        if hold is not None and found is not None:
            hold.release(None)  # the value is there: nothing to compute
        if hold is None or found is not None:
            if flight is not None:
                flight.found = found
            yield Lease(False, found, charged, waited=waited)
            return
        try:
            yield Lease(True, None, charged, hold, flight)
        finally:
            if not hold.released:
                hold.release(None)

    def _attempt(
        self,
        name: str,
        watch: str | None,
        accept: Callable[[bytes], Any],
        unfit: Callable[[BaseException], None],
        deadline: float,
        charges: Sequence[ChargeRequest] = (),
    ) -> tuple[_RedisHold | None, Any, tuple[Charge, ...] | None, bool] | None:
        """Poll for the lock until it is had, the value appears or ``deadline`` passes.

        Return (the hold or None, what was found or None, the charge made
        or None, whether another holder was seen first); None if Redis failed.
        A value that fails its checks (``accept`` gives None: it was reported
        and deleted) is polled again at once, not after a pause.
        """
        ttl_ms = max(1, int(self.timeout() * 1000))
        token = new_token()
        client = self.client()
        together = watch is not None and same_server(client, name, watch)
        # One script reads the value, takes the lock and makes the charges (if
        # any): on one server; a cluster pipelines the steps (``lock_name``).
        scripted = watch is not None and not isinstance(client, RedisCluster)

        def once_scripted() -> tuple[bool, Any, tuple[Charge, ...] | None]:
            assert watch is not None
            args: list[Any] = [token, ttl_ms]
            for request in charges:
                args += [request.cost, request.limit, request.ttl]
            reply = _TAKE_CHARGING_SCRIPT(
                keys=[name, watch, *(request.key for request in charges)], args=args, client=client
            )
            if int(reply[0]) == 0:
                return False, reply[1], None  # the value (or what stands for it) is there
            if int(reply[0]) == 2:
                return False, None, None  # a sound holder computes it
            _, entry, state, junk, junk_ttl, *made = reply
            if state == b"wrongtype":
                self.malformed.report(LOCK, name, f"not a string: a {junk.decode()}")
            elif state == b"unsound":
                self.malformed.report(LOCK, name, _described(junk, int(junk_ttl)))
            outcomes = []
            for request, at in zip(charges, range(0, len(made), 3), strict=False):
                allowed, spent, reset = made[at : at + 3]
                self.malformed.repaired(request.counter, request.key, reset)
                outcomes.append(request.outcome(bool(allowed), int(spent)))
            data = None
            if entry != b"none":  # another type than a string: unfit, overwritten by the store
                data = redis.ResponseError(f"WRONGTYPE the entry holds a {entry.decode()}")
            if not outcomes:
                return True, data, None
            return outcomes[-1].allowed, data, tuple(outcomes)

        def once() -> tuple[bool, Any, tuple[Charge, ...] | None]:
            if scripted:
                return once_scripted()
            # The lock's own value and time to live come in the same round trip,
            # so a waiter can tell a holder from junk without asking again.
            pipe = client.pipeline(transaction=False)
            pipe.set(name, token, nx=True, px=ttl_ms)
            pipe.get(name)
            pipe.pttl(name)
            if together:
                pipe.get(watch)
            taken, value, ttl, *data = execute(pipe)
            if not taken and not sound_lock(value, ttl, ttl_ms):
                self.malformed.report(LOCK, name, _described(value, ttl))
                taken = bool(client.eval(_TAKE_OVER, 1, name, token, ttl_ms))
            if watch is None:
                return bool(taken), None, None
            if not together:
                data = [returning_data_errors(lambda: client.get(watch))]
            return bool(taken), data[0], None

        unfit_told = False
        waited = rejected = False
        while True:
            outcome = self.breaker.call(once, _FAILED)
            if outcome is _FAILED:
                return None
            taken, data, charged = outcome
            if charged and not charged[-1].allowed:
                return None, None, charged, waited  # refused: the script gave the lock back
            if isinstance(data, BaseException):  # the watched key holds another type
                if not unfit_told:  # once per wait, not once per poll
                    unfit(data)
                    unfit_told = True
                data = None
            hold = _RedisHold(self, name, token, ttl_ms, together=together) if taken else None
            found = accept(data) if data is not None else None
            if taken or found is not None or time.monotonic() >= deadline:
                return hold, found, charged, waited
            if data is not None and not rejected:
                rejected = True  # junk, deleted by ``accept``: look again at once (once)
                continue
            waited = True
            time.sleep(POLL_SECONDS)

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


def _described(value: Any, ttl_ms: int) -> str:
    if isinstance(value, BaseException):
        return f"not a string: {value}"
    if ttl_ms < 0:
        return f"{value[:40]!r} with no expiry"
    return f"{value[:40]!r} expiring in {ttl_ms} ms"


class _Flight:
    """The threads of this process after one lock: the leader's outcome, once it has landed."""

    __slots__ = ("found", "landed")

    def __init__(self) -> None:
        self.found: Any = None  # what the leader found or stored, if anything
        self.landed = threading.Event()


class _RedisHold:
    """A Redis lock this process holds: renewed by the process's renewal thread until released."""

    def __init__(
        self,
        locks: ComputeLocks,
        name: str,
        token: bytes,
        ttl_ms: int,
        *,
        together: bool,
    ) -> None:
        self.locks = locks
        self.name = name
        self.token = token
        self.ttl_ms = ttl_ms
        self.every = ttl_ms / 3000  # a third of the time to live, in seconds
        self.renew_at = time.monotonic() + self.every
        self.together = together
        self.released = False
        renewals.add(self)

    def renew(self) -> bool:
        """Extend the lock to its full time to live; False once it is no longer ours."""
        try:
            client = self.locks.client()
            return bool(client.eval(_RENEW, 1, self.name, self.token, self.ttl_ms))
        except (redis.RedisError, OSError):
            return False  # Redis failed: the lock expires by itself

    def release(self, write: Callable[[Any], None] | None) -> bool:
        """Run ``write`` (if any) and release, in one round trip where the keys allow it.

        Through the breaker: if Redis failed during the computation, the
        release must not pay a second timeout (the key expires by itself).
        """
        self.released = True
        renewals.discard(self)
        client = self.locks.client()
        one_trip = self.together and not isinstance(client, RedisCluster)

        def run() -> bool:
            if write is not None and one_trip:
                pipe = client.pipeline(transaction=False)
                write(pipe)
                pipe.eval(_RELEASE, 1, self.name, self.token)
                pipe.execute()
                return True
            if write is not None:
                pipe = client.pipeline(transaction=False)
                write(pipe)
                pipe.execute()
            client.eval(_RELEASE, 1, self.name, self.token)
            return True

        return self.locks.breaker.call(run, False)


class _Renewals:
    """The process's one renewal thread and the Redis locks it keeps alive.

    One thread for every lock the process holds, rather than one per
    computation: starting and joining a thread was a tenth of a small
    computation's cost. Made on first use in each process (a forked child
    starts its own).
    """

    def __init__(self) -> None:
        self._holds: dict[int, _RedisHold] = {}
        self._wake = threading.Condition()
        self._pid = 0
        # When the thread wakes next by itself (monotonic; inf: it waits to be told).
        self._next_wake = math.inf

    def add(self, hold: _RedisHold) -> None:
        """Renew ``hold`` from now on, every third of its time to live.

        The thread is woken only if it would wake too late for ``hold``:
        a lock is taken by every cold request, and waking a thread each
        time (a context switch, and the GIL handed over and back) cost
        them more than the rest of the lock's bookkeeping.
        """
        with self._wake:
            if self._pid != os.getpid():  # first use in this process
                self._holds.clear()
                self._pid = os.getpid()
                self._next_wake = math.inf
                threading.Thread(target=self._run, name="lock-renewal", daemon=True).start()
            self._holds[id(hold)] = hold
            if hold.renew_at < self._next_wake:
                self._next_wake = hold.renew_at  # it will, once it has looked again
                self._wake.notify()

    def discard(self, hold: _RedisHold) -> None:
        """Stop renewing ``hold`` (before its release)."""
        with self._wake:
            self._holds.pop(id(hold), None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [hold for hold in self._holds.values() if hold.renew_at <= now]
                for hold in due:
                    hold.renew_at = now + hold.every
                if not due:
                    upcoming = min((hold.renew_at for hold in self._holds.values()), default=None)
                    self._next_wake = math.inf if upcoming is None else upcoming
                    self._wake.wait(None if upcoming is None else upcoming - now)
                    continue
                self._next_wake = now  # renewing: it looks again before it waits
            for hold in due:
                if not hold.released and not hold.renew():
                    self.discard(hold)


renewals = _Renewals()
