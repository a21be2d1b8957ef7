"""A WSGI app for ``tests/test_kept_hits.py`` that says which way each answer went.

Its ``kept_reply`` answers a GET of ``/kept`` (as ``ResultFront`` answers a
repeated hit); everything else, and everything under a server that does not
ask ``kept_reply`` first, is answered by its ``__call__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Kept:
    """What a server sends for a kept answer (``compute.http.kept.Kept``'s fields)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    content: bytes = b""


KEPT_BODY = b"sent by the server's wrapper"
CALLED_BODY = b"answered by the application's __call__"
KEPT = Kept(203, [("Content-Type", "text/plain"), ("X-Way", "kept")], KEPT_BODY)
# What the request must be, and what else ``ResultFront.kept_answer`` reads of it.
ASKED = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/kept",
    "QUERY_STRING": "",
    "wsgi.url_scheme": "http",
}
READ = ("HTTP_HOST", "HTTP_ACCEPT_ENCODING")


class App:
    """Kept answers for ``GET /kept``; ``__call__`` for the rest."""

    def kept_reply(self, request: dict[str, Any]) -> Kept | None:
        """``KEPT`` for a GET of ``/kept`` whose request carries what ``ResultFront`` reads."""
        if all(request.get(name) == value for name, value in ASKED.items()) and all(
            name in request for name in READ
        ):
            return KEPT
        return None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Way", "call")])
        return [CALLED_BODY]


app = App()
