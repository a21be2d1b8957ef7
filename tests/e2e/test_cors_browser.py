"""Browsers on other origins, in a real headless Chromium: two sites, fetch() between them.

The API is the live server at ``http://localhost:<port>``; the page that
reads from it is a tiny static HTML served here from
``http://127.0.0.1:<another port>``, another site (not another port of
one host). From that page, fetch() reads a result and the headers the API
exposes (``Cache-Status``, ``ETag``; not ``Allow``), a 304 and a 400; its
DELETE with a staff token is refused by the browser itself (the preflight
fails) until the page's origin is listed in ``CORS_DELETE_ORIGINS``, and
then goes through. A screenshot of what the page read goes to
``test-artifacts/``. Reference values: a Fibonacci loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token

from compute.models import ComputedResult
from tests.e2e.test_admin_browser import HEIGHT, WIDTH, fib_reference, wait_for

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>another site</title></head>
<body><h1>Another site</h1><pre id="read"></pre></body></html>
"""

# fetch() from the page: resolves to what the script may see of the response.
FETCH = """
const [url, options, done] = arguments;
fetch(url, {cache: "no-store", ...options})
  .then(async (r) => done({
    status: r.status,
    cacheStatus: r.headers.get("Cache-Status"),
    etag: r.headers.get("ETag"),
    allow: r.headers.get("Allow"),
    type: r.headers.get("Content-Type"),
    body: await r.text(),
  }))
  .catch((e) => done({error: String(e)}));
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format, *args) -> None:  # quiet
        pass


@pytest.fixture
def other_site() -> Iterator[str]:
    """Serve the page at http://127.0.0.1:<port>/ (another site than localhost)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def staff_token(transactional_db) -> str:
    user = User.objects.create_user("remote-staff", password="e2e-remote-pass", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="delete_computedresult"))
    return Token.objects.create(user=user).key


def fetch(driver, url: str, **options) -> dict:
    return driver.execute_async_script(FETCH, url, options)


def test_a_page_on_another_site_reads_results_and_deletes_only_when_listed(
    browser, artifacts, live_server, other_site, staff_token, settings
):
    driver = browser
    driver.set_window_size(WIDTH, HEIGHT)
    api = live_server.url  # http://localhost:<port>
    assert api.startswith("http://localhost:")
    driver.get(f"{other_site}/")
    wait_for(driver, "#read")
    assert driver.execute_script("return location.origin") == other_site
    url = f"{api}/api/fib/300/"
    expected = {"cached": False, "result": fib_reference(300), "n": 300}

    computed = fetch(driver, url)
    assert computed["status"] == 200, computed
    assert json.loads(computed["body"]) == expected
    assert computed["cacheStatus"] == "mathsite; fwd=miss; stored"  # exposed
    assert computed["etag"] == 'W/"fib-300-v1"'  # exposed
    assert computed["allow"] is None  # not exposed: the browser hides it
    cached = fetch(driver, url)
    assert json.loads(cached["body"]) == {**expected, "cached": True}
    assert cached["cacheStatus"] == "mathsite; hit; detail=in-process"

    # If-None-Match is not a simple header: its preflight passes, then a 304.
    not_modified = fetch(driver, url, headers={"If-None-Match": computed["etag"]})
    assert (not_modified["status"], not_modified["cacheStatus"]) == (304, None)
    refused = fetch(driver, f"{api}/api/fib/abc/")
    assert refused["status"] == 400 and "n" in json.loads(refused["body"])
    picture = fetch(driver, f"{api}/api/pi/300/convergence/")
    assert picture["status"] == 200 and picture["type"] == "image/svg+xml"
    assert picture["cacheStatus"] == "mathsite; fwd=miss; stored"

    # DELETE with the token: the preflight does not allow it, so the browser never sends it.
    delete = {"method": "DELETE", "headers": {"Authorization": f"Token {staff_token}"}}
    blocked = fetch(driver, url, **delete)
    assert "error" in blocked and "TypeError" in blocked["error"], blocked
    assert ComputedResult.objects.filter(kind="fib", n=300).exists()
    assert fetch(driver, url)["cacheStatus"] == "mathsite; hit; detail=in-process"

    # Listed, the page's origin may DELETE with its token.
    settings.CORS_DELETE_ORIGINS = [other_site]
    deleted = fetch(driver, url, **delete)
    assert deleted["status"] == 204, deleted
    assert not ComputedResult.objects.filter(kind="fib", n=300).exists()
    again = fetch(driver, url)
    assert json.loads(again["body"]) == expected  # computed anew
    assert again["cacheStatus"] == "mathsite; fwd=miss; stored"

    lines = [
        f"{name}: {answer.get('status', answer.get('error'))} {answer.get('cacheStatus') or ''}"
        for name, answer in (
            ("GET fib(300)", computed),
            ("GET fib(300) again", cached),
            ("GET with If-None-Match", not_modified),
            ("GET fib(abc)", refused),
            ("GET picture", picture),
            ("DELETE, origin not listed", blocked),
            ("DELETE, origin listed", deleted),
            ("GET fib(300) after DELETE", again),
        )
    ]
    driver.execute_script(
        "document.getElementById('read').textContent = arguments[0]", "\n".join(lines)
    )
    driver.save_screenshot(str(artifacts / "cors-01-another-site.png"))
