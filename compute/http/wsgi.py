"""The WSGI front: cached hits answered before Django's request cycle.

Django's handler costs about 50 us per request before any view runs
(building the WSGIRequest, the request signals, the middleware chain), more
than everything a cached hit needs. ``ResultFront`` wraps Django's WSGI
application: for a GET or HEAD of a result URL (``routes.ResultMatcher``)
with valid inputs (``parse_query``, as the serializer) and an allowed
``Host``, it runs the hit protocol (``hit.answer``) with a cache-only
lookup and sends the reply itself, with the site's headers added. A GET
repeated with the same URL and deciding headers is answered from the reply
kept for it while its payload is still the one cached (``compute.http.kept``);
a server may ask for that answer before it builds the environ and send it
itself (``kept_reply``: the project's server command does).
What the front remembers between requests (validated URLs, host verdicts,
built replies, kept answers) is in one memo bounded in bytes, valid for
one settings generation (``compute.http.memo``).

The site's headers (what Django's middleware adds to every response:
``X-Frame-Options``, ``X-Content-Type-Options``, ..., and the reads' CORS
headers, the same with or without ``Origin``: ``compute.http.cors``) are
learned from the
view, by the contract of ``hit.REPLY_KEY``: the view leaves the reply it
answered without computing in the environ; once two such replies came back
from Django with their own headers first, unchanged, and the same extra
headers after them, those extras are trusted for that status and scheme.
The body and ``Content-Length`` always come from the reply itself.

A miss of an anonymous GET is computed here too, by the answerer the
application is given (``misses``: ``mathsite.front_misses``, the view's own
call inside the request middleware); what the service refuses is handed to
Django, whose view words it (``hit.REFUSAL_KEY``).

Everything else goes to Django unchanged: another method, a path that is
not a result, an invalid input or host, a miss with credentials or
conditions, site headers not learned yet, a plain-HTTP request while
``SECURE_SSL_REDIRECT`` is on, and anything unexpected (an exception here
is never raised: Django answers, in JSON).
Hits answered here are counted in the metrics (in batches:
``metrics.front_request``) but not written to the request log
(``HIT_FAST_PATH=false`` sends every hit through Django).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.http import QueryDict
from django.http.request import split_domain_port, validate_host

from compute import metrics, services
from compute.cache import result_cache
from compute.conf import app_settings
from compute.domain.query import InvalidQuery, ResultQuery, parse_query
from compute.http import hit, kept
from compute.http.memo import MAX_BODY, FrontMemo, front_memo
from compute.http.routes import ResultMatcher, Route, result_routes

logger = logging.getLogger(__name__)

# What a remembered (route, query) holds besides its key: the pair and the query.
_RESOLVED_BYTES = 256

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
# (environ, route name, query) -> the reply to a miss it computed, or None.
MissAnswerer = Callable[[dict, str, ResultQuery], "hit.Reply | None"]


class SiteHeaders:
    """The headers Django adds to a result reply, per (secure, status), trusted when repeated."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bool, int], hit.Headers] = {}
        self._trusted: dict[tuple[bool, int], hit.Headers] = {}

    def get(self, secure: bool, status: int) -> hit.Headers | None:
        """Return the trusted extra headers for replies of ``status``, or None."""
        return self._trusted.get((secure, status))

    def learn(self, secure: bool, reply: hit.Reply, status_line: str, sent: list) -> None:
        """Record what Django sent for ``reply``; trust the extras after two equal sightings."""
        own = len(reply.headers)
        sent_headers = tuple((str(name), str(value)) for name, value in sent)
        if status_line != reply.status_line or sent_headers[:own] != reply.headers:
            return  # the stack changed the reply itself: never replay it
        extra = sent_headers[own:]
        if any(name.lower() in ("set-cookie", "content-length") for name, _ in extra):
            return  # never replay a cookie; the body decides the length
        key = (secure, reply.status)
        if self._trusted.get(key) == extra:
            return
        if self._seen.get(key) == extra:
            self._trusted[key] = extra
            return
        self._trusted.pop(key, None)  # it changed: learn it again
        self._seen[key] = extra


class ResultFront:
    """WSGI application answering cached hits itself, else calling Django."""

    timer: Callable[[], float] = staticmethod(time.perf_counter)
    memo: FrontMemo = front_memo  # the process's; a test may give a front its own

    def __init__(
        self,
        application: WSGIApp,
        *,
        routes: tuple[Route, ...] | None = None,
        cache: Any = result_cache,
        misses: MissAnswerer | None = None,
    ) -> None:
        self.application = application
        self.misses = misses
        self.matcher = ResultMatcher(routes if routes is not None else result_routes())
        self.cache = cache
        self.site = SiteHeaders()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD") or not app_settings.HIT_FAST_PATH:
            return self.application(environ, start_response)
        again = self.kept_reply(environ)
        if again is not None:  # everything it needs was built when it was kept
            start_response(again.status_line, again.headers)
            return again.body
        try:
            started = self.timer()
            answered = self.answer(environ)
        except Exception:  # never raise in front of Django: it answers, in JSON
            logger.debug("WSGI front left a request to Django", exc_info=True)
            answered = None
        if answered is None:
            computed = self.computed_miss(environ)
            if computed is not None:
                reply, extra = computed
                start_response(reply.status_line, [*reply.headers, *extra])
                return [reply.body]
            return self.learn_from(environ, start_response)
        route, reply, extra = answered
        start_response(reply.status_line, [*reply.headers, *extra])
        seconds = self.timer() - started
        found = route.kind if reply.status == 200 else None  # a 304 looked nothing up
        metrics.front_request(route.name, environ["REQUEST_METHOD"], reply.status, seconds, found)
        return [reply.body]

    def kept_reply(self, request: dict) -> kept.Kept | None:
        """Return the kept answer to ``request``, counted as sent, or None: answer it otherwise.

        ``__call__`` sends it with ``start_response``; a server may ask
        first and send it itself, before it builds the request's environ
        (the project's server command: ``launcher.shared_listener.kept_hits``),
        with the request's own environ keys (method, path, query, headers,
        ``wsgi.url_scheme``): all that ``kept_answer`` reads. Either way the
        same answer, decided and counted here.
        """
        if request.get("REQUEST_METHOD") != "GET" or not app_settings.HIT_FAST_PATH:
            return None
        try:
            again = self.kept_answer(request)
        except Exception:  # the application answers it, as ``__call__`` would
            logger.debug("WSGI front left a request to the application", exc_info=True)
            return None
        if again is not None:
            again.count_send()  # untimed: see metrics.watch_kept
        return again

    def computed_miss(self, environ: dict) -> tuple[hit.Reply, hit.Headers] | None:
        """Compute an anonymous GET found in no tier (``misses``); None: Django answers it.

        Only a plain GET without credentials (no ``Authorization``, no
        cookie: Django's authentication and sessions decide nothing then)
        and without ``If-None-Match``, once the site headers of a 200 are
        learned. ``misses`` (given by ``mathsite.wsgi``) answers through the
        same service call as the view and writes the same access-log line;
        a refusal it leaves in the environ for the view to word
        (``hit.REFUSAL_KEY``), and returns None. Anything unexpected: Django.
        """
        query = environ.get(hit.MISS_KEY)
        if query is None or not self.computes(environ):
            return None
        extra = self.site.get(self.is_secure(environ), 200)
        route = self.resolve(environ)
        if extra is None or route is None or route[1] is not query:
            return None
        try:
            reply = self.misses(environ, route[0].name, query)
        except Exception:  # never raise in front of Django
            logger.warning("WSGI front could not compute a miss; Django answers", exc_info=True)
            return None
        if reply is None or reply.status != 200:
            return None
        return reply, extra

    def computes(self, environ: dict) -> bool:
        """Return True if a miss of this request would be computed here (``computed_miss``).

        Such a request's lookup stops at the in-process tier: the miss's
        attempt at the stampede lock reads the Redis entry in its own round
        trip (``services.result_get``), and answers a hit from there too.
        """
        return (
            self.misses is not None
            and environ.get("REQUEST_METHOD") == "GET"
            and "HTTP_AUTHORIZATION" not in environ
            and "HTTP_COOKIE" not in environ
            and "HTTP_IF_NONE_MATCH" not in environ
        )

    def kept_answer(self, environ: dict) -> kept.Kept | None:
        """Return the answer kept for this GET if it may be sent again as it is, else None.

        It may while it was kept under this settings generation, with the
        site headers trusted now, and the in-process tier still holds its
        very payload (``ResultCache.serves``, which counts the hit).
        """
        secure = self.is_secure(environ)
        key = kept.request_key(environ, secure)
        if key is None:
            return None
        found = self.memo.get(key, app_settings.generation)
        if (
            found is not None
            and self.site.get(secure, 200) is found.extra
            and found.still_sendable()
        ):
            return found
        return None

    def answer(self, environ: dict) -> tuple[Route, hit.Reply, hit.Headers] | None:
        """Return (route, reply, site headers) for a hit or 304 this front may send, or None.

        A GET with a kept answer that may be sent again does not get here
        (``kept_answer`` comes first); this builds the reply, and keeps it.
        """
        secure = self.is_secure(environ)
        generation = app_settings.generation
        key = kept.request_key(environ, secure) if environ["REQUEST_METHOD"] == "GET" else None
        resolved = self.resolve(environ)
        if resolved is None:
            return None
        route, query = resolved
        if app_settings.SECURE_SSL_REDIRECT and not secure:
            return None  # Django redirects it
        if not self.host_allowed(environ):
            return None  # Django answers 400
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        status = 304 if if_none_match and hit.etag_matches(if_none_match, query.etag) else 200
        extra = self.site.get(secure, status)
        if extra is None:
            return None  # not learned yet: Django answers (and teaches)
        outcomes: list[services.Outcome] = []
        local_only = self.computes(environ)

        def lookup(query: ResultQuery) -> services.Outcome | None:
            outcome = self.lookup(query, local_only=local_only)
            if outcome is not None:
                outcomes.append(outcome)
            else:
                environ[hit.MISS_KEY] = query  # the view need not look again (hit.MISS_KEY)
            return outcome

        accept_encoding = environ.get("HTTP_ACCEPT_ENCODING", "")
        reply = hit.answer(
            query,
            if_none_match=if_none_match,
            accept_encoding=accept_encoding,
            lookup=lookup,
            memo=self.memo,
        )
        if reply is None:
            return None
        if key is not None and outcomes and len(reply.body) <= MAX_BODY:
            self.keep(key, generation, route, query, outcomes[0], reply, extra, accept_encoding)
        return route, reply, extra

    def keep(
        self,
        key: kept.RequestKey,
        generation: int,
        route: Route,
        query: ResultQuery,
        outcome: services.Outcome,
        reply: hit.Reply,
        extra: hit.Headers,
        accept_encoding: str,
    ) -> None:
        """Keep the answer to a repeated GET: the in-process tier's reply to it.

        A kept answer is sent again only while this process's tier holds its
        payload (``kept``), so it is that tier's answer whatever this
        request's lookup found: after a hit in Redis its ``Cache-Status``
        says so, the kept one says ``in-process``.
        """
        if outcome.source is not services.Source.LOCAL:
            reply = hit.result_reply(
                query,
                outcome.payload,
                source=services.Source.LOCAL,
                accept_encoding=accept_encoding,
                memo=self.memo,
            )
        kept_answer = kept.Kept.of(route, query, outcome.payload, reply, extra, self.cache)
        self.memo.put(key, generation, kept_answer, nbytes=kept_answer.nbytes)

    def resolve(self, environ: dict) -> tuple[Route, ResultQuery] | None:
        """Return the route and valid query a request names, or None (not a result, or invalid).

        Remembered in the memo per (this front's routes, path, query string)
        while no setting changes: clients ask for the same few URLs again
        and again, and matching plus validating them is a fifth of a hit's
        work. Only valid results are remembered.
        """
        path = environ.get("PATH_INFO", "")
        key = ("url", self.matcher, path, environ.get("QUERY_STRING", ""))
        generation = app_settings.generation  # after any setting change, validated again
        found = self.memo.get(key, generation)
        if found is None:
            matched = self.matcher.match(path)
            if matched is None:
                return None
            query = self.query(environ, *matched)
            if query is None:
                return None
            found = (matched[0], query)
            self.memo.put(key, generation, found, nbytes=_RESOLVED_BYTES)
        return found

    def lookup(self, query: ResultQuery, *, local_only: bool = False) -> services.Outcome | None:
        """Return the cached outcome of ``query`` (cache tiers only), or None.

        ``local_only``: the in-process tier alone (a miss computed here looks in Redis itself).
        """
        return services.result_cached(
            query=query, cache=self.cache, counted=False, local_only=local_only
        )

    def query(self, environ: dict, route: Route, n_text: str | None) -> ResultQuery | None:
        """Return the valid query the request names, or None (the view words the 400)."""
        query_string = environ.get("QUERY_STRING", "")
        digits = format_ = mod = None
        if query_string:  # parsed as Django parses it (last value of a repeated name wins)
            params = QueryDict(query_string)
            digits, format_, mod = params.get("digits"), params.get("format"), params.get("mod")
            if n_text is None:
                n_text = params.get("n", route.default_n)
        elif n_text is None:
            n_text = route.default_n
        try:
            return parse_query(route.kind, n_text, digits, format_, mod, limits=app_settings.limits)
        except InvalidQuery:
            return None

    def learn_from(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Let Django answer; learn the site's headers if the view left its reply (REPLY_KEY)."""
        sent: list[tuple[str, list]] = []

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            sent.append((status, list(headers)))
            return start_response(status, headers, exc_info)

        result = self.application(environ, recording_start_response)
        reply = environ.get(hit.REPLY_KEY)
        if isinstance(reply, hit.Reply) and len(sent) == 1:
            self.site.learn(self.is_secure(environ), reply, *sent[0])
        return result

    def host_allowed(self, environ: dict) -> bool:
        """Return True if Django would accept the request's Host (``ALLOWED_HOSTS``)."""
        if app_settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
            host = environ["HTTP_X_FORWARDED_HOST"]
        elif "HTTP_HOST" in environ:
            host = environ["HTTP_HOST"]
        else:
            host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
        key = ("host", host)
        generation = app_settings.generation  # a changed ALLOWED_HOSTS is a new generation
        verdict = self.memo.get(key, generation)
        if verdict is None:
            domain, _port = split_domain_port(host)
            verdict = bool(domain) and validate_host(domain, app_settings.ALLOWED_HOSTS)
            self.memo.put(key, generation, verdict)
        return verdict

    @staticmethod
    def is_secure(environ: dict) -> bool:
        """Return True if Django would see this request as HTTPS."""
        header = app_settings.SECURE_PROXY_SSL_HEADER
        if header:
            name, secure_value = header
            value = environ.get(name)
            if value is not None:
                return value.split(",", 1)[0].strip() == secure_value
        return environ.get("wsgi.url_scheme") == "https"
