"""The admin site (``mathsite.admin``, made the default by ``mathsite.apps``)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import resolve

from compute.admin import options as result_admin
from compute.models import ComputedResult
from mathsite.admin import MathsiteAdminSite
from tests.admin.pages import INDEX

pytestmark = pytest.mark.django_db


def test_the_default_site_is_a_mathsite_admin_site():
    assert apps.get_app_config("admin").default_site == "mathsite.admin.MathsiteAdminSite"
    served = resolve(INDEX).func.admin_site  # the site behind the URLconf's admin.site.urls
    assert type(served) is MathsiteAdminSite
    assert admin.site == served  # django.contrib.admin.site is that very instance
    assert admin.site.get_model_admin(ComputedResult).admin_site is served
    assert isinstance(admin.site.get_model_admin(ComputedResult), result_admin.ComputedResultAdmin)


def test_the_site_is_customised_by_its_class_not_mutated():
    served = resolve(INDEX).func.admin_site
    for name in ("site_header", "site_title", "index_template"):
        assert name not in vars(served), f"admin.site.{name} was set on the instance"
    assert MathsiteAdminSite.site_header == "mathsite administration"
    assert MathsiteAdminSite.site_title == "mathsite admin"
    assert MathsiteAdminSite.index_template == "admin/compute/index.html"


def test_the_pages_carry_the_sites_header_and_title(admin_client):
    page = admin_client.get(INDEX).content.decode()
    assert "<title>Site administration | mathsite admin</title>" in page
    assert f'<a href="{INDEX}">mathsite administration</a>' in page
    assert "result-statistics-module" in page  # the index template of the site
