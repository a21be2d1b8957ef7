"""API routes: a DRF router for /api/pi/ and /api/fib/, and the old service's routes."""

from __future__ import annotations

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from compute.api.views import FibViewSet, PiViewSet

router = DefaultRouter()
router.include_format_suffixes = False  # ?format= is a result option here, not a renderer
router.register("pi", PiViewSet, basename="pi")
router.register("fib", FibViewSet, basename="fib")

api_urlpatterns = router.urls

_actions = {"get": "retrieve", "delete": "destroy"}
# Seed-compatible routes of the old Flask service: no /api prefix, no
# trailing slash needed, and /pi?n=N with N defaulting to 100.
seed_urlpatterns = [
    re_path(r"^pi/(?P<n>[^/]+)/?$", PiViewSet.as_view(_actions), name="seed-pi"),
    re_path(r"^fib/(?P<n>[^/]+)/?$", FibViewSet.as_view(_actions), name="seed-fib"),
    re_path(r"^pi/?$", PiViewSet.as_view(_actions), name="seed-pi-query"),
]
