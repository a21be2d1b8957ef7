"""Recognising a result request from its path and query string alone.

Shared by the hot-path middleware and the WSGI fast path, which both
answer before URL resolution and must accept exactly the URLs that
``compute.api.urls`` routes to a result (canonical and seed-compatible) and
exactly the inputs the DRF serializer accepts (``parse_query``).

``HIT_MARK`` is the WSGI environ key the middleware sets on a request it
answered from the cache, naming the response variant (ETag, gzip, status),
so the fast path can learn that variant's headers from the full stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from compute.domain.query import InvalidQuery, Limits, ResultQuery, parse_query

HIT_MARK = "mathsite.hit"

_ROUTES = (
    re.compile(r"^/api/(?P<kind>pi|fib)/(?P<n>[^/]+)/$"),
    re.compile(r"^/(?P<kind>pi|fib)/(?P<n>[^/]+)/?$"),
    re.compile(r"^/(?P<kind>pi)/?$"),
)


def result_query(path: str, params: Mapping[str, str], limits: Limits) -> ResultQuery | None:
    """Return the valid query a result URL names, or None (not a result URL, or invalid).

    ``params.get`` must return the last value of a repeated parameter, as
    Django's QueryDict does.
    """
    for route in _ROUTES:
        match = route.match(path)
        if match is not None:
            break
    else:
        return None
    n_text = match.groupdict().get("n") or params.get("n", "100")
    try:
        return parse_query(
            match["kind"], n_text, params.get("digits"), params.get("format"), limits=limits
        )
    except InvalidQuery:
        return None  # the view produces the 400 with its message
