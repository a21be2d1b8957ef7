"""API errors: JSON bodies with a status, a detail and a code, never an HTML page."""

from __future__ import annotations

import math
from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from compute.admission import BudgetSpent, ClientBusy, Refused
from compute.conf import app_settings
from compute.services import LogUnavailable


class ResultNotFound(exceptions.NotFound):
    """No route matches the request."""

    default_detail = "Not found."
    default_code = "not_found"


class CacheUnavailable(exceptions.APIException):
    """Redis cannot be reached, so a deletion could not reach every tier."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The cache is unreachable; nothing was deleted. Retry in a few seconds."
    default_code = "cache_unavailable"


class BudgetExceeded(exceptions.Throttled):
    """The client's digits per hour (COMPUTE_DIGITS_PER_HOUR) are spent: 429 until the hour ends."""

    default_code = "budget_exceeded"


class TooManyComputations(exceptions.Throttled):
    """The client already runs its share of computations (COMPUTE_CONCURRENCY_PER_CLIENT): 429."""

    default_code = "too_many_computations"


class ComputeBusy(exceptions.APIException):
    """Every computation slot of the process is busy and its queue full: 503 with Retry-After."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Every computation slot is busy. Retry shortly."
    default_code = "compute_busy"

    def __init__(self, *, wait: float, detail: str | None = None) -> None:
        super().__init__(detail)
        self.wait = math.ceil(wait)


class DatabaseUnavailable(ComputeBusy):
    """The result log (database) is down or locked: 503 with Retry-After; hits still answer."""

    default_detail = (
        "The result log (database) is unavailable; cached results are still served. Retry shortly."
    )
    default_code = "database_unavailable"


def api_error_of(refused: Refused | LogUnavailable) -> exceptions.APIException:
    """Return the API error that answers an admission refusal (429 or 503, with its wait)
    or an unavailable result log (503)."""
    if isinstance(refused, LogUnavailable):
        return DatabaseUnavailable(wait=refused.retry_after)
    if isinstance(refused, BudgetSpent):
        return BudgetExceeded(wait=refused.retry_after, detail=refused.message)
    if isinstance(refused, ClientBusy):
        return TooManyComputations(wait=refused.retry_after, detail=refused.message)
    return ComputeBusy(wait=refused.retry_after, detail=refused.message)


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Return DRF's JSON error response, including for errors DRF leaves to Django."""
    if isinstance(exc, Http404):
        exc = ResultNotFound()
    elif isinstance(exc, Refused | LogUnavailable):
        exc = api_error_of(exc)
    response = exception_handler(exc, context)
    if response is None:
        # Anything unexpected: a JSON 500 instead of Django's HTML page; the
        # exception is still logged by the caller's error handling.
        return None
    if isinstance(exc, CacheUnavailable):
        response["Retry-After"] = str(math.ceil(app_settings.REDIS_BACKOFF_SECONDS))
    if isinstance(exc, exceptions.Throttled | ComputeBusy) and exc.wait is not None:
        # DRF has set Retry-After from ``wait``; the body says it too.
        response.data = {"detail": response.data.get("detail"), "retry_after": exc.wait}
    return response
