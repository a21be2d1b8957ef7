"""Who gets the HTML page: clients whose ``Accept`` names ``text/html``, nobody else.

Programs (``*/*``, no ``Accept``, ``application/json``) get JSON, so a
``curl`` of the site root stays machine-readable while a browser, which
always names ``text/html``, gets the page.

    >>> wants_html("text/html,application/xhtml+xml,*/*;q=0.8"), wants_html("*/*")
    (True, False)
    >>> wants_html("text/html;q=0"), wants_html(None)
    (False, False)
"""

from __future__ import annotations

from compute.http.quality import quality


def wants_html(accept: str | None) -> bool:
    """Return True when ``accept`` names text/html with a weight above 0 (RFC 9110)."""
    for item in (accept or "").split(","):
        media_type, _, params = item.partition(";")
        if media_type.strip().lower() != "text/html":
            continue
        return quality(params) > 0
    return False
