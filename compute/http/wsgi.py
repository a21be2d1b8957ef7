"""The WSGI fast path: cached hits answered before Django's request cycle.

Django's handler costs about 50 us per request before any view runs
(building the WSGIRequest, the request signals, the middleware chain), more
than everything a cached hit needs. A hit's response is a pure function of
its variant (ETag, gzip or not, 200 or 304), so this WSGI wrapper learns
each variant's status and headers from the full stack and replays them:

1. The first hits of a variant go through Django, where
   ``HotResultMiddleware`` answers them and marks the environ (``HIT_MARK``);
   on the way out this wrapper records the status and headers Django sent.
2. Once two such responses agreed exactly (so nothing in them varies per
   request), later hits of that variant are answered here with those
   headers and the same body bytes, built by the same ``Payload``.

Anything else goes to Django unchanged: another method, a path that is not
a result, an invalid input, a miss, a variant not learned yet, and any
plain-HTTP request while ``SECURE_SSL_REDIRECT`` is on (Django redirects
those). Hits answered here are counted in the request and cache metrics;
they are not written to the request log (``HIT_FAST_PATH=false`` sends
every hit through Django, which logs it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import QueryDict

from compute import metrics
from compute.api.serializers import configured_limits
from compute.cache import MISSING, ResultCache, result_cache
from compute.http import hit as responses
from compute.http.routes import HIT_MARK, result_query

Headers = tuple[tuple[str, str], ...]
StartResponse = Callable[..., Any]
_EMPTY = QueryDict("")


class HeaderBook:
    """Status and headers per response variant, trusted after two identical sightings.

    Bounded: when either table is full it is emptied (the variants are
    simply learned again), so memory stays flat however many results exist.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._seen: dict[tuple, tuple[str, Headers]] = {}
        self._trusted: dict[tuple, tuple[str, Headers]] = {}

    def get(self, variant: tuple) -> tuple[str, Headers] | None:
        """Return the trusted (status, headers) of ``variant``, or None."""
        return self._trusted.get(variant)

    def learn(self, variant: tuple, status: str, headers: Iterable[tuple[str, str]]) -> None:
        """Record one full-stack response of ``variant``."""
        entry = (status, tuple(headers))
        if any(name.lower() == "set-cookie" for name, _ in entry[1]):
            return  # never replay a cookie
        if self._trusted.get(variant) == entry:
            return
        if self._seen.get(variant) == entry:
            if len(self._trusted) >= self.max_entries:
                self._trusted.clear()
            self._trusted[variant] = entry
            return
        self._trusted.pop(variant, None)  # it changed: learn it again
        if len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[variant] = entry


class FastResultApp:
    """WSGI application answering learned cached-hit variants, else calling Django."""

    cache: ResultCache = result_cache
    timer: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, application: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.application = application
        self.enabled = settings.HIT_FAST_PATH
        self.limits = configured_limits()
        self.book = HeaderBook()
        self.redirect_plain_http = settings.SECURE_SSL_REDIRECT
        self.proxy_ssl_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if self.enabled and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            started = self.timer()
            answer = self.answer(environ)
            if answer is not None:
                kind, status, headers, body = answer
                start_response(status, list(headers))
                route = metrics.result_route(environ.get("PATH_INFO", ""), kind)
                metrics.observe_request(
                    route, environ["REQUEST_METHOD"], int(status[:3]), self.timer() - started
                )
                return [body]
            return self.learn_from(environ, start_response)
        return self.application(environ, start_response)

    def answer(self, environ: dict) -> tuple[str, str, Headers, bytes] | None:
        """Return (kind, status, headers, body) for a learned hit or 304, or None."""
        if self.redirect_plain_http and not self.is_secure(environ):
            return None
        query_string = environ.get("QUERY_STRING", "")
        params = QueryDict(query_string) if query_string else _EMPTY
        query = result_query(environ.get("PATH_INFO", ""), params, self.limits)
        if query is None:
            return None
        if responses.etag_matches(environ.get("HTTP_IF_NONE_MATCH"), query.etag):
            learned = self.book.get((query.etag, False, 304))
            if learned is None:
                return None
            metrics.not_modified(query.kind)
            return query.kind, learned[0], learned[1], b""
        payload = self.cache.get(query)
        if payload is MISSING:
            return None
        gzip = responses.sends_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""), query, payload)
        learned = self.book.get((query.etag, gzip, 200))
        if learned is None:
            return None
        metrics.cache_lookup(query.kind, hit=True)
        body = payload.body(cached=True, as_string=query.as_string, gzip=gzip)
        return query.kind, learned[0], learned[1], body

    def learn_from(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Let Django answer, recording the response if the hot path marked it a hit."""
        sent: list[tuple[str, list[tuple[str, str]]]] = []

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            sent.append((status, list(headers)))
            return start_response(status, headers, exc_info)

        result = self.application(environ, recording_start_response)
        variant = environ.get(HIT_MARK)
        if variant is not None and len(sent) == 1 and sent[0][0][:3] == str(variant[2]):
            self.book.learn(variant, *sent[0])
        return result

    def is_secure(self, environ: dict) -> bool:
        """Return True if Django would see this request as HTTPS (no SSL redirect)."""
        if self.proxy_ssl_header:
            header, secure_value = self.proxy_ssl_header
            value = environ.get(header)
            if value is not None:
                return value.split(",", 1)[0].strip() == secure_value
        return environ.get("wsgi.url_scheme") == "https"
