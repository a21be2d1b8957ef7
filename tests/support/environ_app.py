"""A WSGI app for ``tests/test_request_environ.py``: answers with the names in its environ.

Served by the project's server command, it shows what granian hands an
application with each request (``launcher.shared_listener.request_environ``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer any request with the sorted names of its environ, as JSON."""
    body = json.dumps(sorted(environ)).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
