"""Who gets HTML at ``/`` (``compute.web.negotiation``)."""

import pytest

from compute.web.negotiation import wants_html


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html", True),
        ("TEXT/HTML; charset=utf-8", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json, text/html;q=0.1", True),
        ("text/html;q=0", False),
        ("text/html;q=x", False),
        ("*/*", False),
        ("text/*", False),
        ("application/json", False),
        ("", False),
        (None, False),
    ],
)
def test_html_only_when_text_html_is_named(accept, html):
    assert wants_html(accept) is html
