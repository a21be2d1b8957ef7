"""The project's app configs: Django's admin with mathsite's site as the default one.

Listed in ``INSTALLED_APPS`` in place of ``django.contrib.admin`` ("Overriding
the default admin site" in Django's admin docs). Like the site itself
(``mathsite.admin``), it stays out of ``compute.admin``: Django imports this
module while the app registry is being filled, before models may be imported.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class MathsiteAdminConfig(AdminConfig):
    """Django's admin app, whose ``admin.site`` is a ``MathsiteAdminSite``."""

    default_site = "mathsite.admin.MathsiteAdminSite"
