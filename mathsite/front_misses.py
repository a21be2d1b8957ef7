"""The WSGI front's misses: computed as the view computes them, logged as Django logs them.

A cold request that went through Django spent 0.6-0.9 ms in its request
cycle (the request object, a dozen middleware, URL resolution, DRF's
dispatch) around a computation of microseconds (pi) and a few Redis round
trips. The front (``compute.http.wsgi``) has already parsed the query and
found it in no cache tier, so for an anonymous GET it asks ``answer_miss``
here: the view's own call (``compute.api.misses.computed_reply``, the
client and its compute rate as the view builds them), inside the request
middleware (``mathsite.logging.RequestMiddleware``: the request id, the
metrics, the same access-log line; Django's request signals, so database
connections are recycled as after any request). A refusal is left in the environ
(``hit.REFUSAL_KEY``) and ``None`` returned: Django then answers, and the
view raises that very refusal, so refusals keep one wording and nothing is
charged or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signals
from django.core.handlers.wsgi import WSGIRequest

from compute.admission import Refused
from compute.api import misses
from compute.domain.query import ResultQuery
from compute.http import hit
from compute.http.wsgi import ResultFront
from compute.services import LogUnavailable
from mathsite.logging import RequestMiddleware


class _HandedOver(Exception):
    """The service refused: Django answers (the refusal is in the environ)."""


@dataclass(frozen=True, slots=True)
class _Route:
    view_name: str  # what the request middleware reads of a resolver match


@dataclass(frozen=True, slots=True)
class _Answered:
    reply: hit.Reply

    @property
    def status_code(self) -> int:
        return self.reply.status


def answer_miss(environ: dict, route: str, query: ResultQuery) -> hit.Reply | None:
    """Return the computed reply to the anonymous GET in ``environ``, or None (Django answers)."""
    request = WSGIRequest(environ)
    request.resolver_match = _Route(route)  # type: ignore[assignment]

    def respond(request: WSGIRequest) -> _Answered:
        caller = misses.client_caller(request, refuse=misses.refuse_rate)
        try:
            return _Answered(misses.computed_reply(request, query, caller=caller))
        except (Refused, LogUnavailable, misses.RateRefused) as refusal:
            environ[hit.REFUSAL_KEY] = refusal
            raise _HandedOver from refusal

    # As Django's handler does around a request: database connections too old
    # or broken are closed (and health-checked at their next use).
    signals.request_started.send(sender=ResultFront, environ=environ)
    try:
        answered = RequestMiddleware(respond)(request)
    except _HandedOver:
        return None
    finally:
        signals.request_finished.send(sender=ResultFront)
    return answered.reply
