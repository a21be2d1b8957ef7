"""Admin for the result log: read-only rows, filters, search, cache actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .cache import result_cache
from .models import ComputedResult


@admin.register(ComputedResult)
class ComputedResultAdmin(admin.ModelAdmin):
    """Browse computed results; evict or recompute them; rows are never edited by hand."""

    list_display = [
        "kind",
        "n",
        "precision",
        "preview",
        "length",
        "compute_ms",
        "computed_at",
        "in_redis",
    ]
    list_filter = ["kind", "computed_at"]
    search_fields = ["=n"]
    date_hierarchy = "computed_at"
    ordering = ["-computed_at", "-id"]
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = [
        "kind",
        "n",
        "precision",
        "value",
        "preview",
        "length",
        "compute_ms",
        "computed_at",
    ]
    actions = ["evict_from_cache", "recompute"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ComputedResult]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("value")
        return queryset

    def get_search_results(self, request, queryset, search_term):  # noqa: ANN001, ANN201
        # n is numeric: a non-numeric term matches nothing instead of erroring.
        term = search_term.strip()
        if term and not term.isdigit():
            return queryset.none(), False
        return super().get_search_results(request, queryset, term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ComputedResult | None = None
    ) -> bool:
        return False

    @admin.display(description="in Redis")
    def in_redis(self, row: ComputedResult) -> str:
        states = getattr(self, "_page_states", None)
        if states is None:
            return "unknown"
        return states.get(row.pk, "unknown")

    def get_changelist_instance(self, request):  # noqa: ANN001, ANN201
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        found = result_cache.exists_many([services.query_for_row(row) for row in rows])
        if found is None:
            self._page_states = {row.pk: "unknown" for row in rows}
        else:
            self._page_states = {
                row.pk: ("yes" if hit else "no") for row, hit in zip(rows, found, strict=True)
            }
        return changelist

    @admin.action(description="Evict selected results from the cache")
    def evict_from_cache(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        rows = list(queryset)
        if services.results_evict(rows=rows):
            self.message_user(request, f"Evicted {len(rows)} result(s) from the cache.")
        else:
            self.message_user(
                request, "Could not reach Redis; nothing was evicted.", messages.ERROR
            )

    @admin.action(description="Recompute selected results")
    def recompute(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        count = services.results_recompute(rows=list(queryset))
        self.message_user(request, f"Recomputed {count} result(s).")

    def delete_model(self, request: HttpRequest, obj: ComputedResult) -> None:
        services.result_delete(query=services.query_for_row(obj))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ComputedResult]) -> None:
        for row in queryset:
            services.result_delete(query=services.query_for_row(row))
