"""Logging: JSON or plain lines, a request id on every record, one access line per request.

``RequestMiddleware`` is the outermost middleware. For each request it
takes the proxy's ``X-Request-ID`` (when it looks like one) or makes an id,
times the request, records it in the Prometheus metrics and writes one
access-log line on the ``mathsite.request`` logger::

    {"time": "...", "level": "INFO", "logger": "mathsite.request",
     "message": "GET /api/fib/10/ 200 0.41ms cache=hit", "request_id": "3f2a9c1e07b4-2a",
     "method": "GET", "path": "/api/fib/10/", "route": "fib-detail",
     "status": 200, "duration_ms": 0.41, "cache": "hit", "client": "127.0.0.1"}

``RequestContextFilter`` stamps the current request id on every other
record logged while the request runs (an error's trace, a Redis outage),
so one id finds everything a request caused. ``ClientFaultFilter`` keeps
what a client's bad request makes Django's security loggers write to one
short line (no traceback, no copy of the whole request). ``LOG_FORMAT`` picks
``JsonFormatter`` (production default) or ``PlainFormatter``
(development). gunicorn.conf.py uses the same formatters for gunicorn's
own log, which is why this module imports no Django code at import time.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

_request_id: ContextVar[str | None] = ContextVar("mathsite_request_id", default=None)

# Attributes every LogRecord has; anything else on a record was passed as
# ``extra=`` and belongs in the JSON object.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _RequestIds:
    """Request ids unique across processes without a syscall per request."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_ids = _RequestIds()


def current_request_id() -> str | None:
    """Return the id of the request being handled, or None outside a request."""
    return _request_id.get()


class RequestContextFilter(logging.Filter):
    """Add ``request_id`` (the current request's, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


# The most of a client's text (a path and query string, a Host) one log line carries.
CLIENT_FAULT_CHARS = 512


class ClientFaultFilter(logging.Filter):
    """Keep Django's records of a client's bad request to one short WARNING line.

    ``django.security.*`` records (a ``Host`` outside ``ALLOWED_HOSTS``,
    too many query parameters, a body too large: Django answers each with
    a 400) come at ERROR with the exception's traceback and the request
    object, whose text holds the whole query string; the message holds
    the client's ``Host`` as sent. A client repeating such a request would
    write kilobytes of log per request, as much as its headers and query
    string allow (hundreds of KiB), and page whoever watches ERROR lines.
    The request's access line already says it (status 400); this keeps
    the record as a WARNING with the message and the request's method and
    path cut to ``CLIENT_FAULT_CHARS``, and no traceback. On the handler,
    so it sees the records of every logger below ``django.security``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security."):
            record.msg = record.getMessage()[:CLIENT_FAULT_CHARS]
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            full_path = getattr(getattr(record, "request", None), "get_full_path", None)
            if full_path is not None:  # Django's request: shown as the access line shows it
                record.request = f"{record.request.method} {full_path()}"[:CLIENT_FAULT_CHARS]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None:
                body[key] = value
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack_info"] = self.formatStack(record.stack_info)
        # default=str: Django attaches the request object to error records.
        return orjson.dumps(body, default=str).decode()


class PlainFormatter(logging.Formatter):
    """Readable lines for development: time, level, logger, message [request id]."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


class RequestMiddleware:
    """Time every request, count it in the metrics and write its access-log line."""

    logger = logging.getLogger("mathsite.request")
    timer: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        # Imported here, not at module level: gunicorn's master imports this
        # module for its formatters before Django is configured.
        from django.conf import settings

        from compute import metrics
        from compute.clients import client_address

        self.get_response = get_response
        self.metrics = metrics
        self.client_ip = client_address
        self.log_requests = settings.REQUEST_LOG
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request: Any) -> Any:
        started = self.timer()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _INCOMING_ID.fullmatch(incoming) else _ids.next()
        id_token = _request_id.set(request_id)
        outcome_token = self.metrics.begin_request()
        try:
            response = self.get_response(request)
            seconds = self.timer() - started
            outcome = self.metrics.current_outcome()
            route = self.route(request, outcome)
            self.metrics.observe_request(route, request.method, response.status_code, seconds)
            if self.log_requests:
                self.log(request, response, route, outcome, seconds, request_id)
            return response
        finally:
            self.metrics.end_request(outcome_token)
            _request_id.reset(id_token)

    def route(self, request: Any, outcome: tuple[str, str] | None) -> str:
        """Return the request's route name: bounded, never the raw path."""
        match = request.resolver_match
        if match is not None:
            return match.view_name or "unnamed"
        if request.path_info.startswith(self.static_prefix):
            return "static"
        return "unresolved"

    def log(
        self,
        request: Any,
        response: Any,
        route: str,
        outcome: tuple[str, str] | None,
        seconds: float,
        request_id: str,
    ) -> None:
        """Write the access-log line of a finished request."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        path = request.get_full_path()[:CLIENT_FAULT_CHARS]
        cache = outcome[1] if outcome else None
        # Built by hand rather than with logger.info(): that would walk the
        # stack for the caller's file and line, a cost on every request for
        # fields this line does not show.
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %.2fms%s",
            (
                request.method,
                path,
                response.status_code,
                seconds * 1000,
                f" cache={cache}" if cache else "",
            ),
            None,
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
                "cache": cache,
                "client": self.client_ip(request),
            },
        )
        logger.handle(record)
