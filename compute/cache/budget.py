"""The ledger of the per-client digit budget: digits charged per client and window, in Redis.

One small key per client and fixed window,
``<prefix>:<version>:budget:<client>:<window>``, holds the digits charged to
that client in that window and expires with it. A charge is one script run
in Redis that adds the cost only if it fits (``spent + cost <= limit``, or
nothing spent yet: the first result of a window always fits, so a budget
configured below the largest result cannot make it unreachable for good),
so concurrent requests of one client in several processes cannot all slip
under the limit together, and a refused charge adds nothing. A charge for
work that then did not run (refused by the concurrency cap) is refunded.

The key is shared with whoever else can write to the Redis, so both
scripts read it with care (``compute.cache.values``): junk or another type
there is deleted in the same script and the window's count starts afresh
(reported once, counted), so it neither fails the charge nor opens the
breaker. A well-formed count cannot be told from an honest one: set to the
limit, it refuses that client until the window ends, the most such a value
can do (the next window's key is another key).

While Redis is unreachable (the breaker open, or the script failing) the
charge goes to a ledger in this process instead of being waived: the
budget then holds per process (a client may spend it once in each process
during an outage) rather than not at all. That fallback keeps only the
current window, and at most ``LOCAL_CLIENTS`` clients (past that it starts
again empty: an outage with that many clients at once is not one client
exhausting the service).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from compute.cache.breaker import Breaker
from compute.cache.values import BUDGET, LUA_COUNTERS, MalformedValues

# The one rule of a charge, shared by the ledger's script and the stampede lock's
# (``compute.cache.locks``): add ``cost`` to the counter ``key`` only if it fits
# (``spent + cost <= limit``, or nothing spent yet). Returns allowed (1 or 0), the
# digits spent, and 1 if the key held junk (deleted first: the count starts afresh).
LUA_CHARGE = (
    LUA_COUNTERS
    + """
local function charge(key, cost, limit, ttl)
  local found, reset = read_counter(key)
  local spent = found or 0
  if spent > 0 and spent + cost > limit then
    return 0, spent, reset
  end
  spent = redis.call('INCRBY', key, cost)
  redis.call('EXPIRE', key, ttl)
  return 1, spent, reset
end
"""
)
# KEYS[1]: the client's key of this window. ARGV: cost, limit, seconds to live.
# Returns {allowed, spent, reset} (``LUA_CHARGE``).
_CHARGE = (
    LUA_CHARGE
    + """
local allowed, spent, reset = charge(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])
return {allowed, spent, reset}
"""
)
# KEYS[1]: the client's key of the charge's window. ARGV[1]: the digits to give back.
# Never below 0 and never creates the key (its window may have ended meanwhile).
# Returns 1 if the key held junk (deleted: nothing left to give back).
_REFUND = (
    LUA_COUNTERS
    + """
local spent, reset = read_counter(KEYS[1])
if spent and spent > 0 then
  redis.call('DECRBY', KEYS[1], math.min(spent, tonumber(ARGV[1])))
end
return reset
"""
)
LOCAL_CLIENTS = 65_536


@dataclass(frozen=True, slots=True)
class Charge:
    """The outcome of one charge: whether it fitted, the digits spent, the window's end."""

    allowed: bool
    spent: int
    retry_after: float
    key: str
    window: int
    counter: str = BUDGET  # the request's: what junk under ``key`` is reported as


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A charge to make: ``cost`` digits to ``key`` (one client's window) if it fits ``limit``.

    Made by ``BudgetLedger.request``; charged by ``BudgetLedger.charge_request``,
    or by the stampede lock's attempt in the round trip that takes the lock
    (``compute.cache.locks``: the same rule, in the same script), so a cold
    request pays no round trip of its own for its budget.
    """

    key: str
    cost: int
    limit: int
    ttl: int  # seconds the window's key lives: the window, and one more
    window: int
    retry_after: float
    # What junk under the key is reported as (``compute.cache.values``): the same
    # rule counts the compute rate's requests (a cost of 1, the rate as the limit).
    counter: str = BUDGET

    def outcome(self, allowed: bool, spent: int) -> Charge:
        """Return the ``Charge`` of this request, given what Redis (or the local ledger) said."""
        return Charge(allowed, spent, self.retry_after, self.key, self.window, self.counter)


class BudgetLedger:
    """Charge digits to per-client windowed budgets; in this process while Redis is away."""

    def __init__(
        self,
        *,
        client: Callable[[], redis.Redis],
        breaker: Breaker,
        make_key: Callable[[str], str],
        malformed: MalformedValues,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.breaker = breaker
        self.make_key = make_key
        self.malformed = malformed
        self.clock = clock
        self._scripts: dict[str, Any] = {}
        self._local: dict[tuple[str, int], int] = {}
        self._local_window = -1
        self._guard = threading.Lock()

    def request(
        self, client_id: str, cost: int, *, limit: int, window_seconds: int
    ) -> ChargeRequest:
        """Return the charge of ``cost`` digits to ``client_id`` in the current window, unmade."""
        now = self.clock()
        window = int(now // window_seconds)
        retry_after = (window + 1) * window_seconds - now
        key = self.make_key(f"budget:{client_id}:{window}")
        return ChargeRequest(key, cost, limit, window_seconds + 1, window, retry_after)

    def charge(self, client_id: str, cost: int, *, limit: int, window_seconds: int) -> Charge:
        """Charge ``cost`` digits to ``client_id`` unless it would pass ``limit`` this window."""
        return self.charge_request(
            self.request(client_id, cost, limit=limit, window_seconds=window_seconds)
        )

    def charge_request(self, request: ChargeRequest) -> Charge:
        """Make ``request`` (one script run in Redis; in this process while Redis is away)."""
        sentinel = (-1, -1)

        def run() -> tuple[int, int]:
            found = self._script(_CHARGE)(
                keys=[request.key], args=[request.cost, request.limit, request.ttl]
            )
            self.malformed.repaired(request.counter, request.key, found[2])
            return int(found[0]), int(found[1])

        allowed, spent = self.breaker.call(run, sentinel)
        if (allowed, spent) == sentinel:
            return self._charge_locally(request)
        return request.outcome(bool(allowed), spent)

    def refund(self, charge: Charge, cost: int) -> None:
        """Give back ``cost`` digits of an allowed ``charge`` (the work did not run)."""
        if not charge.allowed:
            return
        with self._guard:
            local_key = (charge.key, charge.window)
            if local_key in self._local:
                self._local[local_key] = max(0, self._local[local_key] - cost)
                return

        def run() -> None:
            reset = self._script(_REFUND)(keys=[charge.key], args=[cost])
            self.malformed.repaired(charge.counter, charge.key, reset)

        self.breaker.call(run, None)

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client().register_script(source)
        return script

    def _charge_locally(self, request: ChargeRequest) -> Charge:
        key, window, cost = request.key, request.window, request.cost
        with self._guard:
            if window != self._local_window or len(self._local) >= LOCAL_CLIENTS:
                self._local.clear()
                self._local_window = window
            spent = self._local.get((key, window), 0)
            if spent > 0 and spent + cost > request.limit:
                return request.outcome(False, spent)
            self._local[(key, window)] = spent + cost
            return request.outcome(True, spent + cost)
