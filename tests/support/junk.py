"""Junk a writer to the Redis can leave under bookkeeping keys, and the metric that counts it.

Values that are not what mathsite writes (``MALFORMED``: not a counter as
``INCR`` and docs/design.md define it) and values of the wrong Redis type
(``WRONG_TYPES``), written with a raw client as an outsider would, plus
``malformed_count`` to read ``mathsite_cache_malformed_total{key}``.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

# Strings that are not a well-formed counter (0, or 1 to 18 digits without a leading 0).
MALFORMED = [b"x", b"", b"-5", b"007", b" 12", b"1.5", b"+3", b"9" * 20]
# Anything but a string: what GET, INCR and INCRBY refuse with WRONGTYPE.
WRONG_TYPES = ["hash", "list", "set", "zset"]
JUNK = [*MALFORMED, *WRONG_TYPES]


def plant(client, key: str, junk: bytes | str) -> None:
    """Replace whatever is under ``key`` with ``junk``: a string value, or a Redis type's name."""
    client.delete(key)
    if isinstance(junk, bytes):
        client.set(key, junk)
    elif junk == "hash":
        client.hset(key, "hits", "x")  # for the statistics hash: a field that is no count
    elif junk == "list":
        client.rpush(key, "1")
    elif junk == "set":
        client.sadd(key, "1")
    elif junk == "zset":
        client.zadd(key, {"1": 1.0})
    else:
        raise ValueError(f"no such junk: {junk!r}")


def junk_id(junk: bytes | str) -> str:
    """Return a readable test id for ``junk``."""
    return junk if isinstance(junk, str) else repr(junk)[:12]


def malformed_count(key: str) -> float:
    """Return ``mathsite_cache_malformed_total{key=...}`` of this process (0 if never counted)."""
    return REGISTRY.get_sample_value("mathsite_cache_malformed_total", {"key": key}) or 0.0
