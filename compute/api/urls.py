"""The result API's URLconf, derived from the route table (``compute.http.routes``).

The canonical routes are a DRF router's (list and detail of each registered
kind, ``compute.domain.kinds``,
under ``API_PREFIX``; the detail regex uses the table's ``N_SEGMENT``), then
the table's pictures (``picture_routes``); the old service's routes are the
table's other entries. ``mathsite/urls.py``
includes both.
"""

from __future__ import annotations

import functools

from django.urls import URLPattern, URLResolver, include, path, re_path
from rest_framework.routers import DefaultRouter

from compute.api.views import ConvergenceView, ResultViewSet, viewset_for
from compute.domain.kinds import registry
from compute.http.routes import API_PREFIX, picture_routes, result_routes

_ACTIONS = {"get": "retrieve", "delete": "destroy"}


PICTURE_VIEWS = {"pi-convergence": ConvergenceView}


@functools.cache
def viewset_of(kind: str) -> type[ResultViewSet]:
    """Return the viewset of the registered kind named ``kind`` (built once per name)."""
    return viewset_for(registry.get(kind))


def api_urlpatterns(api_prefix: str = API_PREFIX) -> list[URLResolver | URLPattern]:
    """Return the canonical API under ``api_prefix``: the router's routes, then the pictures."""
    router = DefaultRouter()
    router.include_format_suffixes = False  # ?format= is a result option, not a renderer
    for kind in registry.names():
        router.register(kind, viewset_of(kind), basename=kind)
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
            viewset_of(route.kind).as_view(_ACTIONS, default_n=route.default_n),
            name=route.name,
        )
        for route in result_routes(api_prefix)
        if not route.canonical
    ]
