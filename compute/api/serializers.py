"""DRF serializers: validating result requests and shaping log items."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from compute.conf import app_settings
from compute.domain.kinds.base import Kind
from compute.domain.query import InvalidQuery, ResultQuery, parse_query
from compute.http.routes import result_path
from compute.models import ComputedResult
from compute.services import query_for_row


class ResultQuerySerializer(serializers.Serializer):
    """Validate n (path), digits, mod and format (query) into a ``ResultQuery``.

    The fields are strings on purpose: only ASCII digits count as integers
    here, which DRF's IntegerField (int() underneath) does not enforce.
    Pass the kind in the context: ``context={"kind": "pi"}``.
    """

    n = serializers.CharField(trim_whitespace=False, allow_blank=True)
    digits = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    format = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    mod = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["query"] = parse_query(
                self.context["kind"],
                attrs.get("n"),
                attrs.get("digits"),
                attrs.get("format"),
                attrs.get("mod"),
                limits=app_settings.limits,
            )
        except InvalidQuery as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}) from exc
        return attrs

    @property
    def query(self) -> ResultQuery:
        """Return the validated query (after ``is_valid``)."""
        return self.validated_data["query"]


class ResultLogItemSerializer(serializers.ModelSerializer):
    """A log row as a list item: never the full value, a URL to it instead."""

    digits = serializers.IntegerField(allow_null=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = ComputedResult
        fields = ["n", "digits", "preview", "length", "compute_ms", "computed_at", "url"]

    def get_url(self, row: ComputedResult) -> str:
        path = result_path(query_for_row(row))
        return self.context["request"].build_absolute_uri(path)


def log_item_serializer(kind: Kind) -> type[ResultLogItemSerializer]:
    """Return the list-item serializer of ``kind``: the common fields, plus one per option
    beyond ``digits`` (fib's ``mod``: M of a residue, else null), after ``digits``."""
    extra = [option.slot for option in kind.options if option.slot != "digits"]
    if not extra:
        return ResultLogItemSerializer
    fields = ResultLogItemSerializer.Meta.fields
    meta = type(
        "Meta", (ResultLogItemSerializer.Meta,), {"fields": [*fields[:2], *extra, *fields[2:]]}
    )
    attributes: dict[str, Any] = {
        slot: serializers.IntegerField(allow_null=True, read_only=True) for slot in extra
    }
    attributes.update(
        Meta=meta, __module__=__name__, __doc__=f"A {kind.name} log row as a list item."
    )
    return type(
        f"{kind.name.capitalize()}LogItemSerializer", (ResultLogItemSerializer,), attributes
    )
