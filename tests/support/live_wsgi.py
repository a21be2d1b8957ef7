"""WSGI entry point for live-server tests: mathsite's application, a computation probe
and an access log.

Live tests must count computations exactly and sometimes hold one open
(to kill the worker doing it, or to make concurrent requests overlap it).
Response bodies alone cannot prove either, so this module wraps the pure
maths functions that ``compute.services.result_text`` calls (looked up on
``compute.domain.maths`` at call time) before the application is built:

- ``MATHSITE_TEST_COMPUTE_LOG=path``: every computation appends
  ``start <pid> <kind> <n>`` before and ``end <pid> <kind> <n>`` after
  computing (one ``O_APPEND`` write per line: atomic across processes).
- ``MATHSITE_TEST_SLOW="lo-hi:seconds[:once],..."``: fib(n) with lo <= n <= hi
  sleeps that long before computing; with ``once`` only the first
  computation of each n does (decided from the log's ``start`` lines).

- ``MATHSITE_TEST_ACCESS_LOG=path``: every request appends one line
  ``<pid> <X-Test-Id or -> <status> <body bytes> <microseconds> <path>``
  when its response is done (the path URL-quoted, so a line always has six
  fields). Which worker process served which request is what live tests
  need and what no server's own access log gives under every server
  (granian's has no pid), so the application writes it, under gunicorn
  and granian alike.

- ``MATHSITE_TEST_KEPT_PROBE=path`` (one no route of mathsite's takes):
  that path is answered by this module, not by mathsite, with JSON about
  the answering worker's front memo (``compute.http.memo.front_memo``):
  its ``pid``, whether it holds a kept answer (``compute.http.kept``) for
  the GET of the probe's ``path`` with ``Host`` and ``Accept-Encoding`` as
  given, and the memo's bytes and entries. A kept answer and one built
  again are the same bytes on the wire, so only the worker can say which
  it has.

Everything else (services, cache, locks, breaker, views) is the real code.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mathsite.settings")

from compute.domain import maths as algorithms
from mathsite.wsgi import application as mathsite_application

LOG = os.environ.get("MATHSITE_TEST_COMPUTE_LOG", "")
ACCESS_LOG = os.environ.get("MATHSITE_TEST_ACCESS_LOG", "")
KEPT_PROBE = os.environ.get("MATHSITE_TEST_KEPT_PROBE", "")


def _slow_ranges(spec: str) -> list[tuple[int, int, float, bool]]:
    ranges = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        bounds, seconds, *flags = part.split(":")
        lo, hi = (int(x) for x in bounds.split("-"))
        ranges.append((lo, hi, float(seconds), "once" in flags))
    return ranges


SLOW = _slow_ranges(os.environ.get("MATHSITE_TEST_SLOW", ""))


def _append(path: str, line: str) -> None:
    """Append ``line`` to ``path`` in one ``O_APPEND`` write (atomic across processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _note(event: str, kind: str, n: int) -> int:
    """Append one event line to the compute log; return how many ``start``s n has."""
    if not LOG:
        return 0
    _append(LOG, f"{event} {os.getpid()} {kind} {n}\n")
    wanted = ["start", kind, str(n)]
    with open(LOG, encoding="ascii") as handle:
        return sum(1 for entry in handle if entry.split()[0:1] + entry.split()[2:4] == wanted)


def _probe(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def probed(n: int, *args: Any) -> Any:
        starts = _note("start", kind, n)
        if kind == "fib":
            for lo, hi, seconds, once in SLOW:
                if lo <= n <= hi and (not once or starts <= 1):
                    time.sleep(seconds)
                    break
        try:
            return function(n, *args)
        finally:
            _note("end", kind, n)

    return probed


algorithms.fib_decimal = _probe("fib", algorithms.fib_decimal)
algorithms.pi_double = _probe("pi", algorithms.pi_double)
algorithms.pi_digits = _probe("pi", algorithms.pi_digits)


class _Logged:
    """A response body that counts what is sent and logs the request when it is closed."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def _access_logged(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap WSGI ``app`` so that each request appends its line to ``ACCESS_LOG``."""

    def logged(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = [0]

        def recording_start_response(line: str, headers: list, *exc_info: Any) -> Any:
            status[0] = int(line.split(None, 1)[0])
            return start_response(line, headers, *exc_info)

        def done(sent: int) -> None:
            test_id = quote(environ.get("HTTP_X_TEST_ID", ""), safe="") or "-"
            path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
            micros = int((time.perf_counter() - started) * 1e6)
            _append(ACCESS_LOG, f"{os.getpid()} {test_id} {status[0]} {sent} {micros} {path}\n")

        body = app(environ, recording_start_response)
        if isinstance(body, list):  # complete already (the fast path's hits): as it is
            done(sum(len(chunk) for chunk in body))
            return body
        return _Logged(body, done)

    return logged


def _kept_probe(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap WSGI ``app`` so that ``KEPT_PROBE`` reports on this worker's front memo."""
    # Imported once Django is set up (mathsite.wsgi above): they import the models.
    from compute.conf import app_settings
    from compute.http import kept
    from compute.http.memo import front_memo

    def probed(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != KEPT_PROBE:
            return app(environ, start_response)
        asked = {name: values[-1] for name, values in parse_qs(environ["QUERY_STRING"]).items()}
        request = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": asked["path"],
            "QUERY_STRING": "",
            "HTTP_HOST": asked["host"],
            "HTTP_ACCEPT_ENCODING": asked["accept_encoding"],
        }
        key = kept.request_key(request, secure=False)
        found = front_memo.get(key, app_settings.generation) if key is not None else None
        body = json.dumps(
            {
                "pid": os.getpid(),
                "kept": isinstance(found, kept.Kept),
                "memo_bytes": front_memo.nbytes,
                "memo_entries": len(front_memo),
            }
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return probed


application = _access_logged(mathsite_application) if ACCESS_LOG else mathsite_application
if KEPT_PROBE:
    application = _kept_probe(application)

__all__ = ["application"]
