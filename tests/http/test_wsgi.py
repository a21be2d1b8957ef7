"""The WSGI fast path: learned hit responses replayed exactly, everything else to Django."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.authtoken.models import Token

from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from compute.http.hit import not_modified, result_reply
from compute.http.wsgi import ResultFront, SiteHeaders
from tests.support.reference import fib_reference

pytestmark = pytest.mark.django_db


class CountingApp:
    """Django's WSGI application, counting how often it is called."""

    def __init__(self) -> None:
        self.django = get_wsgi_application()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


def call(app, path, query="", method="GET", scheme="http", **headers):
    """Call a WSGI app like a server would; return (status, headers, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        **{"HTTP_" + name.upper(): value for name, value in headers.items()},
    }
    sent = {}

    def start_response(status, response_headers, exc_info=None):
        sent["status"], sent["headers"] = status, list(response_headers)

    result = app(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return sent["status"], sent["headers"], body


@pytest.fixture(autouse=True)
def keep_test_connection():
    """Do what Django's test client does: keep the test's transaction open.

    A real request's end closes database connections that are in an odd
    state; inside a test's transaction that would close the test's own
    connection (PostgreSQL).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def apps():
    django = CountingApp()
    return ResultFront(django), django


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/api/fib/77/", "", {}),
        ("/fib/78", "", {}),
        ("/pi", "n=79", {}),
        ("/api/pi/80/", "digits=400", {"accept_encoding": "gzip"}),
        ("/api/fib/81/", "format=string", {}),
        ("/api/fib/82/", "mod=1000", {}),
        (f"/api/fib/{10**18}/", f"mod={10**18}&format=string", {}),
        ("/fib/83", "mod=7", {}),
    ],
)
def test_learned_hits_are_replayed_exactly(apps, path, query, headers):
    fast, django = apps
    status, _, _ = call(fast, path, query, **headers)
    assert status == "200 OK" and django.calls == 1  # computed by Django
    seen = [call(fast, path, query, **headers) for _ in range(2)]  # two hits teach the book
    assert django.calls == 3
    assert seen[0] == seen[1]
    replayed = call(fast, path, query, **headers)
    assert django.calls == 3  # answered without Django
    assert replayed == seen[1]
    encoding = dict(replayed[1]).get("Content-Encoding")
    assert encoding == ("gzip" if headers else None)


def test_not_modified_is_learned_too(apps):
    fast, django = apps
    call(fast, "/api/fib/90/")
    answers = [call(fast, "/api/fib/90/", if_none_match='W/"fib-90-v1"') for _ in range(3)]
    assert django.calls == 3
    assert answers[0] == answers[1] == answers[2]
    assert answers[2][0].startswith("304") and answers[2][2] == b""


def test_a_deleted_result_is_computed_again_at_once(apps):
    fast, django = apps
    user = User.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    token = Token.objects.create(user=user).key
    for _ in range(4):
        call(fast, "/api/fib/91/")
    before = django.calls
    assert json.loads(call(fast, "/api/fib/91/")[2])["cached"] is True
    assert django.calls == before  # the fast path served it
    status, _, _ = call(fast, "/api/fib/91/", method="DELETE", authorization=f"Token {token}")
    assert status.startswith("204")
    assert json.loads(call(fast, "/api/fib/91/")[2])["cached"] is False


def test_plain_http_is_left_to_django_when_ssl_redirect_is_on(settings):
    settings.SECURE_SSL_REDIRECT = True
    django = CountingApp()
    fast = ResultFront(django)
    for _ in range(4):
        status, headers, _ = call(fast, "/api/fib/92/")
        assert status.startswith("301")
        assert dict(headers)["Location"] == "https://testserver/api/fib/92/"
    assert django.calls == 4
    secure = [call(fast, "/api/fib/92/", scheme="https") for _ in range(4)]
    assert django.calls == 7  # the fourth secure request was replayed
    assert secure[2] == secure[3]


def test_invalid_inputs_and_other_methods_go_to_django(apps):
    fast, django = apps
    for path, query in (
        ("/api/fib/-1/", ""),
        ("/api/pi/5/", "digits=x"),
        ("/nope", ""),
        ("/api/fib/5/", "mod=0"),
        ("/api/pi/5/", "mod=3"),
        (f"/api/fib/{10**18 + 1}/", "mod=3"),
    ):
        status, _, _ = call(fast, path, query)
        assert status[:3] in ("400", "404")
    call(fast, "/api/fib/5/", method="POST")
    assert django.calls == 7


def test_site_headers_are_trusted_only_when_repeated_identically():
    query = ResultQuery("fib", 1)
    reply = result_reply(query, Payload.from_text(query, "1"), cached=True, accept_encoding="")
    own = list(reply.headers)
    book = SiteHeaders()
    book.learn(False, reply, "200 OK", [*own, ("A", "1")])
    assert book.get(False, 200) is None
    book.learn(False, reply, "200 OK", [*own, ("A", "2")])  # differs: start over
    assert book.get(False, 200) is None
    book.learn(False, reply, "200 OK", [*own, ("A", "2")])
    assert book.get(False, 200) == (("A", "2"),)
    assert book.get(True, 200) is None  # learned per scheme (HSTS is HTTPS-only)
    for _ in range(3):  # a cookie is never replayed
        book.learn(True, reply, "200 OK", [*own, ("Set-Cookie", "x=1")])
    assert book.get(True, 200) is None
    changed = [(name, "999") if name == "Content-Length" else (name, v) for name, v in own]
    for _ in range(3):  # a reply the stack altered is never learned
        book.learn(True, reply, "200 OK", changed)
    assert book.get(True, 200) is None
    gone = not_modified(query)
    for _ in range(2):
        book.learn(True, gone, "304 Not Modified", [*gone.headers, ("B", "1")])
    assert book.get(True, 304) == (("B", "1"),)


def learn(fast, path="/api/fib/93/"):
    """Compute a result and teach the front the site's headers (two hits through Django)."""
    for _ in range(3):
        call(fast, path)


def test_a_thousand_and_one_query_parameters_get_a_json_4xx(apps):
    fast, _django = apps
    learn(fast)
    query = "&".join(f"p{i}=1" for i in range(1001))
    for path in ("/api/fib/93/", "/fib/93", "/pi"):
        status, headers, body = call(fast, path, query)
        assert 400 <= int(status[:3]) < 500
        assert dict(headers)["Content-Type"].startswith("application/json")
        assert "detail" in json.loads(body)


def test_content_length_is_the_length_of_the_body_after_an_entry_changed(apps, redis_client):
    fast, django = apps
    learn(fast)
    before = django.calls
    status, headers, body = call(fast, "/api/fib/93/")
    assert status.startswith("200") and django.calls == before  # the front answered
    assert int(dict(headers)["Content-Length"]) == len(body)
    # Someone rewrites the entry (a shorter literal of the same shape), and this
    # process's tier forgets its copy: the next reply carries the new body.
    redis_client.set(fast.cache.make_key("fib:93"), b"r7")
    fast.cache.local.clear()
    _status, headers, body = call(fast, "/api/fib/93/")
    assert django.calls == before
    assert json.loads(body)["result"] == 7
    assert int(dict(headers)["Content-Length"]) == len(body)


def test_a_host_outside_allowed_hosts_is_refused_even_for_a_cached_result(apps):
    fast, _django = apps
    learn(fast)
    status, _headers, body = call(fast, "/api/fib/93/", host="evil.example")
    assert status.startswith("400")
    assert json.loads(body) == {"detail": "Bad request."}


def test_the_front_never_raises(apps, monkeypatch):
    fast, _django = apps
    learn(fast)

    monkeypatch.setattr(fast, "cache", None)  # any use of the cache fails
    status, _, body = call(fast, "/api/fib/93/")
    assert status.startswith("200")  # Django answered instead
    assert json.loads(body)["result"] == fib_reference(93)
