"""URL configuration: the front page, the API and its schema, the old service's routes, health,
metrics, admin."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import path

from compute.api.schema import DocsView, SchemaView
from compute.api.urls import api_urlpatterns, seed_urlpatterns
from compute.http.routes import API_PREFIX
from compute.web import views as web

from . import views

urlpatterns = [
    path("", web.front, name="front"),
    path("favicon.ico", web.favicon, name="favicon"),
    path(settings.ADMIN_URL, admin.site.urls),
    path(f"{API_PREFIX}schema/", SchemaView.as_view(), name="schema"),
    path(f"{API_PREFIX}docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    *api_urlpatterns(),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    *seed_urlpatterns(),
]

handler400 = "mathsite.views.bad_request"
handler403 = "mathsite.views.permission_denied"
handler404 = "mathsite.views.not_found"
handler500 = "mathsite.views.server_error"
