"""The front page's form, answered like the API: same validation, same service, same throttle.

``ask`` takes the form's query parameters (``kind``, ``n``, ``digits``,
``mod``; empty fields count as not given), validates them with the API's
``ResultQuerySerializer`` and asks ``services.result_get``, so the page
shows exactly the result, the ``cached`` flag and the 400 message a client
of ``/api/`` would get. A result too long for a page (fib(1,000,000) has
208,988 digits) is shown as a preview with a link to the full API result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from compute import services
from compute.api.serializers import ResultQuerySerializer
from compute.api.throttling import ComputeRateThrottle
from compute.domain.query import FIB, KINDS, PI, ResultQuery
from compute.http.routes import result_path

# Results longer than this are previewed on the page (first and last digits).
PAGE_MAX_CHARS = 2000
PREVIEW_EDGE = 60
FIELDS = ("kind", "n", "digits", "mod")


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


def supports_mod() -> bool:
    """Return True when the API accepts ``?mod=M`` (fib(n) mod M)."""
    return "mod" in ResultQuerySerializer().fields


def _validate(params: Mapping[str, str]) -> tuple[ResultQuery | None, tuple[str, ...]]:
    kind = params.get("kind") or PI
    if kind not in KINDS:
        return None, (f"kind must be one of {', '.join(KINDS)}.",)
    data = {"n": params.get("n", "")}
    for name in ("digits", "mod"):
        if params.get(name):
            data[name] = params[name]
    if "mod" in data and not supports_mod():
        return None, ("mod: this version of the API does not compute fib(n) mod M yet.",)
    serializer = ResultQuerySerializer(data=data, context={"kind": kind})
    if not serializer.is_valid():
        errors = tuple(
            str(message) for messages in serializer.errors.values() for message in messages
        )
        return None, errors
    return serializer.query, ()


def _admit(request: HttpRequest) -> None:
    throttle = ComputeRateThrottle()
    if not throttle.allow_request(request, None):
        raise Throttled(wait=throttle.wait())


def ask(params: Mapping[str, str], request: HttpRequest) -> Answer:
    """Return the answer to the form ``params``: the result, or the API's message and status."""
    query, errors = _validate(params)
    if query is None:
        return Answer(status=400, errors=errors)
    try:
        outcome = services.result_get(query=query, admit=lambda: _admit(request))
    except Throttled as exc:
        wait = max(1, round(exc.wait or 1))
        return Answer(status=429, errors=(str(exc.detail),), retry_after=wait)
    text = outcome.payload.text
    # fib's full value is linked as a string: a browser's JSON viewer (JavaScript)
    # would round a number of more than 15 digits.
    linked = dataclasses.replace(query, as_string=True) if query.kind == FIB else query
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
