"""The WSGI fast path: learned hit responses replayed exactly, everything else to Django."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from prometheus_client import REGISTRY
from prometheus_client.utils import floatToGoString
from rest_framework.authtoken.models import Token

from compute import metrics
from compute.cache import MISSING, result_cache
from compute.conf import app_settings
from compute.domain.payload import Payload
from compute.domain.query import ResultQuery
from compute.http.hit import not_modified, result_reply
from compute.http.memo import FrontMemo
from compute.http.wsgi import ResultFront, SiteHeaders
from compute.services import Source
from tests.support.caches import FakeClock
from tests.support.entries import ATTACKS, sign
from tests.support.junk import plant
from tests.support.reference import fib_reference, unlimited_int_digits


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

    # As Django's test client does: the request's end must not close the
    # test's own database connection (PostgreSQL, inside its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return sent["status"], sent["headers"], body


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection")]


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
    user = User.objects.create_superuser("ops", password="pw-ops-12345")
    token = Token.objects.create(user=user).key
    for _ in range(4):
        call(fast, "/api/fib/91/")
    before = django.calls
    assert json.loads(call(fast, "/api/fib/91/")[2])["cached"] is True
    assert django.calls == before  # the fast path served it
    status, _, _ = call(fast, "/api/fib/91/", method="DELETE", authorization=f"Token {token}")
    assert status.startswith("204")
    assert json.loads(call(fast, "/api/fib/91/")[2])["cached"] is False


@pytest.mark.parametrize("junk", [b"x", "hash"])
def test_front_hits_survive_a_junk_eviction_generation(apps, redis_client, monkeypatch, junk):
    """Issue 20: with junk under the generation, every hit the front answered was a 500
    once the eviction sync came due."""
    fast, django = apps
    clock = FakeClock()
    monkeypatch.setattr(result_cache.evictions, "clock", clock)
    for _ in range(4):  # computed, then learned by the front
        call(fast, "/api/fib/93/")
    plant(redis_client, result_cache.make_key("{meta}:generation"), junk)
    before = django.calls
    for _ in range(3):
        clock.advance(result_cache.evictions.sync_seconds())  # the sync is due
        status, _, body = call(fast, "/api/fib/93/")
        assert status == "200 OK"
        assert json.loads(body) == {"cached": True, "result": fib_reference(93), "n": 93}
    assert django.calls == before  # the front answered them all itself
    assert result_cache.available


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
    reply = result_reply(
        query, Payload.from_text(query, "1"), source=Source.LOCAL, accept_encoding=""
    )
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
    # The entry is rewritten (a shorter literal that passes every check but
    # the value's, signed with the deployment's key), and this process's tier
    # forgets its copy: the next reply carries the new body.
    key = fast.cache.make_key(ResultQuery("fib", 93).cache_key)
    redis_client.set(key, sign(key, b"r1000000000000000008"))
    fast.cache.local.clear()
    _status, headers, body = call(fast, "/api/fib/93/")
    assert django.calls == before
    assert json.loads(body)["result"] == 1000000000000000008
    assert int(dict(headers)["Content-Length"]) == len(body)


@pytest.mark.parametrize(("kind", "n", "digits", "path", "data"), ATTACKS)
@pytest.mark.parametrize("signed", [False, True], ids=["as-planted", "signed-by-attacker"])
def test_the_front_never_serves_a_planted_value(
    apps, redis_client, kind, n, digits, path, data, signed
):
    fast, django = apps
    path, _, query = path.partition("?")
    for _ in range(3):  # computed, logged, and the site's headers learned
        call(fast, path, query)
    before = django.calls
    key = fast.cache.make_key(ResultQuery(kind, n, digits=digits).cache_key)
    redis_client.set(key, sign(key, data) if signed else data)
    fast.cache.local.clear()  # as in a process that had not read it yet
    status, _headers, body = call(fast, path, query)
    assert status.startswith("200")
    assert django.calls == before + 1  # the front discarded it and left the request to Django
    with unlimited_int_digits():
        answer = json.loads(body)
    if kind == "fib":
        assert answer["result"] == fib_reference(n)
    else:  # pi(100) = 3.131980747244363 (SPEC.md), to 5 digits 3.1320
        assert answer["result"] == ("3.1320" if digits else 3.131980747244363)
    assert answer["cached"] is True  # from the log, which refilled Redis
    assert call(fast, path, query)[2] == body and django.calls == before + 1  # the front again


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


def front_samples(route: str) -> dict[str, float]:
    """Read the request counters and duration histogram of ``route`` from this process."""

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"route": route, "method": "GET", **labels}) or 0.0

    return {
        "ok": value("mathsite_http_requests_total", status="200"),
        "not_modified": value("mathsite_http_requests_total", status="304"),
        "ok_timed": value("mathsite_http_request_duration_seconds_count", status="200"),
        "ok_in_inf_bucket": value(
            "mathsite_http_request_duration_seconds_bucket", status="200", le="+Inf"
        ),
        "hits": REGISTRY.get_sample_value(
            "mathsite_cache_lookups_total", {"kind": "fib", "result": "hit"}
        )
        or 0.0,
    }


def test_front_hits_and_304s_reach_the_metrics_in_batches(apps):
    fast, django = apps
    learn(fast, "/api/fib/94/")
    for _ in range(2):  # teach the 304 too
        call(fast, "/api/fib/94/", if_none_match='W/"fib-94-v1"')
    metrics.front_tally.flush()
    before = front_samples("fib-detail")
    calls = django.calls
    for _ in range(5):
        call(fast, "/api/fib/94/")
    for _ in range(2):
        call(fast, "/api/fib/94/", if_none_match='W/"fib-94-v1"')
    assert django.calls == calls  # all seven answered by the front
    metrics.front_tally.flush()
    after = front_samples("fib-detail")
    moved = {name: after[name] - before[name] for name in before}
    assert moved == {"ok": 5, "not_modified": 2, "ok_timed": 5, "ok_in_inf_bucket": 5, "hits": 5}


def test_the_tally_puts_each_duration_in_the_bucket_prometheus_would():
    bounds = metrics.HTTP_DURATION._upper_bounds
    durations = [0.0, 0.0005, 0.00051, 0.001, 0.003, 0.0249, 0.7, 31.0, *bounds[1:4]]
    route = "tally-test"

    def buckets() -> list[float]:
        return [
            REGISTRY.get_sample_value(
                "mathsite_http_request_duration_seconds_bucket",
                {"route": route, "method": "GET", "status": "200", "le": floatToGoString(bound)},
            )
            or 0.0
            for bound in bounds
        ]

    before = buckets()
    for seconds in durations:
        metrics.front_request(route, "GET", 200, seconds, None)
    metrics.front_tally.flush()
    moved = [after - was for after, was in zip(buckets(), before, strict=True)]
    # Cumulative buckets counted independently: how many durations are <= each bound.
    assert moved == [sum(1 for seconds in durations if seconds <= bound) for bound in bounds]
    total = REGISTRY.get_sample_value(
        "mathsite_http_request_duration_seconds_sum",
        {"route": route, "method": "GET", "status": "200"},
    )
    assert total == pytest.approx(sum(durations))


def test_the_tally_is_flushed_by_its_thread_without_a_scrape(apps):
    fast, _django = apps
    learn(fast, "/api/fib/95/")
    metrics.front_tally.flush()
    before = front_samples("fib-detail")["ok"]
    call(fast, "/api/fib/95/")
    deadline = time.monotonic() + 5 * metrics.FRONT_FLUSH_SECONDS + 2
    while front_samples("fib-detail")["ok"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert front_samples("fib-detail")["ok"] == before + 1


def test_remembered_urls_are_validated_again_when_a_limit_changes(apps, settings):
    fast, django = apps
    learn(fast, "/api/fib/96/")
    calls = django.calls
    assert json.loads(call(fast, "/api/fib/96/")[2])["cached"] is True
    assert django.calls == calls  # remembered and answered by the front
    settings.FIB_MAX_N = 50
    status, _headers, body = call(fast, "/api/fib/96/")
    assert status.startswith("400") and "50" in json.loads(body)["n"][0]
    assert django.calls == calls + 1


def test_kept_answers_are_decided_again_after_any_setting_change(apps, settings):
    """Not only a limit: a changed ALLOWED_HOSTS is a new settings generation too."""
    fast, django = apps
    learn(fast, "/api/fib/89/")
    assert call(fast, "/api/fib/89/")[0].startswith("200")  # kept now
    calls = django.calls
    settings.ALLOWED_HOSTS = ["elsewhere.example"]
    assert call(fast, "/api/fib/89/")[0].startswith("400")  # Django refuses the host
    assert django.calls == calls + 1


def test_a_repeated_hit_is_sent_from_its_kept_answer(apps, monkeypatch):
    """Validated once: later identical requests skip matching and validating
    (``compute.http.kept``), and get the same bytes; what differs is decided again."""
    fast, django = apps
    learn(fast, "/api/fib/97/")
    first = call(fast, "/api/fib/97/")
    resolved: list[str] = []
    real = ResultFront.resolve

    def counting(self, environ):
        resolved.append(environ["PATH_INFO"])
        return real(self, environ)

    monkeypatch.setattr(ResultFront, "resolve", counting)
    calls = django.calls
    assert [call(fast, "/api/fib/97/") for _ in range(3)] == [first] * 3
    assert resolved == [] and django.calls == calls  # kept: nothing decided again
    # A conditional request, another encoding, another host, a HEAD: each decided afresh.
    assert call(fast, "/api/fib/97/", if_none_match='W/"fib-97-v1"')[0].startswith("304")
    assert call(fast, "/api/fib/97/", accept_encoding="gzip")[2] == first[2]  # small: plain
    assert call(fast, "/api/fib/97/", host="evil.example")[0].startswith("400")
    assert call(fast, "/api/fib/97/", method="HEAD")[0].startswith("200")
    assert len(resolved) == 4


def test_the_front_says_which_tier_answered_and_a_kept_answer_says_in_process(apps):
    """RFC 9211 Cache-Status: a kept answer is served only while this process's tier holds
    its payload, so it says so, whatever the request that kept it found."""
    fast, django = apps
    learn(fast, "/api/fib/96/")
    calls = django.calls
    fast.cache.local.clear()  # the process's tier forgets it: the front finds it in Redis
    _status, headers, _body = call(fast, "/api/fib/96/")
    assert dict(headers)["Cache-Status"] == "mathsite; hit; detail=redis"
    for _ in range(2):  # kept now
        _status, headers, _body = call(fast, "/api/fib/96/")
        assert dict(headers)["Cache-Status"] == "mathsite; hit; detail=in-process"
    assert django.calls == calls
    fast.cache.delete(ResultQuery("fib", 96))
    _status, headers, _body = call(fast, "/api/fib/96/")  # Django: from the log
    assert dict(headers)["Cache-Status"] == "mathsite; hit; detail=log"
    assert django.calls == calls + 1
    status, headers, _body = call(fast, "/api/fib/96/", if_none_match='W/"fib-96-v1"')
    assert status.startswith("304") and "Cache-Status" not in dict(headers)


@pytest.mark.parametrize("path", ["/api/fib/94/", "/pi", "/api/pi/94/?digits=300"])
def test_a_hit_from_the_front_carries_the_cors_headers_django_sends(apps, path):
    """No header depends on Origin, so the front learns the CORS headers among the site's
    and sends what Django sends, with or without an Origin, 304s included."""
    fast, django = apps
    path, _, query = path.partition("?")
    origin = {"origin": "https://elsewhere.example"}
    call(fast, path, query)  # computed by Django
    by_django = [call(fast, path, query, **origin), call(fast, path, query)]
    calls = django.calls
    by_front = [call(fast, path, query), call(fast, path, query, **origin)]
    by_front.append(call(fast, path, query, **origin))  # a kept answer
    assert django.calls == calls  # the front answered
    assert by_django[0] == by_django[1] == by_front[0] == by_front[1] == by_front[2]
    headers = dict(by_front[0][1])
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Expose-Headers"] == "Cache-Status, ETag, Retry-After"
    assert "origin" not in headers["Vary"].lower()
    etag = headers["ETag"]
    not_modified = [call(fast, path, query, if_none_match=etag, **o) for o in (origin, {}) * 2]
    assert django.calls == calls + 2  # two 304s teach the front, two it sends itself
    assert len(set(map(str, not_modified))) == 1
    assert dict(not_modified[0][1])["Access-Control-Allow-Origin"] == "*"


def test_a_kept_answer_is_not_sent_once_its_result_is_evicted(apps):
    fast, _django = apps
    learn(fast, "/api/fib/98/")
    assert json.loads(call(fast, "/api/fib/98/")[2])["cached"] is True  # kept now
    fast.cache.delete(ResultQuery("fib", 98))  # as the admin's eviction does
    status, _headers, body = call(fast, "/api/fib/98/")
    assert status.startswith("200")
    assert json.loads(body) == {"cached": True, "result": fib_reference(98), "n": 98}  # the log
    assert fast.cache.get_shared(ResultQuery("fib", 98)) is not MISSING  # refilled from the log


def test_kept_answers_are_dropped_when_the_site_headers_change(apps):
    fast, _django = apps
    learn(fast, "/api/fib/99/")
    call(fast, "/api/fib/99/")
    secure_200 = (False, 200)
    changed = (*fast.site._trusted[secure_200], ("X-Extra", "1"))
    fast.site._trusted[secure_200] = changed  # as if Django's middleware changed
    _status, headers, _body = call(fast, "/api/fib/99/")
    assert headers[-1] == ("X-Extra", "1")  # answered afresh with the headers of now


@pytest.fixture
def own_memo(apps):
    """The front of ``apps`` with a memo of its own (64 KiB), to look at what it remembers."""
    fast, _django = apps
    fast.memo = FrontMemo(max_bytes=64 * 1024)
    return fast.memo


def test_the_front_remembers_urls_hosts_replies_and_kept_answers_in_its_one_memo(apps, own_memo):
    fast, _django = apps
    learn(fast, "/api/fib/88/")
    assert call(fast, "/api/fib/88/")[0].startswith("200")  # answered by the front
    generation = app_settings.generation
    assert own_memo.get(("url", fast.matcher, "/api/fib/88/", ""), generation) is not None
    assert own_memo.get(("host", "testserver"), generation) is True
    assert own_memo.get(("reply", ResultQuery("fib", 88), False, Source.LOCAL), generation)
    kept = ("kept", "/api/fib/88/", "", "testserver", None, None, False)
    assert own_memo.get(kept, generation).reply.body == call(fast, "/api/fib/88/")[2]
    assert len(own_memo) == 4  # nothing else, nowhere else


def test_what_clients_choose_never_grows_the_memo_past_its_budget(apps, own_memo):
    """Fresh query strings, Host values and Accept-Encoding values by the thousand."""
    fast, _django = apps
    learn(fast, "/api/fib/87/")
    expected = call(fast, "/api/fib/87/")[2]
    for i in range(1500):
        pad = f"pad={i}-" + "x" * 200
        status, _headers, body = call(fast, "/api/fib/87/", pad, accept_encoding=f"br;q=0.{i}")
        assert status.startswith("200") and body == expected
        call(fast, "/api/fib/87/", host=f"h{i}-" + "y" * 100 + ".example")  # 400 from Django
        assert own_memo.nbytes <= own_memo.max_bytes
    assert call(fast, "/api/fib/87/")[2] == expected


def test_a_request_with_a_long_query_string_or_header_is_answered_and_not_remembered(
    apps, own_memo
):
    fast, _django = apps
    learn(fast, "/api/fib/86/")
    expected = call(fast, "/api/fib/86/")[2]
    remembered = len(own_memo)
    junk = "pad=" + "z" * 8000
    assert call(fast, "/api/fib/86/", junk)[2] == expected
    assert call(fast, "/api/fib/86/", accept_encoding="q" * 8000)[2] == expected
    assert len(own_memo) == remembered


def test_x_forwarded_host_is_no_part_of_the_key_while_django_ignores_it(apps, own_memo):
    fast, django = apps
    learn(fast, "/api/fib/85/")
    first = call(fast, "/api/fib/85/")
    remembered, calls = len(own_memo), django.calls
    for i in range(50):
        assert call(fast, "/api/fib/85/", x_forwarded_host=f"junk-{i}.example") == first
    assert len(own_memo) == remembered and django.calls == calls


def test_x_forwarded_host_decides_the_answer_when_django_reads_it(apps, settings):
    settings.USE_X_FORWARDED_HOST = True
    fast, _django = apps
    learn(fast, "/api/fib/84/")
    assert call(fast, "/api/fib/84/", x_forwarded_host="localhost")[0].startswith("200")
    assert call(fast, "/api/fib/84/", x_forwarded_host="evil.example")[0].startswith("400")
    assert call(fast, "/api/fib/84/", x_forwarded_host="localhost")[0].startswith("200")


def request_keys(path, query="", method="GET", **headers):
    """What the project's server hands ``kept_reply``: the request's own keys, no environ."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        **{"HTTP_" + name.upper(): value for name, value in headers.items()},
    }


def test_a_server_sending_kept_answers_itself_gets_what_the_front_sends(apps):
    """``kept_reply`` (``launcher.shared_listener.kept_hits``): the kept answer
    ``__call__`` sends, the same bytes, counted the same; None for whatever
    the front would decide afresh, so that the application answers it."""
    fast, django = apps
    learn(fast, "/api/fib/92/")
    sent = call(fast, "/api/fib/92/")  # kept now
    metrics.front_tally.flush()
    before = front_samples("fib-detail")
    calls = django.calls
    kept = [fast.kept_reply(request_keys("/api/fib/92/")) for _ in range(3)]
    assert all(k is not None for k in kept)
    assert {(f"{k.status} OK", str(k.headers), k.content) for k in kept} == {
        (sent[0], str(sent[1]), sent[2])
    }
    assert json.loads(kept[0].content) == {"cached": True, "result": fib_reference(92), "n": 92}
    metrics.front_tally.flush()
    after = front_samples("fib-detail")
    assert after["ok"] - before["ok"] == 3 and after["hits"] - before["hits"] == 3
    assert django.calls == calls
    for decided_afresh in (
        request_keys("/api/fib/92/", method="HEAD"),
        request_keys("/api/fib/92/", method="POST"),
        request_keys("/api/fib/92/", if_none_match='W/"fib-92-v1"'),
        request_keys("/api/fib/92/", accept_encoding="gzip"),
        {**request_keys("/api/fib/92/"), "HTTP_HOST": "evil.example"},
        request_keys("/api/fib/91/"),
    ):
        assert fast.kept_reply(decided_afresh) is None
    fast.cache.delete(ResultQuery("fib", 92))  # as the admin's eviction does
    assert fast.kept_reply(request_keys("/api/fib/92/")) is None


def test_kept_reply_leaves_everything_to_the_application_when_the_fast_path_is_off(
    apps, settings, monkeypatch
):
    fast, _django = apps
    learn(fast, "/api/fib/90/")
    call(fast, "/api/fib/90/")
    assert fast.kept_reply(request_keys("/api/fib/90/")) is not None

    def broken(self, environ):
        raise RuntimeError("unexpected")

    with monkeypatch.context() as patched:
        patched.setattr(ResultFront, "kept_answer", broken)
        assert fast.kept_reply(request_keys("/api/fib/90/")) is None  # never raises
    settings.HIT_FAST_PATH = False
    assert fast.kept_reply(request_keys("/api/fib/90/")) is None
