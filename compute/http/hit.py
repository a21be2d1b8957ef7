"""The hit protocol: how a request for one result is answered, written once.

Two layers answer result requests, and both call ``answer``: the WSGI
front (``compute.http.wsgi``, cached hits before Django, for speed) and the
DRF view (everything else). The protocol, in order:

1. the query has been parsed and validated by the caller (the front with
   ``parse_query``, the view with its serializer, which calls the same);
2. ``If-None-Match`` naming the result's ETag is a 304, before any lookup;
3. the caller's ``lookup`` gives the payload and where it came from
   (``services.Source``; the front: cache tiers only; the view: the
   service, which may compute);
4. the body is the payload's, gzip-compressed when the client accepts gzip
   and the body is at least ``GZIP_MIN_BYTES``;
5. the headers are the result's own: type, encoding, ``Content-Length``
   (always the length of this body), ETag, caching, ``Vary``, ``Allow``,
   and ``Cache-Status`` (RFC 9211: ``cache_status``) saying where the
   value came from; a 304 has none (nothing was looked up).

``Cache-Status`` names one cache, ``mathsite`` (every tier of the service
together), with one of: ``hit; detail=in-process`` (this process's tier),
``hit; detail=redis``, ``hit; detail=log`` (the result log, refilling
Redis), ``fwd=miss; stored`` (computed, then stored in Redis),
``fwd=miss`` (computed, Redis could not store it) and ``fwd=miss;
collapsed`` (another request's computation, waited for). Each value is a
prebuilt header tuple, and a reply is built once per payload, coding and
source, so a hit pays nothing for it.

The headers every response of the site gets on top (security headers added
by Django's middleware, the CORS headers of ``compute.http.cors``) are not
the protocol's business: the front learns
them from the view's replies by the contract of ``REPLY_KEY``.

    >>> from compute.domain.query import ResultQuery
    >>> answer(ResultQuery("fib", 7), if_none_match='W/"fib-7-v1"', accept_encoding="",
    ...        lookup=None).status
    304
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from django.http import HttpResponse, HttpResponseNotModified

from compute import metrics
from compute.conf import app_settings
from compute.domain.payload import GZIP_MIN_BYTES, Payload
from compute.domain.query import ResultQuery
from compute.http.memo import MAX_BODY, FrontMemo, front_memo
from compute.http.quality import quality
from compute.services import Outcome, Source

# The contract between the DRF view and the WSGI front: the view stores the
# ``Reply`` it answered without computing (a hit or a 304) in the request's
# WSGI environ under this key. The front then compares the headers Django
# finally sent with the reply's own and learns the rest (the site's
# headers) from them; see ``compute.http.wsgi.SiteHeaders``.
REPLY_KEY = "mathsite.reply"
# The other direction: the front leaves the query it looked up and found in no
# cache tier it asked (the in-process one at least) under this key, so the view
# does not ask again microseconds later; it goes on to the lock, whose attempt
# reads the Redis entry anyway, then the log.
MISS_KEY = "mathsite.missed"
# And when the front computed that miss itself and the service refused
# (a spent budget, a full rate, busy slots, the log away), the refusal, for
# the view to answer with: one place words every refusal, nothing is tried twice.
REFUSAL_KEY = "mathsite.refused"

# What DRF's viewset reports in ``Allow`` for a result URL.
ALLOW = "GET, DELETE, HEAD, OPTIONS"
# Results never change: shared caches may keep them for a year.
CACHE_CONTROL = "public, max-age=31536000, immutable"

Headers = tuple[tuple[str, str], ...]

# RFC 9211: the cache's name, then what it did; one prebuilt header per source.
CACHE_NAME = "mathsite"
CACHE_STATUS = "Cache-Status"
_CACHE_STATUS_PARAMS = {
    Source.LOCAL: "hit; detail=in-process",
    Source.REDIS: "hit; detail=redis",
    Source.LOG: "hit; detail=log",
    Source.COLLAPSED: "fwd=miss; collapsed",
    Source.COMPUTED: "fwd=miss; stored",
    Source.COMPUTED_UNSTORED: "fwd=miss",
}
_CACHE_STATUS_HEADERS = {
    source: (CACHE_STATUS, f"{CACHE_NAME}; {params}")
    for source, params in _CACHE_STATUS_PARAMS.items()
}
# What one header costs besides its characters: its tuple and two str objects.
_HEADER_BYTES = 160
_STATUS_LINES = {200: "200 OK", 304: "304 Not Modified"}
Lookup = Callable[[ResultQuery], Outcome | None]


@dataclass(frozen=True, slots=True)
class Reply:
    """A result response: status, the result's own headers, body; ``cached`` as in the body."""

    status: int
    headers: Headers
    body: bytes
    cached: bool

    @property
    def nbytes(self) -> int:
        """Return an estimate of the memory this reply holds: its body, its headers' objects."""
        return len(self.body) + sum(
            len(name) + len(value) + _HEADER_BYTES for name, value in self.headers
        )

    @property
    def status_line(self) -> str:
        """Return the WSGI status line, e.g. ``"200 OK"``."""
        line = _STATUS_LINES.get(self.status)
        if line is None:
            line = f"{self.status} {HTTPStatus(self.status).phrase}"
        return line

    def to_django(self) -> HttpResponse:
        """Return this reply as a Django response (same headers, same order)."""
        if self.status == HTTPStatus.NOT_MODIFIED:
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = HttpResponse(self.body, status=self.status)
        for name, value in self.headers:
            response[name] = value
        return response


def accepts_gzip(accept_encoding: str) -> bool:
    """Return True if an ``Accept-Encoding`` value accepts the gzip content coding (RFC 9110).

    Codings are case-insensitive and may carry a weight: ``gzip;q=0``
    refuses gzip, ``*`` accepts it unless gzip is named, ``identity`` alone
    does not. ``compute.http.gzip`` makes Django's gzip middleware decide
    the same way, so a body left uncompressed here is not compressed behind
    this protocol's back.
    """
    star = False
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        weight = quality(params)
        if coding != "*":
            return weight > 0
        star = weight > 0
    return star


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Return True if an ``If-None-Match`` value names ``etag`` (weak comparison) or is ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def sends_gzip(accept_encoding: str, query: ResultQuery, payload: Payload) -> bool:
    """Return True if this result goes out gzip-compressed to this client."""
    return payload.body_length(as_string=query.as_string) >= GZIP_MIN_BYTES and accepts_gzip(
        accept_encoding
    )


def cache_status(source: Source) -> tuple[str, str]:
    """Return the ``Cache-Status`` header of a value from ``source``, e.g.
    ``("Cache-Status", "mathsite; hit; detail=redis")`` (prebuilt: no work per call)."""
    return _CACHE_STATUS_HEADERS[source]


def _result_headers(query: ResultQuery) -> Headers:
    return (
        ("ETag", query.etag),
        ("Cache-Control", CACHE_CONTROL),
        ("Vary", "Accept-Encoding"),
        ("Allow", ALLOW),
    )


def not_modified(query: ResultQuery) -> Reply:
    """Return the 304 answer to a matching ``If-None-Match`` (an empty body)."""
    return Reply(304, (*_result_headers(query), ("Content-Length", "0")), b"", cached=True)


def result_reply(
    query: ResultQuery,
    payload: Payload,
    *,
    source: Source,
    accept_encoding: str,
    memo: FrontMemo = front_memo,
) -> Reply:
    """Return the 200 JSON reply carrying ``payload`` for ``query``, which came from ``source``.

    Replies of cached results are remembered in ``memo`` (by query, coding
    and source, with the payload they were built from) and reused only
    while that very payload is the one served, so a hit builds nothing; a
    new payload from Redis (after an eviction or a refill) builds a new reply.
    """
    gzip = sends_gzip(accept_encoding, query, payload)
    if not source.cached:
        return _build_reply(query, payload, source=source, gzip=gzip)
    key = ("reply", query, gzip, source)
    generation = app_settings.generation
    found = memo.get(key, generation)
    if found is not None and found[0] is payload:
        return found[1]
    reply = _build_reply(query, payload, source=source, gzip=gzip)
    if len(reply.body) <= MAX_BODY:  # large bodies: building the headers is nothing beside them
        memo.put(key, generation, (payload, reply), nbytes=reply.nbytes + payload.nbytes)
    return reply


def _build_reply(query: ResultQuery, payload: Payload, *, source: Source, gzip: bool) -> Reply:
    cached = source.cached
    body = payload.body(cached=cached, as_string=query.as_string, gzip=gzip)
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    if gzip:
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return Reply(
        200, (*headers, *_result_headers(query), cache_status(source)), body, cached=cached
    )


def answer(
    query: ResultQuery,
    *,
    if_none_match: str | None,
    accept_encoding: str,
    lookup: Lookup,
    memo: FrontMemo = front_memo,
) -> Reply | None:
    """Answer a request for ``query``: 304, or the looked-up result; None if ``lookup`` had none.

    ``memo`` remembers the replies of cached results (``result_reply``).
    """
    if if_none_match and etag_matches(if_none_match, query.etag):
        metrics.not_modified(query.kind)
        return not_modified(query)
    outcome = lookup(query)
    if outcome is None:
        return None
    return result_reply(
        query, outcome.payload, source=outcome.source, accept_encoding=accept_encoding, memo=memo
    )
