"""The front's one memo: what answering results remembers between requests, bounded in bytes.

Four things are remembered, each cheap to redo but paid on every hit
otherwise, and each keyed (``Key``, a tuple whose first item says which)
by what decides it:

- ``"url"``: the route and valid query a result URL names (path, query
  string), for the front's ``resolve``;
- ``"host"``: whether a ``Host`` value is allowed (``ALLOWED_HOSTS``);
- ``"reply"``: the built reply of a cached result (``hit.result_reply``),
  with the payload it was built from;
- ``"kept"``: the whole answer to a repeated GET (``compute.http.kept``).

All four are right only under the settings they were made with, and most
of their keys are chosen by clients (a path, a query string, ``Host``,
``Accept-Encoding``). So they share one ``FrontMemo``:

- valid for one settings generation (``app_settings.generation``, bumped by
  every setting change): asked under another, it is empty;
- bounded in bytes, not in entries: an entry costs the characters of its
  key's strings, what its value holds (stated by whoever puts it: a reply's
  body and headers, a payload's ``nbytes``) and ``ENTRY_BYTES`` for the
  objects around it; past ``MAX_BYTES`` the memo is emptied, and what is
  asked again is remembered again;
- a key whose strings pass ``MAX_KEY_CHARS`` is not remembered at all, so
  a client's junk query string or header costs a lookup, never memory.

The process has one (``front_memo``); the WSGI front and the hit protocol
use it unless given another (tests give their own).

    >>> memo = FrontMemo(max_bytes=10_000)
    >>> memo.put(("host", "example.com"), 7, True)
    >>> memo.get(("host", "example.com"), 7), memo.get(("host", "example.com"), 8)
    (True, None)
"""

from __future__ import annotations

import threading
from typing import Any

# The whole memo: a few MiB per process, far more than the URLs, hosts and
# answers a site's clients repeat (a kept answer costs 1-3 KiB, a URL or a
# host verdict a few hundred bytes).
MAX_BYTES = 4 * 1024 * 1024
# Longer keys (all their strings together) are never remembered: no real
# client's path, query string and headers come near it.
MAX_KEY_CHARS = 4096
# Bodies longer than this are not remembered: a large body costs its
# sending, not the building this saves, and must not outlive the
# in-process tier's budget by much.
MAX_BODY = 2048
# What an entry costs besides its key's characters and its value's stated
# bytes: the key tuple and its small items, the dict slot, the entry tuple.
# Rounded up: measured with tracemalloc (CPython 3.11, 64-bit), whole entries
# of each kind held 250 (host) to 1,700 bytes (kept answer), and are counted
# as 530 to 2,230.
ENTRY_BYTES = 512

Key = tuple[Any, ...]


def key_chars(key: Key) -> int:
    """Return the characters (or bytes) of the strings in ``key``; other items count nothing."""
    return sum(len(item) for item in key if isinstance(item, str | bytes))


class FrontMemo:
    """key -> value for one settings generation, at most ``max_bytes`` (see the module)."""

    def __init__(self, *, max_bytes: int = MAX_BYTES, max_key_chars: int = MAX_KEY_CHARS) -> None:
        self.max_bytes = max_bytes
        self.max_key_chars = max_key_chars
        # (generation, entries): replaced as a whole, so a lock-free ``get``
        # sees one generation's entries or another's, never a mix.
        self._state: tuple[int | None, dict[Key, tuple[Any, int]]] = (None, {})
        self._bytes = 0
        self._guard = threading.Lock()  # puts only: gets are single dict reads

    def get(self, key: Key, generation: int) -> Any:
        """Return what is remembered for ``key`` under ``generation``, or None (never a value)."""
        remembered_for, entries = self._state
        if remembered_for != generation:
            return None
        entry = entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: Key, generation: int, value: Any, *, nbytes: int = 0) -> None:
        """Remember ``value`` (holding ``nbytes`` besides its key) for ``key`` under ``generation``.

        Nothing is remembered for a key longer than ``max_key_chars``, for
        an entry larger than a quarter of the budget, or under a generation
        older than the memo's (a request that began before a setting
        changed). A newer generation forgets everything first; an entry
        that does not fit empties the memo.
        """
        chars = key_chars(key)
        if chars > self.max_key_chars:
            return
        size = chars + nbytes + ENTRY_BYTES
        if size > self.max_bytes // 4:
            return
        with self._guard:
            remembered_for, entries = self._state
            if remembered_for != generation:
                if remembered_for is not None and generation < remembered_for:
                    return
                entries = self._restart(generation)
            old = entries.get(key)
            if old is not None:
                self._bytes -= old[1]
            if self._bytes + size > self.max_bytes:
                entries = self._restart(generation)
            entries[key] = (value, size)
            self._bytes += size

    def _restart(self, generation: int) -> dict[Key, tuple[Any, int]]:
        entries: dict[Key, tuple[Any, int]] = {}
        self._state = (generation, entries)
        self._bytes = 0
        return entries

    def clear(self) -> None:
        """Forget everything."""
        with self._guard:
            self._state = (None, {})
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Return the bytes the remembered entries are counted as holding."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._state[1])


front_memo = FrontMemo()
