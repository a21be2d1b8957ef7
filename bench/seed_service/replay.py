"""A constant WSGI app that sends one captured response: mathsite's cached hit, byte for byte.

The constant app (``floor``) sends two headers; a cached hit of mathsite
sends a dozen (ETag, Cache-Control, Vary, Cache-Status, the CORS and
security headers), and a server converts and writes each of them on every
request. Served beside the two, this app shows what the server allows for
mathsite's very response with no application work at all: the gap between
it and ``floor`` is the headers' cost, the gap between mathsite and it is
mathsite's own.

The response is read once, at import, from the JSON file that
``REPLAY_RESPONSE_FILE`` names: ``{"status": "200 OK", "headers": [[name,
value], ...], "body": "..."}`` (``bench.ceiling`` writes it from a reply of
mathsite, without the headers the server adds itself: ``server``, ``date``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_captured = json.loads(Path(os.environ["REPLAY_RESPONSE_FILE"]).read_text())
STATUS: str = _captured["status"]
HEADERS = [(name, value) for name, value in _captured["headers"]]
BODY = _captured["body"].encode("latin-1")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer any request with the captured response."""
    start_response(STATUS, HEADERS)
    return [BODY]
