"""The OpenAPI description of the result API, for drf-spectacular.

The result views answer with bodies built by hand (``compute.http.hit``,
shared with the hot path), so there is no serializer for drf-spectacular to
read: this module says what they accept and return. It is wired in through
two settings of ``SPECTACULAR_SETTINGS`` and never touches the views:

- ``preprocess_endpoints`` swaps each result endpoint's view class, for
  schema generation only, for a subclass carrying ``extend_schema``
  declarations built from the *current* limits (``FIB_MAX_N``,
  ``PI_MAX_N``, ``PI_MAX_DIGITS``), so the schema always states the limits
  the service enforces; it also names the seed-compatible routes cleanly.
- ``postprocess_schema`` adds the result bodies as named components.

Every operation lists its error bodies: 400 names the invalid field
(``{"n": ["n must be at most 1000000 (FIB_MAX_N)."]}``), other errors are
``{"detail": "..."}``, and 429 adds ``retry_after`` (seconds) next to the
``Retry-After`` header.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from compute.api.serializers import ResultLogItemSerializer
from compute.conf import app_settings
from compute.domain.payload import GZIP_MIN_BYTES
from compute.domain.query import FORMAT_VERSION, PI
from compute.http.routes import ResultMatcher, Route, result_routes

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


# --- result bodies (components added by postprocess_schema) ----------------------------

_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"

_CACHED = {"type": "boolean", "description": "True when this request did not compute the value."}


def _result_body(description: str, forms: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Return the schema of a result body: ``cached``, ``result`` (one of ``forms``), ``n``."""
    return {
        "type": "object",
        "description": description,
        "required": ["cached", "result", "n"],
        "additionalProperties": False,
        "properties": {"cached": _CACHED, "result": {"oneOf": forms}, **extra},
    }


RESULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "PiResult": _result_body(
        "pi(n) by the Basel series with the terms i = 1 .. n-1.",
        [
            {"type": "number", "description": "Without digits: the correctly rounded double."},
            {
                "type": "string",
                "pattern": _DECIMAL,
                "description": "With digits=D: D significant digits, fixed notation, "
                'rounded to nearest (ties to even); n = 1 gives "0".',
            },
        ],
        n={"type": "integer", "format": "int64", "minimum": 1},
        digits={
            "type": "integer",
            "minimum": 1,
            "description": "The requested precision (only with digits=D).",
        },
    ),
    "FibResult": _result_body(
        "fib(n), exact: fib(0) = 0, fib(1) = 1.",
        [
            {
                "type": "integer",
                "minimum": 0,
                "description": "A JSON integer with all its digits (beyond 2**53 "
                "JavaScript cannot read it exactly: use format=string).",
            },
            {
                "type": "string",
                "pattern": r"^[0-9]+$",
                "description": "With format=string: the digits as a string.",
            },
        ],
        n={"type": "integer", "minimum": 0},
    ),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- parameters and responses, from the current limits ----------------------------------


def _n_parameter(kind: str, location: str) -> OpenApiParameter:
    if kind == PI:
        low, high, limit = 1, app_settings.PI_MAX_N, "PI_MAX_N"
    else:
        low, high, limit = 0, app_settings.FIB_MAX_N, "FIB_MAX_N"
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if high > 2**31 - 1:
        schema["format"] = "int64"
    if location == QUERY:
        schema["default"] = 100
    return OpenApiParameter(
        "n",
        schema,
        location,
        required=location == PATH,
        description=f"{low} <= n <= {high} ({limit}), written with the ASCII digits 0-9 only "
        "(no sign, space, decimal point or exponent); anything else is a 400.",
    )


def _options(kind: str) -> list[OpenApiParameter]:
    if kind == PI:
        high = app_settings.PI_MAX_DIGITS
        return [
            OpenApiParameter(
                "digits",
                {"type": "integer", "minimum": 1, "maximum": high},
                QUERY,
                description=f"Significant digits, 1 <= digits <= {high} (PI_MAX_DIGITS): "
                "the result becomes a decimal string. Without it, a double.",
            )
        ]
    return [
        OpenApiParameter(
            "format",
            {"type": "string", "enum": ["number", "string", "json", ""]},
            QUERY,
            description="string: the result as a JSON string of digits (for JavaScript "
            "clients); number (the default; json or empty mean the same): a JSON integer.",
        )
    ]


def _result_headers() -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "ETag",
            str,
            HEADER,
            response=[200, 304],
            description="Weak tag of the inputs and the stored format version, e.g. "
            f'W/"fib-1000-v{FORMAT_VERSION}"; send it back in If-None-Match for a 304.',
        ),
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


def _invalid() -> OpenApiResponse:
    return OpenApiResponse(
        InvalidQuerySerializer,
        description="A parameter is malformed or out of range; the message names the limit.",
        examples=[
            OpenApiExample(
                "n above the limit",
                value={"n": [f"n must be at most {app_settings.FIB_MAX_N} (FIB_MAX_N)."]},
            )
        ],
    )


def _retrieve(kind: str, location: str, operation_id: str, tags: list[str]) -> Any:
    body = "PiResult" if kind == PI else "FibResult"
    what = "pi(n) by the Basel series" if kind == PI else "fib(n), exact"
    return extend_schema(
        operation_id=operation_id,
        tags=tags,
        summary=f"Get {what}",
        description="Served from the cache (Redis), else from the result log, else computed "
        "(and then cached and logged); `cached` says which. Results are immutable: "
        "send the ETag back in If-None-Match to get a 304 without any lookup. Bodies "
        f"of {GZIP_MIN_BYTES} bytes or more are gzip-compressed for clients that accept "
        "gzip. Only requests that compute count against the client's rate limit and "
        "digit budget (an estimate of the result's digits); cached hits never do.",
        parameters=[_n_parameter(kind, location), *_options(kind), *_result_headers()],
        responses={
            200: OpenApiResponse(_ref(body), description="The result."),
            304: OpenApiResponse(description="Not modified: If-None-Match named this result."),
            400: _invalid(),
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


def _destroy(kind: str, location: str, operation_id: str, tags: list[str]) -> Any:
    return extend_schema(
        operation_id=operation_id,
        tags=tags,
        summary=f"Delete a {kind} result (staff only)",
        description="Removes the result from every cache tier and from the log, whether or "
        "not it existed; the next GET computes it again. "
        + ("`digits=D` names a precision; without it, the double. " if kind == PI else "")
        + "Needs a staff token (`Authorization: Token <key>`, from "
        "`manage.py drf_create_token`) or a staff admin session.",
        parameters=[_n_parameter(kind, location), *(_options(kind) if kind == PI else [])],
        responses={
            204: OpenApiResponse(description="Deleted (or there was nothing to delete)."),
            400: _invalid(),
            401: _error("No credentials: the response carries WWW-Authenticate: Token."),
            403: _error("Authenticated, but not staff."),
            404: _error("Unknown route."),
        },
    )


def _list(kind: str) -> Any:
    return extend_schema(
        operation_id=f"{kind}_log_list",
        tags=[kind],
        summary=f"List the logged {kind} results, newest first",
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
            200: ResultLogItemSerializer(many=True),
            404: _error("The cursor is invalid."),
        },
    )


def _route_of(path: str) -> Route | None:
    """Return the table's result route of a schema path (``{n}`` filled in), or None.

    None is the router's list route, which the table does not name.
    """
    matched = ResultMatcher(result_routes()).match(path.replace("{n}", "0"))
    return None if matched is None else matched[0]


def _documented(view_class: type, path: str, route: Route | None) -> type:
    """Return a subclass of a result viewset with the schema of ``route`` at ``path``."""
    kind = view_class.kind
    if route is None or route.canonical:
        tags, location, suffix = [kind], PATH, ""
        decorators: dict[str, Any] = {"list": _list(kind)}
    else:
        tags = ["seed-compatible"]
        location = PATH if "{n}" in path else QUERY
        suffix = "_seed" if location == PATH else "_seed_query"
        decorators = {}
    decorators["retrieve"] = _retrieve(kind, location, f"{kind}_retrieve{suffix}", tags)
    decorators["destroy"] = _destroy(kind, location, f"{kind}_destroy{suffix}", tags)
    documented = type(view_class.__name__, (view_class,), {"__module__": view_class.__module__})
    return extend_schema_view(**decorators)(documented)


# --- hooks (SPECTACULAR_SETTINGS) --------------------------------------------------------


def preprocess_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Describe the result endpoints and give the seed routes their plain paths.

    The seed routes' optional trailing slash (``/?`` in their regex) is not
    a path an OpenAPI client can call; the schema names them without it.
    """
    from compute.api.views import ResultViewSet

    described = []
    for path, path_regex, method, callback in endpoints:
        view_class = getattr(callback, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, ResultViewSet):
            route = _route_of(path.replace("/?", "/"))
            if route is not None and not route.canonical:
                path = path.replace("/?", "").rstrip("/") or "/"
            documented = _documented(view_class, path, route)
            callback = documented.as_view(callback.actions, **callback.initkwargs)
        described.append((path, path_regex, method, callback))
    return described


def postprocess_schema(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Add the result bodies as named components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(RESULT_COMPONENTS)
    return result
