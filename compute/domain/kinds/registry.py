"""The registry of result kinds: every module that needs the kinds iterates over it.

The kinds are those the ``RESULT_KINDS`` setting lists (dotted paths of
``Kind`` instances), loaded once when the app is ready
(``compute.apps.ComputeConfig``); without Django (a computation process,
a script) it holds the built-in two, pi and fib. An unknown name is an
``UnknownKind`` error, never another kind's branch.

Adding a kind is one module (a ``Kind`` subclass and its instance) and one
line of ``RESULT_KINDS``; the URLconf, the WSGI front, the schema, the
admin, the statistics, the front page's form, ``warm_cache`` and the
metrics pick it up from here (the URLconf at start).

    >>> [kind.name for kind in kinds()]
    ['pi', 'fib']
    >>> get("lucas")
    Traceback (most recent call last):
    ...
    compute.domain.kinds.registry.UnknownKind: unknown kind 'lucas' (the kinds are pi, fib)
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

from compute.domain.kinds.base import SLOTS, Kind

DEFAULT_KINDS = ("compute.domain.kinds.pi.KIND", "compute.domain.kinds.fib.KIND")

_kinds: dict[str, Kind] | None = None
_guard = threading.Lock()


class UnknownKind(LookupError):
    """A kind name that no registered kind has."""

    def __str__(self) -> str:
        return str(self.args[0])


def _import(path: str) -> Kind:
    module, _, attribute = path.rpartition(".")
    kind = getattr(importlib.import_module(module), attribute)
    if not isinstance(kind, Kind) or not kind.name:
        raise TypeError(f"{path} is not a Kind instance with a name")
    return kind


def load(paths: Iterable[str]) -> None:
    """Make the kinds those of ``paths`` (dotted paths of Kind instances), in that order."""
    global _kinds
    loaded: dict[str, Kind] = {}
    for path in paths:
        kind = _import(path)
        if kind.name in loaded:
            raise ValueError(f"two kinds are named {kind.name!r}")
        for option in kind.options:
            if option.slot not in SLOTS:
                raise ValueError(f"{kind.name}: option slot {option.slot!r} is not one of {SLOTS}")
        loaded[kind.name] = kind
    with _guard:
        _kinds = loaded


def _registered() -> dict[str, Kind]:
    found = _kinds
    if found is None:
        load(DEFAULT_KINDS)
        found = _kinds
    assert found is not None
    return found


def kinds() -> tuple[Kind, ...]:
    """Return every registered kind, in the order of ``RESULT_KINDS``."""
    return tuple(_registered().values())


def names() -> tuple[str, ...]:
    """Return the names of the registered kinds, in order."""
    return tuple(_registered())


def get(name: str) -> Kind:
    """Return the kind named ``name``; raise UnknownKind if none is."""
    kind = _registered().get(name)
    if kind is None:
        raise UnknownKind(f"unknown kind {name!r} (the kinds are {', '.join(names())})")
    return kind


def owners(slot: str) -> str:
    """Return the names of the kinds with an option in ``slot``, for messages ("pi")."""
    return ", ".join(kind.name for kind in kinds() if kind.option(slot) is not None)


def integer_kinds() -> str:
    """Return the names of the kinds whose results are exact integers ("fib")."""
    return ", ".join(kind.name for kind in kinds() if kind.integer)


def choices() -> list[tuple[str, str]]:
    """Return (name, name) per kind: the log's kind choices (a callable, so no migration)."""
    return [(kind.name, kind.name) for kind in kinds()]
