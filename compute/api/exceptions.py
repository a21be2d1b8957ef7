"""API errors: JSON bodies with a status, a detail and a code, never an HTML page."""

from __future__ import annotations

import math
from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from compute.conf import app_settings


class ResultNotFound(exceptions.NotFound):
    """No route matches the request."""

    default_detail = "Not found."
    default_code = "not_found"


class CacheUnavailable(exceptions.APIException):
    """Redis cannot be reached, so a deletion could not reach every tier."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The cache is unreachable; nothing was deleted. Retry in a few seconds."
    default_code = "cache_unavailable"


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Return DRF's JSON error response, including for errors DRF leaves to Django."""
    if isinstance(exc, Http404):
        exc = ResultNotFound()
    response = exception_handler(exc, context)
    if response is None:
        # Anything unexpected: a JSON 500 instead of Django's HTML page; the
        # exception is still logged by the caller's error handling.
        return None
    if isinstance(exc, CacheUnavailable):
        response["Retry-After"] = str(math.ceil(app_settings.REDIS_BACKOFF_SECONDS))
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and isinstance(
        exc, exceptions.Throttled
    ):
        response.data = {"detail": response.data.get("detail"), "retry_after": exc.wait}
    return response
