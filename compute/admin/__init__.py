"""The Django admin of the result log; importing it registers ``ComputedResultAdmin``.

``options`` (the ModelAdmin and its statistics view), ``changelist`` (the
changelist, paginator and date-hierarchy queryset it uses), ``statistics``
(what the statistics page shows) and ``charts`` (log-log SVG charts, plain
Python). The site itself is ``mathsite.admin.MathsiteAdminSite``.
"""

from compute.admin import options  # noqa: F401 - registers ComputedResultAdmin
