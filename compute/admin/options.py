"""``ComputedResultAdmin``: browse results, see what Redis holds, evict or recompute.

Rows are read-only (the log is written only by ``compute.services``); the
admin adds what staff need on top of Django's declarative options:

- the changelist never loads the stored values, counts at most a capped
  number of rows and asks Redis about a whole page at once
  (``compute.admin.changelist``);
- actions evict or recompute selected rows and say in the message bar what
  they did, including when Redis could not be reached; each needs its own
  permission (``compute.evict_computedresult``,
  ``compute.recompute_computedresult``; superusers have all), checked by
  Django's ``allowed_permissions`` mechanism, so an action a user lacks is
  neither offered nor run on a forged POST; deleting a row evicts its cache
  entry through the service, which refuses while Redis is unreachable (the
  delete page and the bulk action then delete nothing and say why);
- ``statistics/`` (linked from the admin index and the changelist) shows
  counts by kind, the cache hit ratio and a compute-time chart
  (``statistics_view``, with its figures from ``compute.admin.statistics``).

The cache is a class attribute (``result_cache``) so tests can point the
admin at an unreachable Redis without touching the rest of the process.
The site's header, titles and index are ``mathsite.admin.MathsiteAdminSite``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from compute import services
from compute.admin.changelist import CappedCountPaginator, ResultChangeList, cache_states
from compute.admin.statistics import statistics_figures
from compute.admission import System
from compute.cache import ResultCache, result_cache
from compute.domain import formats
from compute.domain.kinds import registry
from compute.http.routes import convergence_path, result_path
from compute.models import ComputedResult

# The largest value a PositiveBigIntegerField holds on every database.
_MAX_N = 2**63 - 1
_SEARCH_TERM = re.compile(r"[0-9]+")
# Rows loaded per batch when an action runs over a whole (filtered) log.
_ACTION_BATCH = 1000
# Leading and trailing characters of a value shown in the changelist.
LIST_PREVIEW_EDGE = 10


def _names(rows: Iterable[ComputedResult], limit: int = 5) -> str:
    """Return "fib(10), pi(100) (50 digits) and 3 more" for a message."""
    names = [str(row) for row in rows]
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


class _DeleteRefused(Exception):
    """The service refused to delete ``rows`` (Redis unreachable); raised to roll Django's
    delete transaction back (its log entries, and rows deleted before the refusal)."""

    def __init__(self, rows: list[ComputedResult]) -> None:
        super().__init__(rows)
        self.rows = rows


def _plural(count: int) -> str:
    return f"{count} result" if count == 1 else f"{count} results"


@admin.register(ComputedResult)
class ComputedResultAdmin(admin.ModelAdmin):
    """Browse computed results; evict or recompute them; rows are never edited by hand."""

    result_cache: ResultCache = result_cache
    # Recomputing runs inside the request: a bound keeps it well under a
    # worker timeout even for the largest results.
    recompute_limit = 100
    statistics_template = "admin/compute/computedresult/statistics.html"

    list_display = [
        "kind",
        "n_display",
        "precision_display",
        "preview_display",
        "digits_display",
        "compute_time",
        "computed_when",
        "in_redis",
    ]
    list_display_links = ["kind", "n_display"]
    list_filter = ["kind", "computed_at"]
    date_hierarchy = "computed_at"
    search_fields = ["=n"]
    search_help_text = "Search by n: a whole number, or several separated by spaces."
    ordering = ["-computed_at", "-id"]
    list_per_page = 50
    list_max_show_all = 200
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole log
    # delete_selected: Django's own, made all or nothing (see the method).
    actions = ["delete_selected", "evict_from_cache", "recompute"]

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "kind",
                    "n_display",
                    "precision_display",
                    "digits_display",
                    "compute_time",
                    "computed_when",
                    "cache_status",
                    "api_link",
                ]
            },
        ),
        ("Value", {"fields": ["full_value"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    class Media:
        css = {"all": ["compute/admin/results.css"]}
        js = ["compute/admin/copy.js"]

    # --- permissions: the log is written by the service only ----------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are created by computing results, never by hand."""
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ComputedResult | None = None
    ) -> bool:
        """Rows are never edited: a result is a pure function of its inputs."""
        return False

    def has_evict_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may evict results from the cache (the "evict" action)."""
        return request.user.has_perm(f"{self.opts.app_label}.evict_{self.opts.model_name}")

    def has_recompute_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may recompute results (the "recompute" action)."""
        return request.user.has_perm(f"{self.opts.app_label}.recompute_{self.opts.model_name}")

    # --- the changelist -------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Use the changelist that defers values and checks Redis once per page."""
        return ResultChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Match n exactly; anything but whole numbers matches nothing (never an error)."""
        terms = search_term.replace(",", " ").split()
        if not terms:
            return queryset, False
        values = set()
        for term in terms:
            if not _SEARCH_TERM.fullmatch(term):  # ASCII digits only, as in the API
                self._explain_search(request, term)
                return queryset.none(), False
            digits = term.lstrip("0") or "0"
            if len(digits) <= 19 and int(digits) <= _MAX_N:
                values.add(int(digits))
        # Naming every kind lets the database use the unique index (kind, n,
        # precision), whose first column is the kind: n alone has no index and
        # would be a scan of the whole log (0.5 s at a million rows on PostgreSQL).
        return queryset.filter(kind__in=registry.names(), n__in=values), False

    # Numbers, times and dates read the same on the list, the detail page and
    # the statistics page: each is written by ``compute.domain.formats``.

    @admin.display(description="n", ordering="n")
    def n_display(self, row: ComputedResult) -> str:
        return formats.number(row.n)

    def _explain_search(self, request: HttpRequest, term: str) -> None:
        """Say why a search that is not a number matches nothing (once per request)."""
        if getattr(request, "_search_explained", False):
            return
        request._search_explained = True  # type: ignore[attr-defined]
        self.message_user(
            request,
            f"Search is by n, a whole number written with the digits 0-9: “{term}” is not "
            "one, so no result matches. Separate several values of n with spaces.",
            messages.WARNING,
        )

    @admin.display(description="precision", ordering="precision")
    def precision_display(self, row: ComputedResult) -> str:
        return registry.get(row.kind).precision_label(digits=row.digits, mod=row.mod)

    @admin.display(description="preview")
    def preview_display(self, row: ComputedResult) -> SafeString:
        # The stored preview is the value itself or "first...last" digits;
        # the list shows fewer of them so that every column fits a laptop screen.
        head, _, tail = row.preview.partition("...")
        if not tail and len(head) <= 2 * LIST_PREVIEW_EDGE + 1:
            return format_html('<span class="result-preview">{}</span>', row.preview)
        return format_html(
            '<span class="result-preview">{}…{}</span> <small class="quiet">({} digits)</small>',
            head[:LIST_PREVIEW_EDGE],
            (tail or head)[-LIST_PREVIEW_EDGE:],
            formats.number(row.length),
        )

    @admin.display(description="digits", ordering="length")
    def digits_display(self, row: ComputedResult) -> str:
        return formats.number(row.length)

    @admin.display(description="compute time", ordering="compute_ms")
    def compute_time(self, row: ComputedResult) -> str:
        return formats.milliseconds(row.compute_ms)

    @admin.display(description="computed at", ordering="computed_at")
    def computed_when(self, row: ComputedResult) -> str:
        return formats.moment(timezone.localtime(row.computed_at))

    @admin.display(description="in Redis")
    def in_redis(self, row: ComputedResult) -> str:
        # Set by ResultChangeList for the whole page at once; never looked up per row.
        return getattr(row, "cache_state", "unknown")

    # --- the detail page ------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: ComputedResult | None = None) -> Any:
        """Add its derived picture to the page of a result whose kind has one (pi's convergence)."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and registry.get(obj.kind).picture is not None:
            fieldsets = [*fieldsets, ("Convergence", {"fields": ["convergence"]})]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: ComputedResult | None = None) -> Any:
        return [*self.readonly_fields, "convergence"]

    @admin.display(description="pi - pi(k), k = 1..n")
    def convergence(self, row: ComputedResult) -> SafeString:
        url = convergence_path(row.n)
        return format_html(
            '<img class="result-convergence" src="{}" width="760" height="420" '
            'alt="pi - pi(k) against k, log-log, k = 1 to {}"><br><a href="{}">{}</a>',
            url,
            formats.number(row.n),
            url,
            url,
        )

    @staticmethod
    def caller(request: HttpRequest) -> System:
        """Return who asks the service for the admin's computations: its staff user, by name."""
        return System(f"admin:{request.user.get_username()}")

    def may(self, request: HttpRequest, action: str) -> bool:
        """Return True if the user may ``action`` ("evict" or "recompute") results.

        By the permission ``compute.<action>_computedresult`` where it exists,
        else (no such permission defined) by being staff who may view results.
        """
        codename = f"{action}_{self.opts.model_name}"
        defined = Permission.objects.filter(
            content_type__app_label=self.opts.app_label, codename=codename
        ).exists()
        if defined:
            return request.user.has_perm(f"{self.opts.app_label}.{codename}")
        return request.user.is_staff and self.has_view_permission(request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The detail page, with evict and recompute buttons for those who may use them."""
        context = {
            **(extra_context or {}),
            "may_evict": self.may(request, "evict"),
            "may_recompute": self.may(request, "recompute"),
        }
        return super().change_view(request, object_id, form_url, context)

    def row_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """Evict or recompute one result from its detail page (POST), then go back to it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.may(request, action):
            raise PermissionDenied
        row = self.get_object(request, unquote(object_id))
        if row is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        queryset = ComputedResult.objects.filter(pk=row.pk)
        if action == "evict":
            self.evict_from_cache(request, queryset)
        else:
            self.recompute(request, queryset)
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        return HttpResponseRedirect(reverse(name, args=[quote(row.pk)]))

    @admin.display(description="in Redis now")
    def cache_status(self, row: ComputedResult) -> str:
        return cache_states(self.result_cache, [row])[0]

    @admin.display(description="API URL")
    def api_link(self, row: ComputedResult) -> SafeString:
        url = result_path(services.query_for_row(row))
        return format_html('<a href="{}" class="result-api-link">{}</a>', url, url)

    @admin.display(description="value")
    def full_value(self, row: ComputedResult) -> SafeString:
        return format_html(
            '<div class="result-value-tools">'
            '<button type="button" class="button result-copy" data-copy-target="result-value">'
            "Copy value</button> "
            '<span class="result-copy-status" aria-live="polite"></span>'
            '<span class="quiet">{} characters</span></div>'
            '<pre id="result-value" class="result-value" tabindex="0">{}</pre>',
            formats.number(len(row.value)),
            row.value,
        )

    # --- actions --------------------------------------------------------------------

    @admin.action(description="Evict selected results from the cache", permissions=["evict"])
    def evict_from_cache(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        """Delete the Redis entries of the selected rows (the rows stay in the log)."""
        evicted: list[ComputedResult] = []
        batch: list[ComputedResult] = []
        total = queryset.count()
        for row in queryset.only("id", "kind", "n", "precision", "modulus").iterator(_ACTION_BATCH):
            batch.append(row)
            if len(batch) == _ACTION_BATCH:
                if not services.results_evict(rows=batch, cache=self.result_cache):
                    break
                evicted += batch
                batch = []
        else:
            if batch and services.results_evict(rows=batch, cache=self.result_cache):
                evicted += batch
        if len(evicted) == total:
            self.message_user(
                request,
                f"Evicted {_plural(total)} from the cache: {_names(evicted)}. "
                "Their log rows stay; the next request reads them from the log.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request,
                f"Could not reach Redis: evicted {len(evicted)} of {_plural(total)}; "
                "the others are still cached. Try again when Redis is back.",
                messages.ERROR,
            )

    @admin.action(description="Recompute selected results", permissions=["recompute"])
    def recompute(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        """Compute the selected results again, refreshing value, size, time and cache entry."""
        total = queryset.count()
        if total > self.recompute_limit:
            self.message_user(
                request,
                f"Nothing was recomputed: {total} results were selected and at most "
                f"{self.recompute_limit} are recomputed at a time.",
                messages.ERROR,
            )
            return
        rows = list(queryset)
        count = services.results_recompute(
            rows=rows, caller=self.caller(request), cache=self.result_cache
        )
        spent = formats.milliseconds(sum(row.compute_ms for row in rows))
        self.message_user(
            request,
            f"Recomputed {_plural(count)} in {spent}: {_names(rows)}. "
            "Their log rows have the new value and compute time.",
            messages.SUCCESS,
        )
        if not self.result_cache.available:
            self.message_user(
                request,
                "Could not reach Redis: the cache entries were not refreshed "
                "(requests read the new values from the log).",
                messages.WARNING,
            )

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's delete page; with Redis unreachable, nothing is deleted and the user is told.

        Django runs the deletion in a transaction (its log entry, then
        ``delete_model``): the refusal raised there rolls it back, and the
        user goes back to the result's page with the reason.
        """
        try:
            return super().delete_view(request, object_id, extra_context)
        except _DeleteRefused as refused:
            self._report_refused(request, refused.rows)
            name = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
            return HttpResponseRedirect(reverse(name, args=[object_id]))

    @admin.action(
        description=gettext_lazy("Delete selected %(verbose_name_plural)s"), permissions=["delete"]
    )
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[ComputedResult]
    ) -> HttpResponse | None:
        """Django's bulk delete, all or nothing: with Redis unreachable no row is deleted.

        Django's action logs the deletions, calls ``delete_queryset`` and
        reports success; run in one transaction, a refusal from
        ``delete_queryset`` undoes the rows it had deleted and the log
        entries (their cache entries, already evicted, refill from the log).
        """
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                return django_delete_selected(self, request, queryset)
        except _DeleteRefused as refused:
            self._report_refused(request, refused.rows)
            return None

    def delete_model(self, request: HttpRequest, obj: ComputedResult) -> None:
        """Delete the row and its cache entry (everywhere) through the service.

        Raise ``_DeleteRefused`` if Redis cannot be reached: the service then
        deletes nothing (``services.result_delete``), and ``delete_view`` says so.
        """
        if not services.result_delete(query=services.query_for_row(obj), cache=self.result_cache):
            raise _DeleteRefused([obj])
        self.message_user(request, f"Evicted the cache entry of {obj}.", messages.INFO)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        """Delete the rows one by one through the service, which evicts each from the cache.

        Raise ``_DeleteRefused`` at the first row the service refuses (Redis
        unreachable); ``delete_selected``'s transaction then undoes the others.
        """
        rows = list(queryset.only("id", "kind", "n", "precision", "modulus"))
        for row in rows:
            query = services.query_for_row(row)
            if not services.result_delete(query=query, cache=self.result_cache):
                raise _DeleteRefused(rows)
        if rows:
            self.message_user(
                request,
                f"Evicted the cache entries of {_plural(len(rows))}: {_names(rows)}.",
                messages.INFO,
            )

    def _report_refused(self, request: HttpRequest, rows: list[ComputedResult]) -> None:
        self.message_user(
            request,
            f"Could not reach Redis: nothing was deleted ({_names(rows)}). Deleting a result "
            "needs Redis, or its cache entry would be served again without a log row once "
            "Redis is back. Try again when Redis is back.",
            messages.ERROR,
        )

    # --- the statistics view --------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Add ``statistics/`` and the detail page's evict and recompute in front of the
        model's URLs (before the object catch-all)."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view(self.statistics_view)
        rows = [
            path(
                f"<path:object_id>/{action}/",
                self.admin_site.admin_view(self.row_action_view),
                {"action": action},
                name=f"{prefix}_{action}",
            )
            for action in ("evict", "recompute")
        ]
        return [path("statistics/", view, name=f"{prefix}_statistics"), *rows, *super().get_urls()]

    def statistics_view(self, request: HttpRequest) -> HttpResponse:
        """Show counts, the cache hit ratio and the compute-time chart (staff who can view)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.current_app = self.admin_site.name  # as Django's own admin views do
        context = {
            **self.admin_site.each_context(request),
            "title": "Result statistics",
            "opts": self.opts,
            **statistics_figures(cache=self.result_cache),
        }
        return TemplateResponse(request, self.statistics_template, context)
