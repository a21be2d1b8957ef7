"""The result API's URLconf, derived from the route table (``compute.http.routes``).

The canonical routes are a DRF router's (list and detail of each kind,
under ``API_PREFIX``; the detail regex uses the table's ``N_SEGMENT``), then
the table's pictures (``picture_routes``); the old service's routes are the
table's other entries. ``mathsite/urls.py``
includes both.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path
from rest_framework.routers import DefaultRouter

from compute.api.views import ConvergenceView, FibViewSet, PiViewSet, ResultViewSet
from compute.domain.query import FIB, PI
from compute.http.routes import API_PREFIX, picture_routes, result_routes

VIEWSETS: dict[str, type[ResultViewSet]] = {PI: PiViewSet, FIB: FibViewSet}
_ACTIONS = {"get": "retrieve", "delete": "destroy"}


PICTURE_VIEWS = {"pi-convergence": ConvergenceView}


def api_urlpatterns(api_prefix: str = API_PREFIX) -> list[URLResolver | URLPattern]:
    """Return the canonical API under ``api_prefix``: the router's routes, then the pictures."""
    router = DefaultRouter()
    router.include_format_suffixes = False  # ?format= is a result option, not a renderer
    for kind, viewset in VIEWSETS.items():
        router.register(kind, viewset, basename=kind)
    pictures = [
        re_path(f"^{route.regex}$", PICTURE_VIEWS[route.name].as_view(), name=route.name)
        for route in picture_routes(api_prefix)
    ]
    return [path(api_prefix, include(router.urls)), *pictures]


def seed_urlpatterns(api_prefix: str = API_PREFIX) -> list[URLPattern]:
    """Return the old Flask service's routes (no prefix, optional trailing slash)."""
    return [
        re_path(
            f"^{route.regex}$",
            VIEWSETS[route.kind].as_view(_ACTIONS, default_n=route.default_n),
            name=route.name,
        )
        for route in result_routes(api_prefix)
        if not route.canonical
    ]
