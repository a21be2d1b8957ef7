"""Bookkeeping values read back from Redis, parsed with care: junk is absent, never an error.

Whoever can write to the Redis (a neighbour deployment, another user of a
shared server, a bug) can put anything under mathsite's bookkeeping keys:
the eviction generation, the statistics hash, the digit budgets, the
stampede locks, the throttle's counters. Result entries carry a MAC
(``integrity``); these keys cannot (their values are counts that any
instance must be able to change in place), so what keeps them harmless is
how they are read. The rule, the same for every one of them:

- a value that is malformed (``x``, ``-5``, ``007``, 20 digits) or of the
  wrong type (a hash or a list where a string is expected) is treated as
  absent, and reset or overwritten where a writer needs it (a budget or
  throttle counter is deleted in the same script that counts, so the
  count restarts from nothing);
- it is counted every time in ``mathsite_cache_malformed_total{key}``
  (``key`` one of ``KEYS``) and logged once per kind of key per process;
- it never causes a 5xx, and never a wait;
- and it never opens the breaker: a ``WRONGTYPE`` or "not an integer"
  answer is a fact about one key, given by a Redis that answered, not an
  outage (``is_data_error``; ``breaker.Breaker`` takes it as its
  ``data_error`` predicate).

A counter is well formed when it is what ``INCR`` accepts and mathsite
writes: ``0``, or 1 to 18 ASCII digits without a leading zero (at most
18 digits, so adding to it can never overflow 64 bits). The Python parse
(``parse_counter``) and the Lua check the scripts share (``LUA_COUNTERS``)
are the same rule. A well-formed value cannot be told from an honest one:
set to a client's limit, a budget or throttle counter refuses that client
until its window ends, and that is the most such a value can do; a
generation written back to what other hosts last read hides an eviction
from their in-process tiers (``invalidation`` says why that serves
nothing wrong).

    >>> parse_counter(b"42"), parse_counter(None)
    (42, None)
    >>> parse_counter(b"x")
    Traceback (most recent call last):
    ...
    compute.cache.values.MalformedValue: b'x' is not a counter (0, or up to 18 digits)
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from compute import metrics

logger = logging.getLogger("compute.cache")

T = TypeVar("T")

# The kinds of bookkeeping key, the label values of mathsite_cache_malformed_total.
# "other": a data error that no reader expected reached the breaker (a reader
# that should handle it does not yet: worth a bug report).
GENERATION, STATS, BUDGET, LOCK, THROTTLE, OTHER = (
    "generation",
    "stats",
    "budget",
    "lock",
    "throttle",
    "other",
)
KEYS = (GENERATION, STATS, BUDGET, LOCK, THROTTLE, OTHER)

# The most digits of a well-formed counter (``INCR``'s 64 bits hold 18 of them).
COUNTER_DIGITS = 18
_COUNTER = re.compile(rb"0|[1-9][0-9]{0,%d}" % (COUNTER_DIGITS - 1))
# Redis's words for "this key's value is not what the command needs". Only plain
# ResponseErrors carry them: the subclasses (READONLY, OOM, NOPERM, CLUSTERDOWN,
# ...) and connection errors are about the server, and stay outages.
_DATA_ERROR_MARKERS = (
    "WRONGTYPE",
    "value is not an integer",  # also "hash value is not an integer"
    "increment or decrement would overflow",
    "value is not a valid float",
)

# Lua shared by the scripts that count in Redis: the same rule as ``parse_counter``.
# ``read_counter(key)`` returns the key's count (nil if absent) and 1 if it held
# anything else, which it then deletes, so the caller starts the count afresh.
LUA_COUNTERS = """
local function is_counter(text)
  return text == '0' or (#text <= 18 and string.match(text, '^[1-9]%d*$') ~= nil)
end
local function read_counter(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then return nil, 0 end
  if kind == 'string' then
    local text = redis.call('GET', key)
    if is_counter(text) then return tonumber(text), 0 end
  end
  redis.call('DEL', key)
  return nil, 1
end
"""


class MalformedValue(ValueError):
    """A value read back from Redis that is not what mathsite writes there."""


def is_data_error(exc: BaseException) -> bool:
    """Return True if ``exc`` is Redis refusing a command because of one key's value.

    ``WRONGTYPE``, "value is not an integer", an overflow: Redis answered,
    so it is not down, and another key works. Anything else (connection
    errors, timeouts, READONLY, OOM, ...) is not a data error.
    """
    if type(exc) is not redis.ResponseError:
        return False
    message = str(exc)
    return any(marker in message for marker in _DATA_ERROR_MARKERS)


def returning_data_errors(operation: Callable[[], T]) -> T | redis.ResponseError:
    """Run ``operation``; return a data error as its value instead of raising it.

    For single commands whose key may hold the wrong type (``GET`` of a
    hash): the caller treats the value as absent, and the breaker, which
    sees only what is raised, never hears of it.
    """
    try:
        return operation()
    except redis.ResponseError as exc:
        if not is_data_error(exc):
            raise
        return exc


def execute(pipe: Any) -> list[Any]:
    """Execute ``pipe``; return its replies, a data error standing in for its command's reply.

    Every other error (a non-data ``ResponseError``, or a connection error
    that a cluster pipeline reports in its replies) is raised, so the
    breaker still opens on an outage.
    """
    replies = pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, BaseException) and not is_data_error(reply):
            raise reply
    return replies


def parse_counter(raw: Any, *, maximum: int | None = None) -> int | None:
    """Return the count ``raw`` (a ``GET`` reply) holds, or None if the key is absent.

    Raise ``MalformedValue`` for anything but a well-formed counter (see the
    module's docstring) of at most ``maximum``, including a data error
    (the key held another type); raise any other exception found in ``raw``.
    """
    if raw is None:
        return None
    if isinstance(raw, BaseException):
        if is_data_error(raw):
            raise MalformedValue(f"not a string: {raw}")
        raise raw
    if not isinstance(raw, bytes) or not _COUNTER.fullmatch(raw):
        shown = raw[:40] if isinstance(raw, bytes) else raw
        raise MalformedValue(f"{shown!r} is not a counter (0, or up to 18 digits)")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise MalformedValue(f"{value} is more than {maximum}")
    return value


class ReportedOnce:
    """A warning logged once per reason per process; every occurrence counted by ``count``.

    Reports of data that a writer to the Redis controls would otherwise fill
    the log at the request rate: the first of each reason says what
    happened and where it is counted, the metric says how often.
    """

    def __init__(self, count: Callable[[str], None]) -> None:
        self.count = count
        self._logged: set[str] = set()
        self._guard = threading.Lock()

    def __call__(self, reason: str, message: str, *args: Any) -> None:
        """Count ``reason``; log ``message % args`` if ``reason`` is new in this process."""
        self.count(reason)
        with self._guard:
            if reason in self._logged:
                return
            self._logged.add(reason)
        logger.warning(message, *args)

    def reset(self) -> None:
        """Forget which reasons were logged (a fresh start logs them again)."""
        with self._guard:
            self._logged.clear()


class MalformedValues:
    """Report malformed bookkeeping values, and parse counters reporting what fails.

    One per ``ResultCache`` (so one per process), handed to each piece that
    reads a bookkeeping key.
    """

    def __init__(self) -> None:
        self._report = ReportedOnce(metrics.cache_malformed)

    def report(self, kind: str, key: str | bytes, detail: Any) -> None:
        """Count a malformed value of a ``kind`` key (one of ``KEYS``); log the first."""
        self._report(
            kind,
            "Ignoring a malformed %s value in Redis (%s: %s); treated as absent. Further "
            'ones are counted in mathsite_cache_malformed_total{key="%s"}, not logged.',
            kind,
            key.decode(errors="replace") if isinstance(key, bytes) else key,
            detail,
            kind,
        )

    def counter(self, kind: str, key: str, raw: Any, *, maximum: int | None = None) -> int | None:
        """Return the counter in ``raw`` read from ``key``; None if absent or malformed.

        A malformed one is reported (as ``kind``) and, per the rule, treated
        as absent.
        """
        try:
            return parse_counter(raw, maximum=maximum)
        except MalformedValue as malformed:
            self.report(kind, key, malformed)
            return None

    def repaired(self, kind: str, key: str, count: Any) -> None:
        """Report a value that a script found malformed and reset (``count`` is its flag)."""
        if count:
            self.report(kind, key, "junk, deleted: the count starts afresh")

    def reset(self) -> None:
        """Forget which kinds were logged (a fresh start logs them again)."""
        self._report.reset()
