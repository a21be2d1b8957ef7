"""The OpenAPI description of the result API, for drf-spectacular.

The result views answer with bodies built by hand (``compute.http.hit``,
shared with the hot path), so there is no serializer for drf-spectacular to
read: this module says what they accept and return. It is wired in through
two settings of ``SPECTACULAR_SETTINGS`` and never touches the views:

- ``preprocess_endpoints`` swaps each result endpoint's view class, for
  schema generation only, for a subclass carrying ``extend_schema``
  declarations built from the *current* limits (``FIB_MAX_N``,
  ``PI_MAX_N``, ``PI_MAX_DIGITS``, ``FIB_MOD_MAX_N``, ``FIB_MOD_MAX_M``),
  so the schema always states the limits the service enforces; it also
  names the routes of the old Flask service cleanly, and describes the
  convergence picture (SVG).
- ``postprocess_schema`` adds the result bodies as named components and
  states who needs credentials: public reads carry ``security: []`` (no
  padlock in Swagger UI), staff-only DELETEs name the token and session
  schemes only.

Every figure in the text comes from the code it describes (the gzip
threshold, the ETag of each kind, the ``format`` values);
``tests/api/test_schema.py`` checks them against those constants.

``SchemaView`` serves the schema at ``/api/schema/``. drf-spectacular's own
view reads ``?version=`` from the client and writes it into the
``Content-Disposition`` filename (and the document's ``info.version``): a
client could put quotes, control characters or a CR LF into a response
header (the last is a 500). The API has one version, so the parameter is
ignored and the filename is built from server values only. It also builds
the document anew for every request (walking every endpoint: about 50 ms)
inside the language ``?lang=`` names (each new name is one more catalogue
Django keeps for the process's life). Here the document is built once per
process, with no request and in the settings' language (nothing a client
sends can reach the copy every client gets), and again after a setting
changes (``SchemaDocument``), so it always follows the limits.

Every operation lists its error bodies: 400 names the invalid field
(``{"n": ["n must be at most 1000000 (FIB_MAX_N)."]}``), other errors are
``{"detail": "..."}``, and 429 adds ``retry_after`` (seconds) next to the
``Retry-After`` header.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import translation
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from compute.api.serializers import log_item_serializer
from compute.conf import app_settings, on_change
from compute.domain.convergence import convergence_etag
from compute.domain.kinds import registry
from compute.domain.kinds.base import Kind, Option
from compute.domain.kinds.fib import JAVASCRIPT_NOTE
from compute.domain.kinds.pi import KIND as PI_KIND
from compute.domain.payload import GZIP_MIN_BYTES
from compute.domain.query import FORMATS, ResultQuery
from compute.http import hit
from compute.http.responses import CompactJsonResponse
from compute.http.routes import ResultMatcher, Route, result_routes
from compute.services import PICTURE_SOURCES, Source

PATH, QUERY, HEADER = OpenApiParameter.PATH, OpenApiParameter.QUERY, OpenApiParameter.HEADER

# --- error bodies (documentation only: DRF's exception handler writes them) ----------


class ErrorSerializer(serializers.Serializer):
    """An error other than a rejected parameter."""

    detail = serializers.CharField(help_text="What went wrong, for a human.")


class ThrottledSerializer(ErrorSerializer):
    """A computation refused (rate, budget or capacity): the detail and the seconds to wait."""

    retry_after = serializers.FloatField(
        help_text="Seconds until the client may try again (also in Retry-After)."
    )


class InvalidQuerySerializer(serializers.Serializer):
    """A rejected parameter: its name and why (naming the limit when one was exceeded)."""

    n = serializers.ListField(child=serializers.CharField(), required=False)
    digits = serializers.ListField(child=serializers.CharField(), required=False)
    format = serializers.ListField(child=serializers.CharField(), required=False)
    mod = serializers.ListField(child=serializers.CharField(), required=False)


# --- result bodies (components added by postprocess_schema) ----------------------------

_CACHED = {"type": "boolean", "description": "True when this request did not compute the value."}
_INT64_ABOVE = 2**31 - 1


def _integer(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    """Return an integer schema, int64 when its maximum (or, unbounded, n) needs it."""
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is None or maximum > _INT64_ABOVE:
        schema["format"] = "int64"
    return schema


def component_name(kind: Kind) -> str:
    """Return the name of ``kind``'s result body among the components: ``PiResult``."""
    return f"{kind.name.capitalize()}Result"


def result_component(kind: Kind) -> dict[str, Any]:
    """Return the schema of ``kind``'s result body: ``cached``, ``result``, ``n``, its options."""
    options = {
        option.slot: {
            **_integer(option.minimum, app_settings.limits.of(option.limit)),
            "description": option.body,
        }
        for option in kind.options
    }
    return {
        "type": "object",
        "description": kind.summary,
        "required": ["cached", "result", "n"],
        "additionalProperties": False,
        "properties": {
            "cached": _CACHED,
            "result": {"oneOf": [dict(form) for form in kind.result_forms]},
            "n": _integer(kind.n_minimum),
            **options,
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- parameters and responses, from the current limits ----------------------------------


def _n_parameter(kind: Kind, location: str) -> OpenApiParameter:
    limits = app_settings.limits
    low, high, limit = kind.n_minimum, limits.of(kind.n_limit), kind.n_limit
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if high > _INT64_ABOVE:
        schema["format"] = "int64"
    if location == QUERY:
        schema["default"] = 100
    # OpenAPI cannot tie one parameter's bound to another's presence: the
    # schema states the bound that holds without the option, the words the other.
    widened = "".join(
        f"; with {option.slot}={option.placeholder}, {low} <= n <= "
        f"{limits.of(option.n_limit)} ({option.n_limit})"
        for option in kind.options
        if option.n_limit
    )
    return OpenApiParameter(
        "n",
        schema,
        location,
        required=location == PATH,
        description=f"{low} <= n <= {high} ({limit}){widened}, written with the ASCII "
        "digits 0-9 only (no sign, space, decimal point or exponent); anything else is a 400.",
    )


def _option_parameter(kind: Kind, option: Option) -> OpenApiParameter:
    limits = app_settings.limits
    high = limits.of(option.limit)
    example = ResultQuery(kind.name, kind.example_n, **{option.slot: option.example})
    words = {
        "low": option.minimum,
        "high": high,
        "limit": option.limit,
        "n_high": limits.of(option.n_limit) if option.n_limit else "",
        "n_limit": option.n_limit or "",
        "etag": example.etag,
    }
    schema = {**_integer(option.minimum, high), "maximum": high}
    return OpenApiParameter(option.slot, schema, QUERY, description=option.describe.format(**words))


def _naming_parameters(kind: Kind) -> list[OpenApiParameter]:
    """Return the query parameters that name one of several results at n (DELETE too)."""
    return [_option_parameter(kind, option) for option in kind.options]


def _options(kind: Kind) -> list[OpenApiParameter]:
    """Return the query parameters of a GET: the naming ones first (``_naming_parameters``)."""
    parameters = _naming_parameters(kind)
    if kind.integer:
        parameters.append(
            OpenApiParameter(
                "format",
                {"type": "string", "enum": list(FORMATS)},
                QUERY,
                description="string: the result as a JSON string of digits; number (the "
                "default; json or empty mean the same): a JSON integer. " + JAVASCRIPT_NOTE,
            )
        )
    return parameters


def example_etag(kind: str) -> str:
    """Return the ETag the schema shows for ``kind`` (the code's, for n = 1000)."""
    return ResultQuery(kind, 1000).etag


def _cache_status(sources: tuple[Source, ...]) -> OpenApiParameter:
    """Return the ``Cache-Status`` response header, naming the values ``sources`` give."""
    values = ", ".join(f"`{hit.cache_status(source)[1]}`" for source in sources)
    return OpenApiParameter(
        hit.CACHE_STATUS,
        str,
        HEADER,
        response=[200],
        description="Where the value came from (RFC 9211), one of: "
        f"{values}. `hit` names the tier that held it (`detail`); `fwd=miss` means it "
        "was computed, `stored` that it was then stored in Redis, `collapsed` that "
        "this request waited for another request's computation. Absent on a 304.",
    )


def _result_headers(kind: str) -> list[OpenApiParameter]:  # a kind's name
    return [
        OpenApiParameter(
            "ETag",
            str,
            HEADER,
            response=[200, 304],
            description="Weak tag of the inputs and the stored format version, e.g. "
            f"{example_etag(kind)}; send it back in If-None-Match for a 304.",
        ),
        _cache_status(tuple(Source)),
        OpenApiParameter(
            "Retry-After",
            int,
            HEADER,
            response=[429, 503],
            description="Seconds until computing requests are accepted again.",
        ),
    ]


def _error(description: str, serializer: type = ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(serializer, description=description)


def _invalid(kind: Kind) -> OpenApiResponse:
    high = app_settings.limits.of(kind.n_limit)
    return OpenApiResponse(
        InvalidQuerySerializer,
        description="A parameter is malformed or out of range; the message names the limit.",
        examples=[
            OpenApiExample(
                "n above the limit",
                value={"n": [f"n must be at most {high} ({kind.n_limit})."]},
            )
        ],
    )


def _retrieve(kind: Kind, location: str, operation_id: str, tags: list[str]) -> Any:
    return extend_schema(
        operation_id=operation_id,
        tags=tags,
        summary=f"Get {kind.title}",
        description="Served from the cache (Redis), else from the result log, else computed "
        "(and then cached and logged); `cached` says which. Results are immutable: "
        "send the ETag back in If-None-Match to get a 304 without any lookup. Bodies "
        f"of {GZIP_MIN_BYTES} bytes or more are gzip-compressed for clients that accept "
        "gzip. Only requests that compute count against the client's rate limit and "
        "digit budget (an estimate of the result's digits); cached hits never do.",
        parameters=[_n_parameter(kind, location), *_options(kind), *_result_headers(kind.name)],
        responses={
            200: OpenApiResponse(_ref(component_name(kind)), description="The result."),
            304: OpenApiResponse(description="Not modified: If-None-Match named this result."),
            400: _invalid(kind),
            404: _error("Unknown route (a path segment that is not a number may land here)."),
            429: _error(
                "This client may not compute now: too many computing requests "
                "(THROTTLE_COMPUTE_RATE), its digits per hour spent (COMPUTE_DIGITS_PER_HOUR, "
                "code budget_exceeded), or its share of concurrent computations running "
                "(COMPUTE_CONCURRENCY_PER_CLIENT). Wait Retry-After seconds.",
                ThrottledSerializer,
            ),
            503: _error(
                "Every computation slot of the server is busy (COMPUTE_CONCURRENCY, "
                "COMPUTE_QUEUE_LENGTH); cached results are still served. Wait Retry-After seconds.",
                ThrottledSerializer,
            ),
        },
    )


def _destroy(kind: Kind, location: str, operation_id: str, tags: list[str]) -> Any:
    return extend_schema(
        operation_id=operation_id,
        tags=tags,
        summary=f"Delete a {kind.name} result (staff with the delete permission)",
        description="Removes the result from every cache tier and from the log, whether or "
        "not it existed; the next GET computes it again. "
        + "".join(option.deletes for option in kind.options)
        + "Needs the token (`Authorization: Token <key>`, from "
        "`manage.py drf_create_token`) or admin session of a staff user holding the "
        '"delete computed result" permission.',
        parameters=[_n_parameter(kind, location), *_naming_parameters(kind)],
        responses={
            204: OpenApiResponse(description="Deleted (or there was nothing to delete)."),
            400: _invalid(kind),
            401: _error("No credentials: the response carries WWW-Authenticate: Token."),
            403: _error("Authenticated, but not staff with the delete permission."),
            404: _error("Unknown route."),
        },
    )


def _list(kind: Kind) -> Any:
    return extend_schema(
        operation_id=f"{kind.name}_log_list",
        tags=[kind.name],
        summary=f"List the logged {kind.name} results, newest first",
        description="Cursor-paginated; items carry a preview and a URL, never the full "
        "value (fib(1000000) has 208,988 digits).",
        parameters=[
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 500},
                QUERY,
                description="Items per page, 1-500 (default 50). As in Django REST "
                "framework, a value that is not a positive integer is ignored (the "
                "default applies) and a larger one is capped at 500.",
            )
        ],
        responses={
            200: log_item_serializer(kind)(many=True),
            404: _error("The cursor is invalid."),
        },
    )


# The tag of the routes kept for clients of the old Flask service.
OLD_SERVICE_TAG = "old service routes"
OTHER_TAGS = [
    {
        "name": OLD_SERVICE_TAG,
        "description": "The routes of the old Flask service (no /api prefix, no trailing "
        "slash needed), for its existing clients: same answers as the /api/ routes.",
    },
    {"name": "health", "description": "Liveness and readiness probes."},
]


def tags() -> list[dict[str, str]]:
    """Return the schema's tags: one per kind (its own words), then the others."""
    return [{"name": kind.name, "description": kind.tag} for kind in registry.kinds()] + OTHER_TAGS


def _convergence(view_class: type) -> type:
    """Return a subclass of the picture view with its schema (an SVG, n as for pi)."""
    declared = extend_schema(
        operation_id="pi_convergence",
        tags=[PI_KIND.name],
        summary="Picture of how pi(k) approaches pi, k = 1..n (SVG)",
        description="pi - pi(k) for k = 1 to n on log-log axes, with the asymptote "
        "3/(pi k) and n marked (for n = 1 a single point); the distances are computed "
        "in extended precision, right to 3 significant digits up to PI_MAX_N. n is "
        "validated as for pi(n). Cached in Redis (not logged); send the ETag (e.g. "
        f"{convergence_etag(1000)}) back in If-None-Match for a 304.",
        parameters=[
            _n_parameter(PI_KIND, PATH),
            OpenApiParameter(
                "ETag", str, HEADER, response=[200, 304], description="Weak tag of n."
            ),
            _cache_status(PICTURE_SOURCES),
        ],
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                {"type": "string"}, description="The picture, an SVG document."
            ),
            304: OpenApiResponse(description="Not modified: If-None-Match named this picture."),
            400: _invalid(PI_KIND),
            429: _error("Too many computing requests from this client.", ThrottledSerializer),
        },
    )
    documented = type(view_class.__name__, (view_class,), {"__module__": view_class.__module__})
    documented.get = declared(view_class.get)
    return documented


def _route_of(path: str) -> Route | None:
    """Return the table's result route of a schema path (``{n}`` filled in), or None.

    None is the router's list route, which the table does not name.
    """
    matched = ResultMatcher(result_routes()).match(path.replace("{n}", "0"))
    return None if matched is None else matched[0]


def _documented(view_class: type, path: str, route: Route | None) -> type:
    """Return a subclass of a result viewset with the schema of ``route`` at ``path``."""
    kind = registry.get(view_class.kind)
    if route is None or route.canonical:
        tags, location, suffix = [kind.name], PATH, ""
        decorators: dict[str, Any] = {"list": _list(kind)}
    else:
        tags = [OLD_SERVICE_TAG]
        location = PATH if "{n}" in path else QUERY
        suffix = "_old_service" if location == PATH else "_old_service_query"
        decorators = {}
    decorators["retrieve"] = _retrieve(kind, location, f"{kind.name}_retrieve{suffix}", tags)
    decorators["destroy"] = _destroy(kind, location, f"{kind.name}_destroy{suffix}", tags)
    documented = type(view_class.__name__, (view_class,), {"__module__": view_class.__module__})
    return extend_schema_view(**decorators)(documented)


# --- hooks (SPECTACULAR_SETTINGS) --------------------------------------------------------


def preprocess_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Describe the result endpoints and give the old service's routes their plain paths.

    The old service routes' optional trailing slash (``/?`` in their regex) is not
    a path an OpenAPI client can call; the schema names them without it.
    """
    from compute.api.views import ConvergenceView, ResultViewSet

    described = []
    for path, path_regex, method, callback in endpoints:
        view_class = getattr(callback, "cls", None)
        if view_class is ConvergenceView:
            callback = _convergence(view_class).as_view(**callback.initkwargs)
        elif isinstance(view_class, type) and issubclass(view_class, ResultViewSet):
            route = _route_of(path.replace("/?", "/"))
            if route is not None and not route.canonical:
                path = path.replace("/?", "").rstrip("/") or "/"
            documented = _documented(view_class, path, route)
            callback = documented.as_view(callback.actions, **callback.initkwargs)
        described.append((path, path_regex, method, callback))
    return described


def postprocess_schema(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Add the result bodies as named components; say which operations need credentials.

    drf-spectacular lists every authentication class on every operation
    (plus ``{}`` where anonymous calls are allowed), which Swagger UI draws
    as a padlock on public reads. Reads need nothing (``security: []``);
    DELETEs need staff credentials (the schemes, without ``{}``).
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update({component_name(kind): result_component(kind) for kind in registry.kinds()})
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("get", "head"):
                operation["security"] = []
            elif "security" in operation:
                operation["security"] = [s for s in operation["security"] if s]
    result["tags"] = tags()
    return result


# --- the schema endpoint ------------------------------------------------------------------


class SchemaDocument:
    """The process's OpenAPI document: built on first use, built again after any setting changes.

    What it says depends on settings only (the limits, the kinds,
    ``SPECTACULAR_SETTINGS``, the URLconf), and on no request, so one copy
    serves every client until a setting changes (``override_settings`` in
    a test; never in production). Concurrent first requests build it once.
    """

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None
        self._guard = threading.Lock()
        on_change(None, self.forget)  # too many settings shape it to name them

    def get(self, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the document, calling ``build`` if there is none yet."""
        document = self._document
        if document is None:
            with self._guard:
                if self._document is None:
                    self._document = build()
                document = self._document
        return document

    def forget(self) -> None:
        """Drop the document: the next request builds it from the settings of then."""
        self._document = None


class SchemaView(SpectacularAPIView):
    """drf-spectacular's schema view, built once per process, with nothing from the client in it.

    The document always describes the one API this service has (its
    ``info.version`` is ``SPECTACULAR_SETTINGS["VERSION"]``) in the
    settings' language, whatever ``?version=`` or ``?lang=`` say.
    """

    document = SchemaDocument()

    @extend_schema(exclude=True)  # as SERVE_INCLUDE_SCHEMA = False says
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Return the process's document; ``?lang=`` is not read (the words are English)."""
        return self._get_schema_response(request)

    def _get_schema_response(self, request: Request) -> Response:
        filename = self._get_filename(request, None)
        return Response(
            data=self.document.get(self.build),
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )

    def build(self) -> dict[str, Any]:
        """Generate the document with no request, in the settings' language (LANGUAGE_CODE)."""
        generator = self.generator_class(
            urlconf=self.urlconf, api_version=self.api_version, patterns=self.patterns
        )
        with translation.override(settings.LANGUAGE_CODE):
            return generator.get_schema(request=None, public=self.serve_public)

    def _get_version_parameter(self, request: Request) -> None:
        """Ignore ``?version=``: there is one API version, and the text is the client's."""
        return None

    def _get_filename(self, request: Request, version: str | None) -> str:
        """Return ``<TITLE>.<format>``: the settings' title and the renderer this view chose."""
        renderer_format = self.perform_content_negotiation(request, force=True)[0].format
        return f"{spectacular_settings.TITLE or 'schema'}.{renderer_format}"


class DocsView(SpectacularSwaggerView):
    """Swagger UI (assets served locally), for GET and HEAD only.

    drf-spectacular's view renders HTML with a template renderer, which has
    no template for DRF's OPTIONS metadata or for an error body: an OPTIONS
    or another method was a 500. Here they are a JSON 405.
    """

    http_method_names = ["get", "head"]

    def http_method_not_allowed(self, request: Request, *args: object, **kwargs: object) -> Any:
        """Answer a method other than GET or HEAD with the site's JSON 405."""
        response = CompactJsonResponse(
            {"detail": f'Method "{request.method}" not allowed.'}, status=405
        )
        response["Allow"] = "GET, HEAD"
        return response
