"""DRF views for pi and fib: validate, call one service, serialize.

``retrieve`` answers through the hit protocol (``compute.http.hit``), the
same function the WSGI front answers cached hits with, so clients cannot
tell which layer answered. It is reached by every result request the
front did not answer (a miss, an invalid input, the front switched off or
still learning), and leaves each reply it gave without computing in the
environ for the front to learn from (``hit.REPLY_KEY``).

``ConvergenceView`` answers the picture of pi's convergence (SVG), with n
validated exactly as for pi(n), the same 304 before any lookup and the
hit protocol's ``Cache-Status`` (``hit.cache_status``).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.dateparse import parse_datetime
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compute import selectors, services
from compute.admission import Client
from compute.api import misses
from compute.api.exceptions import CacheUnavailable
from compute.api.permissions import CanDeleteResults
from compute.api.serializers import ResultQuerySerializer, log_item_serializer
from compute.api.throttling import ComputeRateThrottle
from compute.clients import client_id
from compute.domain.convergence import convergence_etag
from compute.domain.kinds.base import Kind
from compute.domain.kinds.pi import KIND as PI_KIND
from compute.domain.query import ResultQuery
from compute.http import hit
from compute.http.routes import API_PREFIX, N_SEGMENT


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

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Return DRF's page schema with links of this API (DRF's show api.example.org)."""
        page = super().get_paginated_response_schema(schema)
        base = f"http://127.0.0.1:8000/{API_PREFIX}fib/"
        position = "2026-11-21 06:10:35.396379+00:00"  # a log row's computed_at
        page["properties"]["next"]["example"] = base + self.example_cursor({"p": position})
        page["properties"]["previous"]["example"] = base + self.example_cursor(
            {"r": "1", "p": position}
        )
        return page

    @staticmethod
    def example_cursor(tokens: dict[str, str]) -> str:
        """Return ``?cursor=`` as DRF encodes it (base64 of the urlencoded tokens)."""
        encoded = base64.b64encode(urlencode(tokens).encode("ascii")).decode("ascii")
        return "?" + urlencode({"cursor": encoded})


class ResultViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Results of one kind: list the log, retrieve (computing if needed), delete."""

    kind: str = ""
    lookup_field = "n"
    lookup_value_regex = N_SEGMENT
    # n of a route whose path has none (the old service's /pi?n=N); set by
    # the route table through as_view(default_n=...).
    default_n: str | None = None
    pagination_class = NewestFirst
    content_negotiation_class = JsonOnly

    def get_queryset(self):  # noqa: ANN201 - a QuerySet of ComputedResult
        return selectors.result_log(kind=self.kind)

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action == "destroy":
            return [CanDeleteResults()]
        return [permissions.AllowAny()]

    def get_throttles(self) -> list[ComputeRateThrottle]:
        # Nothing is throttled on the way in: retrieve admits the computing
        # requests itself (``admit``), once it knows that no tier has the value.
        return []

    def caller(self, request: Request) -> Client:
        """Return who asks: the client, with this view's rate throttle for computing
        (counted by the service where it counts the budget: ``RequestRate``)."""
        return misses.client_caller(request, refuse=lambda wait: self.throttled(request, wait))

    def perform_authentication(self, request: Request) -> None:
        # Reads need no identity: authenticate lazily, when a permission
        # check asks for request.user (DELETE), so reads neither touch the
        # session nor vary on cookies.
        return None

    def _query(self, request: Request, n: str | None):
        missed = request.META.get(hit.MISS_KEY)
        if isinstance(missed, ResultQuery) and missed.kind == self.kind:
            # The WSGI front parsed this very request with the serializer's parser
            # (parse_query, the same route table and limits) and found it in no
            # cache tier: validating it again is pure overhead on a cold request.
            return missed
        data = {"n": n if n is not None else request.query_params.get("n", self.default_n)}
        for name in ("digits", "format", "mod"):
            if name in request.query_params:
                data[name] = request.query_params[name]
        serializer = ResultQuerySerializer(data=data, context={"kind": self.kind})
        serializer.is_valid(raise_exception=True)
        return serializer.query

    def retrieve(self, request: Request, n: str | None = None) -> HttpResponse:
        query = self._query(request, n)
        refusal = request.META.get(hit.REFUSAL_KEY)
        if refusal is not None and request.META.get(hit.MISS_KEY) is query:
            # The WSGI front asked the service for this very query and was refused:
            # answer with that refusal, nothing is tried twice (hit.REFUSAL_KEY).
            if isinstance(refusal, misses.RateRefused):
                self.throttled(request, refusal.wait)
            raise refusal
        reply = misses.computed_reply(request, query, caller=self.caller(request))
        if reply.cached:
            request.META[hit.REPLY_KEY] = reply
        return reply.to_django()

    def destroy(self, request: Request, n: str | None = None) -> Response:
        query = self._query(request, n)
        if not services.result_delete(query=query):
            raise CacheUnavailable()
        return Response(status=status.HTTP_204_NO_CONTENT)


def viewset_for(kind: Kind) -> type[ResultViewSet]:
    """Return the viewset of ``kind``'s results (``PiViewSet``, ``FibViewSet``, ...).

    Built from the kind's declaration: its name routes it, its options shape
    its list items (``log_item_serializer``), its summary documents it.
    """
    name = f"{kind.name.capitalize()}ViewSet"
    attributes = {
        "kind": kind.name,
        "serializer_class": log_item_serializer(kind),
        "__doc__": kind.summary,
        "__module__": __name__,
    }
    return type(name, (ResultViewSet,), attributes)


# Who may frame or run anything in a picture: nobody. It is a document of
# its own when opened directly, and needs nothing but its inline styles.
PICTURE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


class ConvergenceView(APIView):
    """The picture of pi - pi(k) for k = 1..n as SVG; n is validated as for pi(n)."""

    content_negotiation_class = JsonOnly  # errors are JSON; the picture is SVG by itself
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]

    def get_throttles(self) -> list[ComputeRateThrottle]:
        return []  # drawing is admitted by ``admit`` only on a miss, as results are

    def get(self, request: Request, n: str) -> HttpResponse:
        serializer = ResultQuerySerializer(data={"n": n}, context={"kind": PI_KIND.name})
        serializer.is_valid(raise_exception=True)
        query = serializer.query
        etag = convergence_etag(query.n)
        if hit.etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
            response: HttpResponse = HttpResponseNotModified()
        else:
            caller = Client(client_id(request), throttle=self.admit)
            svg, source = services.convergence_picture(n=query.n, caller=caller)
            response = HttpResponse(svg, content_type="image/svg+xml")
            response["Content-Security-Policy"] = PICTURE_CSP
            name, value = hit.cache_status(source)
            response[name] = value
        response["ETag"] = etag
        response["Cache-Control"] = hit.CACHE_CONTROL
        return response

    def admit(self) -> None:
        """Count a drawing against the client's compute rate; raise Throttled if over."""
        throttle = ComputeRateThrottle()
        if not throttle.allow_request(self.request, self):
            self.throttled(self.request, throttle.wait())
