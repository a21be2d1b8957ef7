"""Project-level views: health checks, Prometheus metrics and JSON error pages (compact JSON).

``/healthz`` and ``/readyz`` are DRF views (so the OpenAPI schema describes
them) with no authentication, permission or throttle: probes must always
get through. Anyone may ask ``/readyz``, so it names the dependency that
failed and a class of failure ("refused", "timeout", ...), never the
error's text (host names, socket paths, database and user names): that
goes to the server's log, once per outage (Redis's by the cache's breaker).
``/metrics`` is a plain Django view answering only the addresses and token
configured by ``METRICS_ALLOWED_IPS`` and ``METRICS_TOKEN``.
"""

from __future__ import annotations

import logging
import sys
import time

from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from compute import metrics as metrics_module
from compute.cache import FAILURE_REASONS, result_cache
from compute.database import log_step
from compute.http.responses import CompactJsonResponse

from .security import metrics_access_allowed

logger = logging.getLogger(__name__)

# Classes of database failure, by words of the drivers' messages (psycopg and
# sqlite3 raise one OperationalError for everything; libpq's own socket
# errors never reach Python as OSError). The first that matches wins.
DATABASE_REASONS = {
    "locked": ("database is locked", "database table is locked"),
    "timeout": ("timeout", "timed out"),
    "refused": ("connection refused",),
    "authentication": ("authentication failed", "password"),
    "unreachable": (
        "could not translate host name",
        "unable to open",
        "no route to host",
        "network is unreachable",
        "server closed the connection",
        "connection to server",
        "could not connect",
    ),
}

# --- probe bodies (for the OpenAPI schema) ------------------------------------------


class HealthSerializer(serializers.Serializer):
    """Liveness: the process answers."""

    status = serializers.ChoiceField(choices=["ok"])


class CheckSerializer(serializers.Serializer):
    """One dependency's state."""

    ok = serializers.BooleanField()
    detail = serializers.ChoiceField(
        choices=["ok", *dict.fromkeys([*DATABASE_REASONS, *FAILURE_REASONS, "error"])],
        help_text='"ok", or the class of failure met (the error itself is in the server\'s '
        'log); "backing off": Redis failed a moment ago and was not tried.',
    )
    latency_ms = serializers.FloatField(help_text="Time the check took, in milliseconds.")


class ReadinessSerializer(serializers.Serializer):
    """Readiness: the database is required, Redis is not (the service answers without it)."""

    status = serializers.ChoiceField(
        choices=["ok", "degraded", "unavailable"],
        help_text="ok: both reachable; degraded: Redis down (still serving); "
        "unavailable: database down (503).",
    )
    database = CheckSerializer()
    redis = CheckSerializer()


def _probe(view):  # noqa: ANN001 - decorator stack for DRF function views
    """Make ``view`` a DRF GET/HEAD view that needs no credentials and is never throttled."""
    view = throttle_classes([])(view)
    view = permission_classes([AllowAny])(view)
    view = authentication_classes([])(view)
    return api_view(["GET", "HEAD"])(view)


@extend_schema(
    operation_id="healthz",
    tags=["health"],
    summary="Liveness: the process is up",
    responses={200: HealthSerializer},
)
@_probe
def healthz(request: Request) -> Response:
    """Return 200 while the process is up (liveness)."""
    return Response({"status": "ok"})


def _timed_check(check) -> tuple[dict, str]:  # noqa: ANN001 - returns (ok, reason, detail)
    """Run ``check``; return its public state (ok, reason as "detail", latency) and its detail."""
    started = time.perf_counter()
    ok, reason, detail = check()
    state = {
        "ok": ok,
        "detail": reason,
        "latency_ms": round((time.perf_counter() - started) * 1e3, 3),
    }
    return state, detail


def database_reason(exc: BaseException) -> str:
    """Return the class of a database failure (a key of ``DATABASE_REASONS``, or "error")."""
    text = str(exc).lower()
    for reason, words in DATABASE_REASONS.items():
        if any(word in text for word in words):
            return reason
    return "error"


def _database_check() -> tuple[bool, str, str]:
    # Within the bounds of every step on the log (compute.database): probes come
    # every few seconds, and against a paused PostgreSQL unbounded ones would
    # pile up until they held every thread the hits need.
    try:
        with log_step(), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return False, database_reason(exc), f"{type(exc).__name__}: {exc}"
    return True, "ok", "ok"


class OutageLog:
    """Log a check's failure, with the error's full text, once per outage; and its recovery.

    Probes come every few seconds for as long as an outage lasts: one line
    when it starts (and when its class of failure changes), one when it
    ends, as the cache's breaker does for Redis.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing: str | None = None  # the class of the failure under way

    def record(self, ok: bool, reason: str, detail: str) -> None:
        """Note one check's outcome; log if the dependency went down, changed or came back."""
        if ok:
            if self.failing is not None:
                logger.warning("readyz: the %s is reachable again", self.name)
            self.failing = None
        elif reason != self.failing:
            logger.warning("readyz: the %s check failed (%s): %s", self.name, reason, detail)
            self.failing = reason


_database_outages = OutageLog("database")


@extend_schema(
    operation_id="readyz",
    tags=["health"],
    summary="Readiness: database and Redis reachable",
    description="503 only when the database is unreachable. Redis down is reported "
    '("degraded") but not fatal: the service answers without it.',
    responses={
        200: ReadinessSerializer,
        503: OpenApiResponse(ReadinessSerializer, description="The database is unreachable."),
    },
)
@_probe
def readyz(request: Request) -> Response:
    """Return database and Redis state; 503 only when the database is unreachable."""
    database, detail = _timed_check(_database_check)
    _database_outages.record(database["ok"], database["detail"], detail)
    # Redis's errors are logged by the cache's breaker (once per outage).
    redis, _ = _timed_check(result_cache.ping)
    if not database["ok"]:
        status = "unavailable"
    elif not redis["ok"]:
        status = "degraded"
    else:
        status = "ok"
    body = {"status": status, "database": database, "redis": redis}
    return Response(body, status=200 if database["ok"] else 503)


@csrf_exempt  # read-only; other methods get a JSON 405, never the CSRF page
def metrics(request: HttpRequest) -> HttpResponse:
    """Return every worker's metrics in Prometheus text format; 403 unless allowed."""
    if request.method not in ("GET", "HEAD"):
        response = CompactJsonResponse(
            {"detail": f'Method "{request.method}" not allowed.'}, status=405
        )
        response["Allow"] = "GET, HEAD"
        return response
    if not metrics_access_allowed(request):
        return CompactJsonResponse(
            {"detail": "Metrics are restricted (METRICS_ALLOWED_IPS, METRICS_TOKEN)."},
            status=403,
        )
    body, content_type = metrics_module.exposition()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> CompactJsonResponse:
    """Return a JSON 400 for requests Django itself rejects (e.g. a bad Host header)."""
    return CompactJsonResponse({"detail": "Bad request."}, status=400)


def permission_denied(
    request: HttpRequest, exception: Exception | None = None
) -> CompactJsonResponse:
    """Return a JSON 403."""
    return CompactJsonResponse(
        {"detail": "You do not have permission to perform this action."}, status=403
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> CompactJsonResponse:
    """Return a JSON 404 for unknown routes."""
    return CompactJsonResponse({"detail": "Not found."}, status=404)


# Retry-After of a request that failed because the database is down or locked.
DATABASE_RETRY_SECONDS = 5
DATABASE_DOWN = "The database is unavailable; cached results are still served. Retry shortly."


def server_error(request: HttpRequest) -> HttpResponse:
    """Return a JSON 500 (never Django's HTML page), or a 503 if the database is the cause.

    Django calls this while the exception is being handled, so it is at hand:
    a database that is down, paused or locked (an ``OperationalError`` or
    ``InterfaceError`` anywhere, the session and auth middleware of the admin
    included) is not a server error but an outage, answered 503 with
    ``Retry-After``; the admin gets a page that says so.
    """
    failure = sys.exc_info()[1]
    if isinstance(failure, OperationalError | InterfaceError):
        if request.path.startswith(f"/{settings.ADMIN_URL}"):
            response: HttpResponse = HttpResponse(
                f"<!doctype html><title>Database unavailable</title><h1>Database unavailable"
                f"</h1><p>{DATABASE_DOWN}</p>",
                status=503,
                content_type="text/html; charset=utf-8",
            )
        else:
            response = CompactJsonResponse(
                {"detail": DATABASE_DOWN, "retry_after": DATABASE_RETRY_SECONDS}, status=503
            )
        response["Retry-After"] = str(DATABASE_RETRY_SECONDS)
        return response
    return CompactJsonResponse({"detail": "Internal server error."}, status=500)
