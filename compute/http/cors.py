"""Browsers on other origins (CORS): which responses say what, decided once.

SPEC "Browsers on other origins". The reads (``routes.read_names``:
results, pictures, the lists, the site root's JSON index, the schema)
carry ``read_headers()``, ``Access-Control-Allow-Origin: *`` and
``Access-Control-Expose-Headers`` naming ``Cache-Status``, ``ETag`` and
``Retry-After``, on every response, whatever its status (4xx, 429, 503 and
304 included) and whether or not the request has an ``Origin``. So no
response varies by origin (no ``Vary: Origin``): a shared cache keeps one
copy, and the WSGI front learns the two headers among the site's
(``compute.http.wsgi.SiteHeaders`` trusts only headers the same on every
reply) and replays them on its hits as Django sent them. No cookies cross
origins: there is no ``Access-Control-Allow-Credentials``.

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) of a read
is answered by django-cors-headers, from its ``CORS_*`` settings: any
origin, the methods and request headers a read may use, the preflight's
max-age. A DELETE from another origin passes its preflight only on a
result URL (``routes.delete_names``) and only for an origin listed in
``CORS_DELETE_ORIGINS``: that preflight alone also allows ``DELETE`` and
the ``Authorization`` header (the token), so a browser on any other
origin refuses to send it. The admin, ``/metrics``, the docs page and
every other URL get no CORS header at all.

``CorsMiddleware`` is django-cors-headers' middleware with two changes:
which URLs take part is decided by URL name (the route table) rather than
by its ``CORS_URLS_REGEX``, and a response that is not a preflight gets
``read_headers()`` whether or not it has an ``Origin`` (the library adds
nothing without one, and ``Vary: Origin`` with one).
"""

from __future__ import annotations

from dataclasses import dataclass

from corsheaders.middleware import CorsMiddleware as LibraryCorsMiddleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve

from compute.conf import app_settings
from compute.http.routes import delete_names, read_names

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"
ALLOW_METHODS = "Access-Control-Allow-Methods"
ALLOW_HEADERS = "Access-Control-Allow-Headers"
# What a preflight from a listed origin adds for a DELETE with its token.
DELETE_METHOD = "DELETE"
CREDENTIALS_HEADER = "authorization"  # where the API token goes


@dataclass(frozen=True, slots=True)
class Policy:
    """What the settings and the route table decide about other origins."""

    headers: tuple[tuple[str, str], ...]  # every response of a read
    reads: frozenset[str]  # URL names of the reads
    deletes: frozenset[str]  # URL names that take a DELETE
    delete_origins: frozenset[str]  # CORS_DELETE_ORIGINS


_policy: tuple[int, Policy] | None = None


def policy() -> Policy:
    """Return the policy of the current settings (made again after any setting changes)."""
    global _policy
    kept, generation = _policy, app_settings.generation
    if kept is None or kept[0] != generation:
        exposed = ", ".join(app_settings.CORS_EXPOSE_HEADERS)
        made = Policy(
            headers=((ALLOW_ORIGIN, "*"), (EXPOSE_HEADERS, exposed)),
            reads=read_names(),
            deletes=delete_names(),
            delete_origins=frozenset(app_settings.CORS_DELETE_ORIGINS),
        )
        kept = _policy = (generation, made)
    return kept[1]


def read_headers() -> tuple[tuple[str, str], ...]:
    """Return the headers every response of a read carries (the same for every request)."""
    return policy().headers


def view_name(request: HttpRequest) -> str | None:
    """Return the URL name the request's path resolves to (``namespace:name``), or None."""
    match = request.resolver_match
    if match is None:  # not resolved yet (a preflight), or never (an error before the view)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return None
    return match.view_name


def is_preflight(request: HttpRequest) -> bool:
    """Return True for a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``)."""
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


class CorsMiddleware(LibraryCorsMiddleware):
    """django-cors-headers for the reads, with the same headers with or without ``Origin``."""

    def is_enabled(self, request: HttpRequest) -> bool:
        """Return True if the request names a read (by URL name, ``routes.read_names``)."""
        return view_name(request) in policy().reads

    def check_preflight(self, request: HttpRequest) -> HttpResponseBase | None:
        # Only a preflight needs the verdict before the view; every other
        # request is judged on its way out, by the name Django resolved.
        if not is_preflight(request):
            return None
        return super().check_preflight(request)

    def add_response_headers(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not is_preflight(request):
            if self.is_enabled(request):
                for name, value in read_headers():
                    response[name] = value
            return response
        super().add_response_headers(request, response)
        if getattr(request, "_cors_enabled", False) and self.may_delete(request):
            methods = response.get(ALLOW_METHODS)
            headers = response.get(ALLOW_HEADERS)
            if methods is not None and headers is not None:
                response[ALLOW_METHODS] = f"{methods}, {DELETE_METHOD}"
                response[ALLOW_HEADERS] = f"{headers}, {CREDENTIALS_HEADER}"
        return response

    @staticmethod
    def may_delete(request: HttpRequest) -> bool:
        """Return True if the request's origin may DELETE at its URL (a listed origin, a result)."""
        allowed = policy()
        origin = request.headers.get("origin")
        return origin in allowed.delete_origins and view_name(request) in allowed.deletes
