"""The Django admin of the result log; importing it registers ``ComputedResultAdmin``.

``options`` (the ModelAdmin and its statistics view), ``changelist`` (the
changelist, paginator and date-hierarchy queryset it uses), ``statistics``
(what the statistics page shows; its chart is drawn by the site's one chart
module, ``compute.domain.charts``). The site itself is ``mathsite.admin.MathsiteAdminSite``.
"""

from compute.admin import options  # noqa: F401 - registers ComputedResultAdmin
