"""The mathsite admin site: Django's ``AdminSite`` with the project's header and index.

``mathsite.apps.MathsiteAdminConfig`` makes it the default site, so
``django.contrib.admin.site`` (the URLconf's ``admin.site.urls``, every
``@admin.register``) is an instance of this class; nothing sets attributes
on the site at import. The result log's admin is ``compute.admin``.

It lives in the project package, not in ``compute.admin``: Django imports
``default_site`` while it sets up ``admin.site``, and importing anything in
``compute.admin`` runs that package's registrations, which use ``admin.site``
before it exists.
"""

from __future__ import annotations

from django.contrib import admin


class MathsiteAdminSite(admin.AdminSite):
    """The admin of the result log, titled for mathsite, with statistics linked from its index."""

    site_header = "mathsite administration"
    site_title = "mathsite admin"
    # Adds the link to the result statistics to the admin index.
    index_template = "admin/compute/index.html"
    # One app with one model: the navigation sidebar would only repeat the
    # breadcrumb, and its width is what pushed the changelist's last columns
    # ("in Redis", the date) behind a scrollbar on a 1400 px screen.
    enable_nav_sidebar = False
