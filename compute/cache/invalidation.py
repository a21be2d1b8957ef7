"""The eviction broadcast: every process forgets an evicted result within a bound.

Each process keeps an in-process tier in front of Redis (``local``), so a
DELETE, an admin eviction or a namespace clear must reach every process:

- on one host at once: a counter in shared memory (``HostCounter``) that
  an eviction bumps and every process compares, a plain memory read,
  before each in-process hit;
- on other hosts within ``LOCAL_CACHE_SYNC_SECONDS``: a generation counter
  in Redis, re-read by each process at most that often (its first 19
  bytes, carried by the request that finds the sync due), and never
  alongside a lookup.

No key is read by every request: the generation is read by every
*process*, twice a second by default, whatever the request rate, so on a
Redis Cluster lookups spread over the shards that own their keys and the
generation's shard sees a constant, small load (``docs/deploy.md`` has the
figures). Pub/sub would save those reads but loses messages silently while
a subscriber reconnects (during a failover, exactly when evictions matter),
so it needs this periodic check as its fallback anyway, plus a subscriber
thread per process; RESP3 client-side tracking has the same gap when a
connection drops and needs RESP3 on every connection. The periodic read
alone is one mechanism, the same on a single server, a cluster and
Sentinel, with the same bound.

The generation is read back from a Redis that others may write to, so it
is parsed with care (``compute.cache.values``): junk or another type
under its key reads as no generation at all (reported once, counted; the
tier is emptied if it held anything, as for any change), and the next
eviction's bump replaces it with a fresh counter. It only ever tells a
process to forget: whatever it holds, nothing wrong is served. A
well-formed value is another matter: written back to the value the other
hosts last read, right after a bump, it hides that eviction from their
tiers (this host's shared counter still tells its own processes), which
then keep serving the evicted result, a value this deployment computed,
until their LRU drops it or the next eviction's bump reaches them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compute.cache.host_counter import HostCounter
from compute.cache.values import COUNTER_DIGITS, GENERATION, LUA_COUNTERS, MalformedValues

# The replies ``EvictionBroadcast.queue_read`` queues on a pipeline.
READ_REPLIES = 2

# KEYS[1]: the generation. ARGV[1]: a random base for a missing (or reset) counter.
# Returns {the new generation, 1 if the key held junk and was reset}. One script,
# so junk left there cannot make evictions stop reaching other hosts.
_BUMP = (
    LUA_COUNTERS
    + """
local current, reset = read_counter(KEYS[1])
if not current then redis.call('SET', KEYS[1], ARGV[1]) end
return {redis.call('INCR', KEYS[1]), reset}
"""
)


class EvictionBroadcast:
    """When this process's in-process tier may be trusted, and how to tell the others."""

    def __init__(
        self,
        *,
        generation_key: str,
        host_name: str,
        sync_seconds: Callable[[], float],
        forget: Callable[[], None],
        malformed: MalformedValues,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.generation_key = generation_key
        self.host_name = host_name
        self.sync_seconds = sync_seconds
        self.forget = forget  # empties the in-process tier
        self.malformed = malformed
        self.clock = clock
        self._host: HostCounter | None = None
        self._host_seen = 0
        self._generation: int | None = None
        self._fresh_until = float("-inf")  # the clock's time the next sync is due

    @property
    def host(self) -> HostCounter:
        """Return this host's shared counter (mapped, and its value noted, on first use).

        Map it before anything enters the tier, so every later bump is seen.
        """
        if self._host is None:
            self._host = HostCounter.for_name(self.host_name)
            self._host_seen = self._host.read()
        return self._host

    @property
    def host_path(self) -> Path:
        """Return the file of this host's counter, whether or not it is mapped yet.

        The file outlives the processes that map it (that is how a new
        process sees earlier bumps); whoever knows that no process of the
        deployment runs any more (a test's server that stopped) removes it.
        """
        return HostCounter.path_for(self.host_name)

    @property
    def trusted(self) -> bool:
        """Return True if the tier is in step with the shared generation (it may serve)."""
        return self._generation is not None

    def check(self) -> str:
        """Return "fresh" if the tier may serve now, "sync" if Redis must be asked first.

        A bump on this host empties the tier at once; an untrusted tier is
        always due for a sync.
        """
        seen = self.host.read()
        if seen != self._host_seen:
            self.forget()
            self._host_seen = seen
        if self._generation is None or self.clock() >= self._fresh_until:
            return "sync"
        return "fresh"

    def fresh(self) -> bool:
        """Return True if ``check`` would say "fresh" and has nothing to do first.

        The hit path's question, answered with a memory read and a clock
        read: no bump on this host since the last one seen, in step, no
        sync due. False says nothing more: ``check`` then tells what to do.
        """
        host = self._host
        return (
            host is not None
            and host.read() == self._host_seen
            and self.clock() < self._fresh_until
            and self._generation is not None
        )

    def queue_read(self, pipe: Any) -> None:
        """Queue the read of the shared generation on ``pipe`` (``READ_REPLIES`` commands).

        Whether the key exists, and its first ``COUNTER_DIGITS + 1`` bytes
        only (one more than a counter's digits, so a longer value fails its
        check as the whole would): whoever writes to the Redis could leave
        megabytes under the key, which every process would otherwise fetch
        at every sync, twice a second. ``read_value`` turns the replies
        into what a ``GET`` of a counter would have said.
        """
        pipe.exists(self.generation_key)
        pipe.getrange(self.generation_key, 0, COUNTER_DIGITS)  # both ends included

    @staticmethod
    def read_value(replies: list[Any]) -> Any:
        """Return the generation's value from ``queue_read``'s replies: None if the key is absent.

        Else its first bytes (a longer value fails the counter's check, as
        the whole would), or the data error a key of another type gave.
        """
        exists, head = replies
        if isinstance(exists, BaseException):
            return exists
        return head if exists else None

    def adopt(self, value: Any) -> None:
        """Adopt the generation read from Redis (the ``GET`` reply); a change empties the tier.

        A missing generation is 0 (no eviction yet); so is a malformed one
        (reported), or a data error in its place (the key held another
        type): it cannot tell of an eviction, so it must not fail a request.
        """
        generation = self.malformed.counter(GENERATION, self.generation_key, value) or 0
        if generation != self._generation:
            self.forget()
            self._generation = generation
        # Read once per sync: a changed setting builds another cache (and broadcast).
        self._fresh_until = self.clock() + self.sync_seconds()

    def bump(self, client: Any) -> None:
        """Increment the shared generation (one round trip to the shard that owns it).

        A missing counter (first eviction, or a Redis that lost its data)
        restarts from a random 48-bit base rather than from 1, so it cannot
        come back equal to the value an idle process last saw; so does a
        malformed one, which is reported. One script on the one key, so it
        is slot-safe on a cluster.
        """
        _, reset = client.eval(_BUMP, 1, self.generation_key, secrets.randbits(48))
        self.malformed.repaired(GENERATION, self.generation_key, reset)

    def bump_host(self) -> None:
        """Tell every process of this host to empty its tier now."""
        self.host.bump()

    def lose_track(self) -> None:
        """Stop trusting the tier (Redis failed: evictions could not be heard)."""
        self.forget()
        self._generation = None
        self._fresh_until = float("-inf")
