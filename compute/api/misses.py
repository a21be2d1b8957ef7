"""A result that no cache tier holds, computed for the client that asks: one definition.

The view's ``retrieve`` and the WSGI front (which computes the anonymous
GETs it found in no tier itself, through ``mathsite.front_misses``) both
call ``computed_reply``: the same caller (``client_caller``: the client's
identity and its compute rate, ``RequestRate``), the same service call and
the same reply. What the service refuses is raised; the rate's refusal as
``RateRefused`` when the entrance has no DRF view to raise ``Throttled``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from django.http import HttpRequest
from rest_framework.request import Request

from compute import services
from compute.admission import Client
from compute.api.throttling import RequestRate
from compute.clients import client_id
from compute.domain.query import ResultQuery
from compute.http import hit


class RateRefused(Exception):
    """The client's compute rate is full: a 429 after ``wait`` seconds (the view words it)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"compute rate full; retry in {wait:.0f} s")
        self.wait = wait


def refuse_rate(wait: float) -> NoReturn:
    """Raise ``RateRefused`` (``RequestRate``'s refusal where no view raises ``Throttled``)."""
    raise RateRefused(wait)


def client_caller(request: HttpRequest | Request, refuse: Callable[[float], Any]) -> Client:
    """Return the caller of ``request``: its client, with the compute rate ``refuse`` enforces."""
    return Client(client_id(request), throttle=RequestRate(request, refuse=refuse))


def computed_reply(
    request: HttpRequest | Request, query: ResultQuery, *, caller: Client
) -> hit.Reply:
    """Return the reply to a GET of ``query`` for ``caller``, computing the result if needed.

    Raises what the service refuses with (``compute.admission.Refused``,
    ``services.LogUnavailable``, the rate's refusal).
    """
    meta = request.META
    missed = meta.get(hit.MISS_KEY) is query  # the front found it in no tier just now
    reply = hit.answer(
        query,
        if_none_match=meta.get("HTTP_IF_NONE_MATCH"),
        accept_encoding=meta.get("HTTP_ACCEPT_ENCODING", ""),
        lookup=lambda q: services.result_get(query=q, caller=caller, missed=missed),
    )
    assert reply is not None  # the service always has an outcome
    return reply
