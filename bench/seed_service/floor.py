"""The floor: a constant WSGI app, so the report shows what gunicorn alone allows.

Served with the same gunicorn settings as the two services, it answers every
request with a fixed body the size of a small cached hit and does nothing
else; its throughput is the ceiling any Python application reaches on this
server layout, and what is left between it and a service is that service's
own cost per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"cached":true,"result":3.131980747244363,"n":100}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer any request with the constant body."""
    start_response("200 OK", HEADERS)
    return [BODY]
