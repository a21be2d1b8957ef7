"""Kept answers sent by the server's request wrapper, before any WSGI environ is built.

granian's WSGI wrapper (``granian.wsgi._callback_wrapper``) does, for every
request and with the GIL held, what WSGI asks of a server: it merges its
base environ into the request's keys (a new dict of about twenty
entries), makes a ``start_response`` object, calls the application, parses
the status line it is given back into a number and joins the body's list.
For a cached hit that mathsite answers from a kept answer
(``compute.http.kept``: status, headers and body built once), that is
more work than the answer itself, and all of it is paid again in the
hand-offs of the GIL between a worker's threads.

``install`` makes granian's multi-process server ask the application
first, when it offers a ``kept_reply(request)`` (``ResultFront`` does:
``compute.http.wsgi``), with the request's own keys (granian's ``scope``:
method, path, query, headers, ``wsgi.url_scheme``). What it returns is
sent as it is (``status``, ``headers``, ``content``), with granian's own
call for a reply in one piece; None, and the request goes through
granian's wrapper and the application as always. The application decides
and counts exactly as its ``__call__`` would, so what a client gets is
the same either way; under another server (gunicorn, granian started
without the project's command) ``__call__`` sends the kept answers.

Not used when granian writes an access log (the wrapper that logs would
be bypassed) or serves under a URL prefix (the path would not be the
application's): the application then answers every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from granian.server import mp as granian_mp

# The application's method that a server may ask before calling it.
HOOK = "kept_reply"


def with_kept_hits(
    wrapper: Callable[[Any, dict], Any],
    callback: Any,
    scope_opts: dict[str, Any],
    access_log_fmt: str | None = None,
) -> Callable[[Any, dict], Any]:
    """Return a runner that sends ``callback``'s kept answers itself, else calls ``wrapper``."""
    kept_reply = getattr(callback, HOOK, None)
    if not callable(kept_reply) or access_log_fmt or scope_opts.get("url_path_prefix"):
        return wrapper

    def runner(proto: Any, scope: dict) -> int:
        kept = kept_reply(scope)
        if kept is None:
            return wrapper(proto, scope)
        proto.response_bytes(kept.status, kept.headers, kept.content)
        return kept.status

    return runner


def install() -> None:
    """Make granian's multi-process server wrap WSGI apps with ``with_kept_hits`` too."""
    inner = granian_mp._wsgi_call_wrap

    def wrap(
        callback: Any, scope_opts: dict[str, Any], access_log_fmt: str | None = None
    ) -> Callable[[Any, dict], Any]:
        wrapper = inner(callback, scope_opts, access_log_fmt)
        return with_kept_hits(wrapper, callback, scope_opts, access_log_fmt)

    granian_mp._wsgi_call_wrap = wrap
