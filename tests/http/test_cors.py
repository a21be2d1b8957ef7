"""Browsers on other origins (``compute.http.cors``), through Django's test client.

The reads carry the same CORS headers on every response, whatever the
status and with or without an ``Origin``; a preflight allows DELETE with
a token only to the listed origins, on result URLs; the admin, ``/metrics``,
the docs page and the rest carry none. That the WSGI front replays the
same headers on its hits is tested beside the front (``test_wsgi.py``).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from compute.admission import process_slots
from compute.http.routes import delete_names, picture_routes, read_names, result_routes

pytestmark = pytest.mark.django_db

ORIGIN = "https://elsewhere.example"
LISTED = "https://tools.example"
READ_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Cache-Status, ETag, Retry-After",
}
READS = [
    "/api/fib/10/",
    "/api/pi/10/?digits=5",
    "/api/fib/10/?mod=7",
    "/fib/10",
    "/pi/10",
    "/pi?n=10",
    "/api/pi/10/convergence/",
    "/api/fib/",
    "/api/pi/",
    "/",
    "/api/schema/",
]


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def cors(response) -> dict[str, str]:
    """Return the response's CORS headers (``Access-Control-*``)."""
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def varies_by_origin(response) -> bool:
    return "origin" in response.get("Vary", "").lower()


def with_origin(origin: str | None) -> dict[str, str]:
    return {} if origin is None else {"HTTP_ORIGIN": origin}


def preflight(client, path: str, origin: str, method: str = "GET", headers: str = ""):
    extra = {"HTTP_ACCESS_CONTROL_REQUEST_HEADERS": headers} if headers else {}
    return client.options(
        path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD=method, **extra
    )


@pytest.mark.parametrize("origin", [None, ORIGIN], ids=["no-origin", "origin"])
@pytest.mark.parametrize("path", READS)
def test_every_read_carries_the_same_cors_headers_with_or_without_an_origin(client, path, origin):
    for _ in range(2):  # computed, then cached
        response = client.get(path, **with_origin(origin))
        assert response.status_code == 200, path
        assert cors(response) == READ_HEADERS
        assert not varies_by_origin(response)
    head = client.head(path, **with_origin(origin))
    assert cors(head) == READ_HEADERS


def refusals(client, settings) -> list[tuple[str, object]]:
    """Return (what, response) for a read answered with each status but 200."""
    answers = [
        ("304", client.get("/api/fib/12/", HTTP_IF_NONE_MATCH='W/"fib-12-v1"')),
        ("304 picture", client.get("/api/pi/9/convergence/", HTTP_IF_NONE_MATCH="*")),
        ("400", client.get("/api/fib/abc/")),
        ("400 too big", client.get("/api/fib/99999999999/")),
        ("400 form", client.get("/?kind=fib&n=abc", HTTP_ACCEPT="text/html")),
        ("400 host", client.get("/api/fib/12/", HTTP_HOST="evil.example")),
        ("404 cursor", client.get("/api/fib/?cursor=bm9wZQ")),
        ("405", client.post("/api/fib/12/")),
        ("405 root", client.post("/")),
        ("401 delete", client.delete("/api/fib/12/")),
    ]
    with process_slots.hold("127.0.0.1"):  # this client already computes: 429
        answers.append(("429", client.get("/api/fib/13/")))
        settings.COMPUTE_CONCURRENCY, settings.COMPUTE_QUEUE_LENGTH = 1, 0
        answers.append(("503", client.get("/api/fib/14/", REMOTE_ADDR="127.0.0.2")))
        answers.append(("429 picture", client.get("/api/pi/15/convergence/")))
    return answers


@pytest.mark.parametrize("origin", [None, ORIGIN], ids=["no-origin", "origin"])
def test_errors_refusals_and_304s_of_reads_carry_them_too(client, settings, origin):
    client.defaults.update(with_origin(origin))
    answers = refusals(client, settings)
    statuses = [(what, response.status_code) for what, response in answers]
    assert [int(what[:3]) for what, _ in statuses] == [status for _, status in statuses]
    for what, response in answers:
        assert cors(response) == READ_HEADERS, what
        assert not varies_by_origin(response), what
    retry = dict(answers)["429"]
    assert retry["Retry-After"] and "Retry-After" in READ_HEADERS["Access-Control-Expose-Headers"]


NOT_READS = ["/admin/", "/admin/login/", "/metrics", "/api/docs/", "/healthz", "/nope", "/api/"]


@pytest.mark.parametrize("path", NOT_READS)
def test_the_admin_metrics_docs_and_the_rest_get_no_cors_headers(path):
    client = APIClient(raise_request_exception=False)  # whatever they answer, no CORS
    for response in (
        client.get(path),
        client.get(path, HTTP_ORIGIN=ORIGIN),
        preflight(client, path, ORIGIN),
        preflight(client, path, LISTED, "DELETE", "authorization"),
    ):
        assert cors(response) == {}, (path, response.status_code)


def test_a_preflight_of_a_read_allows_any_origin_to_read_and_nobody_else_to_delete(client):
    response = preflight(client, "/api/fib/10/", ORIGIN, "GET", "if-none-match")
    assert response.status_code == 200 and response.content == b""
    assert cors(response) == {
        "access-control-allow-origin": "*",
        "access-control-expose-headers": "Cache-Status, ETag, Retry-After",
        "access-control-allow-headers": "accept, if-none-match",
        "access-control-allow-methods": "GET, HEAD, OPTIONS",
        "access-control-max-age": "86400",
    }
    assert "Access-Control-Allow-Credentials" not in response  # no cookies cross origins
    deleting = preflight(client, "/api/fib/10/", ORIGIN, "DELETE", "authorization")
    assert "DELETE" not in deleting["Access-Control-Allow-Methods"]
    assert "authorization" not in deleting["Access-Control-Allow-Headers"]


def test_a_listed_origin_may_delete_with_its_token_on_result_urls_only(client, settings):
    settings.CORS_DELETE_ORIGINS = [LISTED]
    for path in ("/api/fib/10/", "/fib/10", "/pi?n=10", "/api/pi/10/?digits=5"):
        allowed = preflight(client, path, LISTED, "DELETE", "authorization")
        assert allowed["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS, DELETE"
        assert allowed["Access-Control-Allow-Headers"] == "accept, if-none-match, authorization"
        assert allowed["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in allowed
        assert varies_by_origin(allowed)  # the preflight alone depends on the origin
        other = preflight(client, path, ORIGIN, "DELETE", "authorization")
        assert "DELETE" not in other["Access-Control-Allow-Methods"]
    for path in ("/api/fib/", "/api/pi/10/convergence/", "/", "/api/schema/"):
        assert (
            "DELETE"
            not in preflight(client, path, LISTED, "DELETE")["Access-Control-Allow-Methods"]
        )

    user = User.objects.create_user("remote", password="pw-remote-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="delete_computedresult"))
    token = Token.objects.create(user=user).key
    assert client.get("/api/fib/10/").status_code == 200
    deleted = client.delete("/api/fib/10/", HTTP_ORIGIN=LISTED, HTTP_AUTHORIZATION=f"Token {token}")
    assert deleted.status_code == 204
    assert cors(deleted) == READ_HEADERS


def test_the_reads_are_derived_from_the_route_table_and_url_names():
    names = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    assert read_names() <= names  # every read is a URL of the site
    table = {route.name for route in (*result_routes(), *picture_routes())}
    assert table <= read_names()
    assert {"pi-list", "fib-list", "front", "schema"} <= read_names()
    assert delete_names() == {route.name for route in result_routes()}
    assert not {"api-docs", "metrics", "healthz", "readyz", "api-root"} & read_names()
    assert not any(name.startswith("admin") for name in read_names())
