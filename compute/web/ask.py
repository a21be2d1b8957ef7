"""The front page's form, answered like the API: same validation, same service, same throttle.

``ask`` takes the form's query parameters (``kind``, ``n`` and the kinds'
options, ``digits`` and ``mod``; empty fields count as not given),
validates them with the API's ``ResultQuerySerializer`` and asks
``services.result_get`` as the same ``Client`` the API would name (its
identity and the API's compute-rate throttle), so the page shows exactly
the result, the ``cached`` flag and the 400, 429 or 503 message a client of
``/api/`` would get: the form is admitted like the API (rate, digit
budget, computation slots), never around it. A result too long for a page (fib(1,000,000) has
208,988 digits) is shown as a preview with a link to the full API result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from compute import services
from compute.admission import Client, Refused
from compute.api.exceptions import api_error_of
from compute.api.serializers import ResultQuerySerializer
from compute.api.throttling import RequestRate
from compute.clients import client_id
from compute.domain.kinds import registry
from compute.domain.kinds.base import SLOTS
from compute.domain.query import ResultQuery
from compute.http.routes import result_path

# Results longer than this are previewed on the page (first and last digits).
PAGE_MAX_CHARS = 2000
# Digits shown at each end of a preview on the page (the log keeps 20, the admin's list 10).
PREVIEW_EDGE = 60
FIELDS = ("kind", "n", *SLOTS)


@dataclass(frozen=True)
class Answer:
    """What the page shows for one submission: a result, or why there is none (and the status)."""

    status: int = 200
    query: ResultQuery | None = None
    text: str = ""  # the result, whole or previewed
    previewed: bool = False
    edge: int = PREVIEW_EDGE  # digits shown at each end of a preview
    length: int = 0  # characters of the whole result
    cached: bool = False
    api_url: str = ""  # the API result this page shows (the full value)
    errors: tuple[str, ...] = ()
    retry_after: int | None = None


def submitted(params: Mapping[str, str]) -> bool:
    """Return True when the page was asked for a result (the form was sent)."""
    return any(params.get(name) for name in ("kind", "n"))


def default_kind() -> str:
    """Return the kind the form asks for when none is named: the first registered."""
    return registry.names()[0]


def _validate(params: Mapping[str, str]) -> tuple[ResultQuery | None, tuple[str, ...]]:
    kind = params.get("kind") or default_kind()
    if kind not in registry.names():
        return None, (f"kind must be one of {', '.join(registry.names())}.",)
    data = {"n": params.get("n", "")}
    for name in SLOTS:
        if params.get(name):
            data[name] = params[name]
    serializer = ResultQuerySerializer(data=data, context={"kind": kind})
    if not serializer.is_valid():
        errors = tuple(
            str(message) for messages in serializer.errors.values() for message in messages
        )
        return None, errors
    return serializer.query, ()


def _throttled(wait: float) -> NoReturn:
    raise Throttled(wait=wait)


def ask(params: Mapping[str, str], request: HttpRequest) -> Answer:
    """Return the answer to the form ``params``: the result, or the API's message and status."""
    query, errors = _validate(params)
    if query is None:
        return Answer(status=400, errors=errors)
    caller = Client(client_id(request), throttle=RequestRate(request, refuse=_throttled))
    try:
        outcome = services.result_get(query=query, caller=caller)
    except Throttled as exc:
        wait = max(1, round(exc.wait or 1))
        return Answer(status=429, errors=(str(exc.detail),), retry_after=wait)
    except (Refused, services.LogUnavailable) as refused:
        error = api_error_of(refused)
        wait = max(1, round(refused.retry_after))
        return Answer(status=error.status_code, errors=(str(error.detail),), retry_after=wait)
    text = outcome.payload.text
    # An integer's full value is linked as a string: a browser's JSON viewer
    # (JavaScript) would round a number of more than 15 digits.
    integer = registry.get(query.kind).integer
    linked = dataclasses.replace(query, as_string=True) if integer else query
    previewed = len(text) > PAGE_MAX_CHARS
    shown = f"{text[:PREVIEW_EDGE]}…{text[-PREVIEW_EDGE:]}" if previewed else text
    return Answer(
        query=query,
        text=shown,
        previewed=previewed,
        length=len(text),
        cached=outcome.cached,
        api_url=result_path(linked),
    )
