"""The hot path: answer cached hits before Django's session, auth and DRF machinery.

A cached result is immutable, so a hit needs no authentication, CSRF,
throttling or content negotiation. This middleware recognises the result
URLs (canonical and seed-compatible), validates them with the same parser
as the DRF serializer, answers ``If-None-Match`` with 304 before any
lookup, and serves hits from the cache through the same response builder
as the view. Anything else (a miss, a bad input, another method) goes on
to the full stack unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from compute import metrics
from compute.api.serializers import configured_limits
from compute.cache import MISSING, ResultCache, result_cache
from compute.http import hit as responses
from compute.http.routes import HIT_MARK, result_query


class HotResultMiddleware:
    """Serve cached result hits (GET/HEAD) without the rest of the stack."""

    cache: ResultCache = result_cache

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.limits = configured_limits()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            response = self.answer(request)
            if response is not None:
                return response
        return self.get_response(request)

    def answer(self, request: HttpRequest) -> HttpResponse | None:
        """Return the response for a cached hit or 304, or None to fall through."""
        query = result_query(request.path_info, request.GET, self.limits)
        if query is None:
            return None
        if responses.etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), query.etag):
            metrics.not_modified(query.kind)
            request.META[HIT_MARK] = (query.etag, False, 304)
            return responses.not_modified(query)
        payload = self.cache.get(query)
        if payload is MISSING:
            return None  # counted as a miss by the service, which looks again
        metrics.cache_lookup(query.kind, hit=True)
        response = responses.result_response(request, query, payload, cached=True)
        request.META[HIT_MARK] = (query.etag, response.has_header("Content-Encoding"), 200)
        return response
