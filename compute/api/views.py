"""DRF viewsets for pi and fib: validate, call one service, serialize.

``retrieve`` is reached only when the hot-path middleware could not answer
from the cache (a miss, or invalid input); it uses the same response
builder, so clients cannot tell the two paths apart.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from compute import selectors, services
from compute.api.exceptions import CacheUnavailable
from compute.api.serializers import ResultLogItemSerializer, ResultQuerySerializer
from compute.api.throttling import ComputeRateThrottle
from compute.domain.query import FIB, PI
from compute.http import hit as responses


class JsonOnly(BaseContentNegotiation):
    """Always answer JSON, whatever ``Accept`` says.

    The hot path serves cached hits as JSON without negotiating; a miss must
    not turn the same URL into a 406 for a client with a strict ``Accept``.
    """

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0]

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class NewestFirst(CursorPagination):
    """Stable cursor pages over the log, newest first."""

    ordering = ("-computed_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ResultViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Results of one kind: list the log, retrieve (computing if needed), delete."""

    kind: str = ""
    lookup_field = "n"
    lookup_value_regex = "[^/]+"
    serializer_class = ResultLogItemSerializer
    pagination_class = NewestFirst
    content_negotiation_class = JsonOnly

    def get_queryset(self):  # noqa: ANN201 - a QuerySet of ComputedResult
        return selectors.result_log(kind=self.kind)

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action == "destroy":
            return [permissions.IsAdminUser()]
        return [permissions.AllowAny()]

    def get_throttles(self) -> list[ComputeRateThrottle]:
        return [ComputeRateThrottle()] if self.action == "retrieve" else []

    def perform_authentication(self, request: Request) -> None:
        # Reads need no identity: authenticate lazily, when a permission
        # check asks for request.user (DELETE), so reads neither touch the
        # session nor vary on cookies.
        return None

    def _query(self, request: Request, n: str | None):
        data = {"n": n if n is not None else request.query_params.get("n", "100")}
        for name in ("digits", "format"):
            if name in request.query_params:
                data[name] = request.query_params[name]
        serializer = ResultQuerySerializer(data=data, context={"kind": self.kind})
        serializer.is_valid(raise_exception=True)
        return serializer.query

    def retrieve(self, request: Request, n: str | None = None) -> HttpResponse:
        query = self._query(request, n)
        if responses.etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), query.etag):
            return responses.not_modified(query)
        outcome = services.result_get(query=query)
        return responses.result_response(request, query, outcome.payload, cached=outcome.cached)

    def destroy(self, request: Request, n: str | None = None) -> Response:
        query = self._query(request, n)
        if not services.result_delete(query=query, require_cache=True):
            raise CacheUnavailable()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PiViewSet(ResultViewSet):
    """pi(n) by the Basel series; ``?digits=D`` for D significant digits."""

    kind = PI


class FibViewSet(ResultViewSet):
    """fib(n), exact; ``?format=string`` for the digits as a JSON string."""

    kind = FIB
