"""JSON responses written the way every body of this service is: compact, no spaces.

Django's ``JsonResponse`` writes ``{"detail": "Not found."}`` (``json.dumps``'
default separators), while DRF's renderer and the hit protocol write
``{"detail":"Not found."}``. Views outside DRF (the error handlers, the
metrics gate, the front page's index) answer with ``CompactJsonResponse``
so a client sees one style everywhere.

    >>> CompactJsonResponse({"detail": "Not found."}, status=404).content
    b'{"detail":"Not found."}'
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

SEPARATORS = (",", ":")


class CompactJsonResponse(JsonResponse):
    """A ``JsonResponse`` without spaces after ``,`` and ``:``."""

    def __init__(self, data: Any, **kwargs: Any) -> None:
        params = {"separators": SEPARATORS, **kwargs.pop("json_dumps_params", {})}
        super().__init__(data, json_dumps_params=params, **kwargs)
