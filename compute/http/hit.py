"""HTTP responses for single results, shared by the DRF views and the hot path.

Both paths build their response here so a cached hit answered by the
middleware is byte-for-byte the response the full view would give: same
body, status, ETag, caching and encoding headers.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

from compute.domain.payload import GZIP_MIN_BYTES, Payload
from compute.domain.query import ResultQuery

# What DRF's viewset reports in ``Allow`` for a result URL; the hot path sends
# the same (tests compare the two paths' headers).
ALLOW = "GET, DELETE, HEAD, OPTIONS"
# Results never change: shared caches may keep them for a year.
CACHE_CONTROL = "public, max-age=31536000, immutable"
_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


def accepts_gzip(accept_encoding: str) -> bool:
    """Return True if an ``Accept-Encoding`` value accepts gzip content coding."""
    return bool(_ACCEPTS_GZIP.search(accept_encoding))


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
    return (
        accepts_gzip(accept_encoding)
        and payload.body_length(as_string=query.as_string) >= GZIP_MIN_BYTES
    )


def _headers(response: HttpResponse, query: ResultQuery) -> HttpResponse:
    response["ETag"] = query.etag
    response["Cache-Control"] = CACHE_CONTROL
    response["Vary"] = "Accept-Encoding"
    response["Allow"] = ALLOW
    return response


def not_modified(query: ResultQuery) -> HttpResponse:
    """Return the 304 answer to a matching ``If-None-Match``."""
    return _headers(HttpResponseNotModified(), query)


def result_response(
    request: HttpRequest, query: ResultQuery, payload: Payload, *, cached: bool
) -> HttpResponse:
    """Return the 200 JSON response carrying ``payload`` for ``query``."""
    gzip = sends_gzip(request.META.get("HTTP_ACCEPT_ENCODING", ""), query, payload)
    body = payload.body(cached=cached, as_string=query.as_string, gzip=gzip)
    response = HttpResponse(body, content_type="application/json")
    if gzip:
        response["Content-Encoding"] = "gzip"
    response["Content-Length"] = str(len(body))
    return _headers(response, query)
