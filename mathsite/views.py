"""Project-level views: health checks and JSON error pages for non-API routes."""

from __future__ import annotations

from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse

from compute.cache import result_cache


def healthz(request: HttpRequest) -> JsonResponse:
    """Return 200 while the process is up (liveness)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Return database and Redis state; 503 only when the database is unreachable.

    Redis down is reported but not fatal: the service answers without it.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = {"ok": True, "detail": "ok"}
    except DatabaseError as exc:
        database = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    redis_ok, redis_detail = result_cache.ping()
    body = {
        "status": "ok" if database["ok"] else "unavailable",
        "database": database,
        "redis": {"ok": redis_ok, "detail": redis_detail},
    }
    return JsonResponse(body, status=200 if database["ok"] else 503)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Return a JSON 400 for requests Django itself rejects (e.g. a bad Host header)."""
    return JsonResponse({"detail": "Bad request."}, status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Return a JSON 403."""
    return JsonResponse(
        {"detail": "You do not have permission to perform this action."}, status=403
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Return a JSON 404 for unknown routes."""
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """Return a JSON 500 (never Django's HTML page)."""
    return JsonResponse({"detail": "Internal server error."}, status=500)
