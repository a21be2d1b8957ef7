"""DRF viewsets for pi and fib: validate, call one service, serialize.

``retrieve`` answers through the hit protocol (``compute.http.hit``), the
same function the WSGI front answers cached hits with, so clients cannot
tell which layer answered. It is reached by every result request the
front did not answer (a miss, an invalid input, the front switched off or
still learning), and leaves each reply it gave without computing in the
environ for the front to learn from (``hit.REPLY_KEY``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils.dateparse import parse_datetime
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from compute import selectors, services
from compute.admission import ComputeGate
from compute.api.exceptions import CacheUnavailable
from compute.api.serializers import ResultLogItemSerializer, ResultQuerySerializer
from compute.api.throttling import ComputeRateThrottle, client_id
from compute.domain.query import FIB, PI
from compute.http import hit
from compute.http.routes import N_SEGMENT


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

    def decode_cursor(self, request: Request) -> Any:
        """Return DRF's cursor, refusing (404) one whose position is not a timestamp.

        DRF checks only the cursor's encoding; a crafted position (``p=x``, or a
        real one whose ``+`` became a space in transit) would reach the database
        as a date and fail there, a 500.
        """
        cursor = super().decode_cursor(request)
        position = None if cursor is None else cursor.position
        if position is not None and parse_datetime(position) is None:
            raise NotFound(self.invalid_cursor_message)
        return cursor


class ResultViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Results of one kind: list the log, retrieve (computing if needed), delete."""

    kind: str = ""
    lookup_field = "n"
    lookup_value_regex = N_SEGMENT
    # n of a route whose path has none (the old service's /pi?n=N); set by
    # the route table through as_view(default_n=...).
    default_n: str | None = None
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
        # Nothing is throttled on the way in: retrieve admits the computing
        # requests itself (``admit``), once it knows that no tier has the value.
        return []

    def admit(self, request: Request) -> None:
        """Count a request that must compute against the client's rate; raise Throttled if over."""
        throttle = ComputeRateThrottle()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())

    def perform_authentication(self, request: Request) -> None:
        # Reads need no identity: authenticate lazily, when a permission
        # check asks for request.user (DELETE), so reads neither touch the
        # session nor vary on cookies.
        return None

    def _query(self, request: Request, n: str | None):
        data = {"n": n if n is not None else request.query_params.get("n", self.default_n)}
        for name in ("digits", "format"):
            if name in request.query_params:
                data[name] = request.query_params[name]
        serializer = ResultQuerySerializer(data=data, context={"kind": self.kind})
        serializer.is_valid(raise_exception=True)
        return serializer.query

    def retrieve(self, request: Request, n: str | None = None) -> HttpResponse:
        query = self._query(request, n)
        reply = hit.answer(
            query,
            if_none_match=request.META.get("HTTP_IF_NONE_MATCH"),
            accept_encoding=request.META.get("HTTP_ACCEPT_ENCODING", ""),
            lookup=lambda q: services.result_get(
                query=q,
                admit=lambda: self.admit(request),
                gate=ComputeGate(client_id(request)),
            ),
        )
        assert reply is not None  # the service always has an outcome
        if reply.cached:
            request.META[hit.REPLY_KEY] = reply
        return reply.to_django()

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
