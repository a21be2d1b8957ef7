"""Request environs without the server process's environment variables.

granian's WSGI wrapper (``granian.wsgi._callback_wrapper``) starts every
request's environ from a copy of the worker's ``os.environ``, CGI style
(PEP 3333 allows it; gunicorn does not do it). That costs twice:

- every variable of the server's process reaches ``request.META``:
  whatever the deployer's shell, unit file or container gives it (cloud
  credentials, tokens, URLs with passwords), not only the secrets mathsite
  knows of and removes (``mathsite.environment``). Anything that records a
  request (an error report, a debugging aid, a log of META) carries them;
- every request copies them, with the GIL held: tens of entries on a
  deployed host, more than the request itself brings (78 entries per
  hit under ``make run`` from a shell of 57 variables, 21 without).

Nothing reads the process environment through a request: Django and
mathsite read it through their settings, once. ``install`` makes granian's
multi-process server build its wrapper as before, then removes from the
wrapper's base environ (the dict it merges into every request's) what came
from ``os.environ``, keeping the keys granian sets itself: the CGI ones
(``GATEWAY_INTERFACE``, ``SCRIPT_NAME``, ``SERVER_SOFTWARE``) and
``wsgi.*``. The request's own keys (method, path, headers, addresses) are
granian's Rust side's and untouched.

The base environ is found in the wrapper's closure (its ``basic_env``):
granian's internals, like ``launcher.shared_listener``'s hook, and refused
the same way (``check``) when the installed granian no longer has them.
The workers are forked from the process that called ``install`` (Python's
default start method on Linux up to 3.13, which granian uses), so they
inherit it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from granian import wsgi as granian_wsgi
from granian.server import mp as granian_mp

# The base environ's keys that granian sets itself, kept; every other key
# of it came from os.environ.
GRANIAN_KEYS = frozenset({"GATEWAY_INTERFACE", "SCRIPT_NAME", "SERVER_SOFTWARE"})
WSGI_PREFIX = "wsgi."
# Where granian keeps the base environ: a free variable of its runner, itself
# a free variable of the access-logging variant.
_BASE = "basic_env"
_RUNNER = "_runner"

_granian_wrap: Callable[..., Any] = granian_wsgi._callback_wrapper


def base_environ(wrapper: Callable[..., Any]) -> dict[str, Any]:
    """Return the dict granian's ``wrapper`` merges into every request's environ.

    Raise ``LookupError`` if the wrapper does not keep one where this
    module looks (another granian).
    """
    free = inspect.getclosurevars(wrapper).nonlocals
    if isinstance(free.get(_BASE), dict):
        return free[_BASE]
    if callable(free.get(_RUNNER)):
        return base_environ(free[_RUNNER])
    raise LookupError("granian's WSGI wrapper keeps no base environ in its closure")


def is_granian_key(name: str) -> bool:
    """Return True for the base environ's keys that granian sets itself."""
    return name in GRANIAN_KEYS or name.startswith(WSGI_PREFIX)


def wrap_without_environment(
    callback: Callable[..., Any], scope_opts: dict[str, Any], access_log_fmt: str | None = None
) -> Callable[..., Any]:
    """Return granian's WSGI wrapper of ``callback``, its base environ without ``os.environ``."""
    wrapper = _granian_wrap(callback, scope_opts, access_log_fmt)
    base = base_environ(wrapper)
    for name in [name for name in base if not is_granian_key(name)]:
        del base[name]
    return wrapper


def check() -> None:
    """Raise ``LookupError`` if granian's wrappers (plain and access-logging) cannot be trimmed."""
    for log_format in (None, "%(status)d"):
        base_environ(_granian_wrap(lambda environ, start_response: [], {}, log_format))


def install() -> None:
    """Make granian's multi-process server wrap WSGI apps with ``wrap_without_environment``."""
    check()
    granian_mp._wsgi_call_wrap = wrap_without_environment
