"""The app's settings gateway: every setting ``compute`` reads, read when it is used.

Components never copy a setting at import or construction time: they ask
``app_settings`` each time, so ``override_settings`` in a test (and any
later change) reaches them. The gateway keeps what it read (the hot path
reads several settings per request) and forgets it all whenever Django's
``setting_changed`` signal says a setting changed. Objects that must be built from settings (the
process's result cache) register a reset with ``on_change`` and are built
again, lazily, after one of the settings they name changes, the way DRF's
``api_settings`` reloads on Django's ``setting_changed`` signal. What is
derived from settings and remembered elsewhere (the WSGI front's memo)
records ``app_settings.generation``, a number that grows with every
change, and is stale once the number moved on.

    >>> app_settings.limits.fib_max_n == settings.FIB_MAX_N
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from compute.domain.kinds import registry
from compute.domain.payload import max_entry_bytes
from compute.domain.query import Limits

__all__ = ["app_settings", "on_change"]

_BUILT_IN = {"FIB_MAX_N", "PI_MAX_N", "PI_MAX_DIGITS", "FIB_MOD_MAX_N", "FIB_MOD_MAX_M"}


class AppSettings:
    """Typed, read-at-use access to the settings of ``mathsite/settings.py`` that the app uses."""

    cache_alias = "default"
    # Bumped by every setting change (``_setting_changed``), never reset: an
    # integer to compare, not the identity of some object rebuilt on change.
    generation: int = 0

    @property
    def limits(self) -> Limits:
        """Return the input limits (FIB_MAX_N, PI_MAX_N, PI_MAX_DIGITS, FIB_MOD_MAX_N/M, and
        any other limit setting a registered kind names).

        Built once (every request validates against them) and again after
        a setting changes.
        """
        limits = self.__dict__.get("_limits")
        if limits is None:
            named = {
                name
                for kind in registry.kinds()
                for name in (
                    kind.n_limit,
                    *(option.limit for option in kind.options),
                    *(option.n_limit for option in kind.options if option.n_limit),
                )
            }
            extra = tuple(
                (name, getattr(settings, name)) for name in sorted(named) if name not in _BUILT_IN
            )
            limits = Limits(
                settings.FIB_MAX_N,
                settings.PI_MAX_N,
                settings.PI_MAX_DIGITS,
                settings.FIB_MOD_MAX_N,
                settings.FIB_MOD_MAX_M,
                extra,
            )
            self.__dict__["_limits"] = limits
        return limits

    @property
    def cache_max_entry_bytes(self) -> int:
        """Return the bound of a Redis entry, stored or decompressed (``CACHE_MAX_ENTRY_BYTES``).

        Unset, it is derived from the limits (``payload.max_entry_bytes``), so
        raising ``FIB_MAX_N`` raises it too.
        """
        bound = self.__dict__.get("_max_entry_bytes")
        if bound is None:
            bound = settings.CACHE_MAX_ENTRY_BYTES or max_entry_bytes(self.limits)
            self.__dict__["_max_entry_bytes"] = bound
        return bound

    @property
    def cache_signing_secret(self) -> str:
        """Return the secret entry MACs are keyed with: ``CACHE_SIGNING_KEY`` or ``SECRET_KEY``."""
        return self.CACHE_SIGNING_KEY or self.SECRET_KEY

    @property
    def cache_location(self) -> str:
        """Return the configured Redis location of the result cache (``CACHES``)."""
        return str(settings.CACHES[self.cache_alias]["LOCATION"])

    def __getattr__(self, name: str) -> Any:
        # Every other setting by its own name (CACHE_TTL, COMPUTE_LOCK_WAIT, ...),
        # read from django.conf.settings when first asked for and kept on the
        # instance (the hot path reads several per request), until a setting
        # changes: ``_setting_changed`` then forgets every kept value.
        if name.startswith("_") or not name.isupper():
            raise AttributeError(name)
        value = getattr(settings, name)
        self.__dict__[name] = value
        return value

    def forget(self) -> None:
        """Drop every kept value: the next reads go to django.conf.settings again.

        ``generation`` is kept: only ``_setting_changed`` moves it on.
        """
        for name in list(self.__dict__):
            if name != "generation":
                self.__dict__.pop(name, None)


app_settings = AppSettings()

_resets: list[tuple[frozenset[str] | None, Callable[[], None]]] = []


def on_change(names: frozenset[str] | set[str] | None, reset: Callable[[], None]) -> None:
    """Call ``reset`` whenever one of the settings ``names`` changes (override_settings).

    ``names`` None: whenever any setting changes, for what depends on too
    many settings to name (the OpenAPI document).
    """
    _resets.append((None if names is None else frozenset(names), reset))


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    # Forget first, then bump: whoever reads the new generation reads the new
    # values too; whoever read the old one stored under a generation now past.
    app_settings.forget()
    app_settings.generation += 1
    for names, reset in _resets:
        if names is None or setting in names:
            reset()


setting_changed.connect(_setting_changed, dispatch_uid="compute.conf")
