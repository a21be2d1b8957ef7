"""A bounded memo valid for one settings epoch: what the WSGI front remembers between requests.

The front remembers the result URLs it validated and the whole answers it
sent (``compute.http.kept``); both are right only for the settings they
were made under. ``app_settings.generation`` grows with every setting
change, so it serves as the epoch: a memo asked under another epoch is
empty. Bounded by count: when full it is emptied, and what is asked again
is remembered again.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class EpochMemo(Generic[K, V]):
    """key -> value for one settings generation, at most ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._memo: tuple[int | None, dict[K, V]] = (None, {})

    def get(self, key: K, epoch: int) -> V | None:
        """Return what is remembered for ``key`` under ``epoch``, or None."""
        memo_for, memo = self._memo
        if memo_for != epoch:
            return None
        return memo.get(key)

    def put(self, key: K, epoch: int, value: V) -> None:
        """Remember ``value`` for ``key`` (forgetting everything of another epoch)."""
        memo_for, memo = self._memo
        if memo_for != epoch:
            memo = {}
            self._memo = (epoch, memo)
        if len(memo) >= self.limit:
            memo.clear()
        memo[key] = value
