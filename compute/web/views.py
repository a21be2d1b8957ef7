"""The site root: an HTML front page for browsers, a JSON index of the API for programs.

``front`` answers ``GET /``. A client whose ``Accept`` names ``text/html``
(``negotiation.wants_html``) gets the page: what mathsite is, the form
(answered by ``ask``), the convergence picture and links to the docs, the
schema and the admin. Every other client gets ``api_index``, compact JSON.
Both carry ``Vary: Accept``. ``favicon`` serves the site's icon at
``/favicon.ico`` for browsers that ask for it there.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from compute.conf import app_settings
from compute.domain.kinds import registry
from compute.http.responses import CompactJsonResponse
from compute.http.routes import convergence_path, list_name
from compute.web import ask as asking
from compute.web.negotiation import wants_html

# The picture shown when the form has not named a pi(n).
DEFAULT_PICTURE_N = 1000
FAVICON = Path(__file__).resolve().parent.parent / "static" / "compute" / "favicon.svg"


def _template(name: str) -> str:
    """Return the path of URL ``name`` with ``{n}`` left as a placeholder."""
    return unquote(reverse(name, kwargs={"n": "{n}"}))


def api_index(request: HttpRequest) -> dict[str, str]:
    """Return the API's URLs by name (absolute): lists, result templates, docs, schema."""
    kinds = registry.kinds()
    paths = {
        **{kind.name: reverse(list_name(kind.name)) for kind in kinds},
        **{f"{kind.name}_result": _template(f"{kind.name}-detail") for kind in kinds},
        **{
            kind.picture.replace("-", "_"): _template(kind.picture)
            for kind in kinds
            if kind.picture
        },
        "docs": reverse("api-docs"),
        "schema": reverse("schema"),
        "admin": reverse("admin:index"),
    }
    # Joined by hand: build_absolute_uri would percent-encode the {n} placeholders.
    root = request.build_absolute_uri("/").rstrip("/")
    return {name: root + path for name, path in paths.items()}


def _method_not_allowed(request: HttpRequest) -> CompactJsonResponse:
    response = CompactJsonResponse(
        {"detail": f'Method "{request.method}" not allowed.'}, status=405
    )
    response["Allow"] = "GET, HEAD"
    return response


def front(request: HttpRequest) -> HttpResponse:
    """Answer ``/``: the page for browsers (with a submitted form's answer), else the JSON index."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(request)
    if not wants_html(request.headers.get("Accept")):
        response: HttpResponse = CompactJsonResponse(api_index(request))
    else:
        response = _page(request)
    patch_vary_headers(response, ("Accept",))
    return response


def _page(request: HttpRequest) -> HttpResponse:
    params = {name: request.GET.get(name, "") for name in asking.FIELDS}
    answer = asking.ask(params, request) if asking.submitted(params) else None
    query = answer.query if answer is not None else None
    pictured = query is not None and registry.get(query.kind).picture is not None
    picture_n = query.n if pictured else DEFAULT_PICTURE_N
    context = {
        "form": params,
        "kind": params["kind"] or asking.default_kind(),
        "kinds": registry.kinds(),
        "kinds_about": [
            {"label": kind.label, "text": kind.about(app_settings.limits)}
            for kind in registry.kinds()
        ],
        "options": _form_options(params),
        "answer": answer,
        "picture_n": picture_n,
        "picture_url": convergence_path(picture_n),
        "links": api_index(request),
        "limits": app_settings.limits,
    }
    status = answer.status if answer is not None else 200
    response = render(request, "compute/front.html", context, status=status)
    if answer is not None and answer.retry_after is not None:
        response["Retry-After"] = str(answer.retry_after)
    return response


def _form_options(params: dict[str, str]) -> list[dict[str, str]]:
    """Return the form's option fields: one per option slot, naming the kinds it applies to."""
    fields: dict[str, dict[str, str]] = {}
    for kind in registry.kinds():
        for option in kind.options:
            field = fields.setdefault(
                option.slot,
                {
                    "slot": option.slot,
                    "label": option.label,
                    "kinds": "",
                    "value": "",
                    "placeholder": option.placeholder,
                },
            )
            field["kinds"] = ", ".join(filter(None, (field["kinds"], kind.name)))
            field["value"] = params.get(option.slot, "")
    return list(fields.values())


def favicon(request: HttpRequest) -> HttpResponse:
    """Return the site's icon (SVG) for browsers that look for ``/favicon.ico``."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
