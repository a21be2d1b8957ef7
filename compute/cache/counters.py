"""Windowed counters in Redis, for the compute throttle: one INCR with an expiry per count.

A fixed window costs one small key per client and window, where DRF's
sliding history would store a list of timestamps that grows with the rate.
"""

from __future__ import annotations

import redis


def count_in_window(client: redis.Redis, key: str, window_seconds: int) -> int:
    """Increment the counter ``key`` (expiring after the window) and return its value."""
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window_seconds + 1)
    return int(pipe.execute()[0])
