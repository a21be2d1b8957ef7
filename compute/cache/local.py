"""A bounded, in-process LRU tier for hot immutable results (no Django, no Redis).

Results never change, so the only reason to forget one is memory or an
explicit eviction. The tier is bounded by an estimate of the bytes its
entries hold, evicting least recently used entries: the size its caller
gives for the value (``Payload.nbytes``), plus the key's characters and
``ENTRY_BYTES`` for the tier's own objects around it. An entry larger than
a quarter of the budget is not kept at all. ``on_change`` hears the
counted bytes and the number of entries after every change (the metrics'
gauges), under the tier's lock so that the last value heard is the tier's.

A value read from elsewhere (Redis) is put with the ``mark`` taken before
the read: had an eviction emptied the tier (``clear``) or dropped a key
(``discard``) meanwhile, the value may be the evicted one, and ``put``
leaves it out rather than bring it back after its eviction was heard.

    >>> tier = LocalTier(max_bytes=2000)
    >>> tier.put("a", "x", 100); tier.get("a"), tier.nbytes
    ('x', 357)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MISSING = object()
# What an entry costs the tier besides its value and its key's characters:
# the key string's header, the (value, size) tuple, the size, the ordered
# dict's slot and link. Measured with tracemalloc (CPython 3.11, 64-bit):
# about 200 bytes; rounded up.
ENTRY_BYTES = 256


class LocalTier:
    """LRU mapping of key -> value bounded by the bytes its entries are counted as (``put``)."""

    def __init__(
        self, max_bytes: int, *, on_change: Callable[[int, int], None] | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self._on_change = on_change
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._drops = 0  # clears and discards so far: what ``mark`` returns
        # Every entry that left the tier or was replaced so far (clears,
        # discards, LRU evictions, puts over a key), written under the lock
        # and read without it. A value ``holds`` found under a key while
        # this count was N is still there while it is still N: nothing
        # leaves or replaces an entry without moving it. The WSGI front's
        # kept answers lean on it (``ResultCache.serves``) to skip the
        # lookup, its lock and its LRU move on a hit; after any change their
        # next hit checks and touches their entry again, so the entries
        # clients repeat stay the recently used ones.
        self.changes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """Return the value stored under ``key``, or ``MISSING``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return MISSING
            self._entries.move_to_end(key)
            return entry[0]

    def holds(self, key: str, value: Any) -> bool:
        """Return True if ``key`` still maps to this very ``value`` (and mark it recently used)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] is not value:
                return False
            self._entries.move_to_end(key)
            return True

    def mark(self) -> int:
        """Return a token for ``put(since=...)``: how many clears and discards happened so far."""
        with self._lock:
            return self._drops

    def put(self, key: str, value: Any, size: int, *, since: int | None = None) -> None:
        """Store ``value`` (holding ``size`` bytes), evicting the oldest entries to fit.

        The entry is counted as ``size`` plus the key's characters plus
        ``ENTRY_BYTES``. With ``since`` (a ``mark``), store nothing if the
        tier was cleared or any key discarded after that mark: checked under
        the same lock as the store, so no clear can fall between the check
        and the store.
        """
        size += len(key) + ENTRY_BYTES
        if size > self.max_bytes // 4:
            return
        with self._lock:
            if since is not None and since != self._drops:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
                self.changes += 1
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _key, (_value, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
                self.changes += 1
            self._changed()

    def discard(self, key: str) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            self._drops += 1  # even if absent: a read of it may be in flight
            self.changes += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
                self._changed()

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._drops += 1
            self.changes += 1
            self._entries.clear()
            self._bytes = 0
            self._changed()

    def _changed(self) -> None:
        """Tell ``on_change`` the new size (hold the lock)."""
        if self._on_change is not None:
            self._on_change(self._bytes, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Return the accounted size of all entries."""
        return self._bytes
