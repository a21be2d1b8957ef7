"""Django's gzip middleware, deciding by the same ``Accept-Encoding`` rules as the hit protocol.

Django's ``GZipMiddleware`` looks for the word "gzip" anywhere in
``Accept-Encoding``, so it would compress for ``gzip;q=0`` (a refusal) and
not for ``GZIP`` or ``*``. This subclass asks ``hit.accepts_gzip`` (RFC
9110) first and leaves refused responses uncompressed; for the others
Django's middleware decides as usual. Result replies are already compressed (or not) by the protocol
and carry their own ``Vary: Accept-Encoding``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware
from django.utils.cache import patch_vary_headers

from compute.http.hit import accepts_gzip


class GZipMiddleware(DjangoGZipMiddleware):
    """Compress only for clients that accept gzip by the RFC's rules."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Leave the response alone when gzip is refused; otherwise compress as Django does."""
        if accepts_gzip(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            # Django's own test (the word gzip) then decides; for "GZIP" or "*"
            # it declines, which leaves a page uncompressed, never wrong.
            return super().process_response(request, response)
        if not response.streaming and len(response.content) >= 200:
            patch_vary_headers(response, ("Accept-Encoding",))  # as Django does before refusing
        return response
