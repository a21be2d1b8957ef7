"""Windowed counters in Redis, for the compute throttle: one script per count, with an expiry.

A fixed window costs one small key per client and window, where DRF's
sliding history would store a list of timestamps that grows with the rate.

The counter is shared with whoever else can write to the Redis. A plain
``INCR`` on a key holding ``x`` (or a list) is refused by Redis, and that
refusal used to count as an outage and open the breaker for every
request; so the count is one script that reads the key with care
(``compute.cache.values``): junk or another type is deleted and the count
starts afresh (the caller reports it). A well-formed count set to the
rate refuses that client until its window ends, no more: the next window
is another key, and the script sets the expiry again on every count.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script

from compute.cache.values import LUA_COUNTERS

# KEYS[1]: the counter. ARGV[1]: its seconds to live. Returns {count, 1 if junk was reset}.
_COUNT = (
    LUA_COUNTERS
    + """
local _, reset = read_counter(KEYS[1])
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {count, reset}
"""
)
# Bound to no client: each call names its own (bytes, so no client's encoder is needed).
_SCRIPT: Any = Script(None, _COUNT.encode())  # type: ignore[arg-type]


def count_in_window(client: redis.Redis, key: str, window_seconds: int) -> tuple[int, bool]:
    """Increment the counter ``key`` (expiring after the window); return it and whether junk
    there was reset first."""
    count, reset = _SCRIPT(keys=[key], args=[window_seconds + 1], client=client)
    return int(count), bool(reset)
