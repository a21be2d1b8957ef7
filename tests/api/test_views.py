"""HTTP API tests: every route and status code, through Django's test client.

Reference values are computed here another way than the service does
(plain integer iteration for fib, exact fractions for pi) or quoted from
SPEC.md; the service's own functions are never the reference.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from compute.cache import result_cache
from compute.domain.query import ResultQuery
from compute.models import ComputedResult
from tests.support.entries import ATTACKS, sign
from tests.support.reference import fib_reference, unlimited_int_digits

pytestmark = pytest.mark.django_db


def pi_reference(n: int) -> float:
    """The correctly rounded double of sqrt(6 * sum 1/i^2), from an exact sum."""
    total = sum((Fraction(1, i * i) for i in range(1, n)), Fraction(0))
    getcontext().prec = 50
    return float((Decimal(6 * total.numerator) / Decimal(total.denominator)).sqrt())


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def deleting_staff(username: str, password: str) -> User:
    """A staff user holding the "delete computed result" permission (what DELETE needs)."""
    user = User.objects.create_user(username, password=password, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="delete_computedresult"))
    return user


@pytest.fixture
def staff_client() -> APIClient:
    user = deleting_staff("staff", "pw-staff-123")
    token = Token.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api


def get_json(client: APIClient, url: str, **extra):
    response = client.get(url, **extra)
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response, json.loads(response.content)


# --- values and the cached flag ------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 10, 92, 93, 94, 1000])
def test_fib_values_and_cached_flag(client, n):
    first, body = get_json(client, f"/api/fib/{n}/")
    assert first.status_code == 200
    assert body == {"cached": False, "result": fib_reference(n), "n": n}
    _, body2 = get_json(client, f"/api/fib/{n}/")
    assert body2 == {"cached": True, "result": fib_reference(n), "n": n}


def test_zero_results_are_cached(client):
    """The old service's `if result:` recomputed 0 and 0.0 forever."""
    for url, zero in (("/api/fib/0/", 0), ("/api/pi/1/", 0.0)):
        assert get_json(client, url)[1]["cached"] is False
        _, body = get_json(client, url)
        assert body["cached"] is True
        assert body["result"] == zero
    raw = client.get("/api/pi/1/").content
    assert b'"result":0.0' in raw


@pytest.mark.parametrize("n", [2, 3, 10, 100, 1000])
def test_pi_values_are_correctly_rounded(client, n):
    _, body = get_json(client, f"/api/pi/{n}/")
    assert body["result"] == pi_reference(n)
    assert isinstance(body["result"], float)


def test_pi_known_values_from_spec(client):
    assert get_json(client, "/api/pi/100/")[1]["result"] == 3.131980747244363
    assert get_json(client, "/api/pi/1000000/")[1]["result"] == 3.141591698659512
    assert get_json(client, f"/api/pi/{10**18}/")[1]["result"] == 3.141592653589793


def test_pi_digits(client):
    _, body = get_json(client, "/api/pi/100/?digits=5")
    assert body == {"cached": False, "result": "3.1320", "n": 100, "digits": 5}
    _, body = get_json(client, "/api/pi/1/?digits=7")
    assert body["result"] == "0"
    _, body = get_json(client, "/api/pi/2/?digits=1")
    assert body["result"] == "2"  # sqrt(6) = 2.449...
    _, body = get_json(client, "/api/pi/2/?digits=1000")
    getcontext().prec = 1100
    expected = Decimal(6).sqrt().quantize(Decimal(1).scaleb(-999))
    assert body["result"] == str(expected)
    assert len(body["result"]) == 1001


def test_fib_format_string(client):
    _, body = get_json(client, "/api/fib/100/?format=string")
    assert body == {"cached": False, "result": str(fib_reference(100)), "n": 100}
    # Same stored value, other representation: a cached hit.
    _, body = get_json(client, "/api/fib/100/")
    assert body == {"cached": True, "result": fib_reference(100), "n": 100}
    _, body = get_json(client, "/api/fib/100/?format=string")
    assert body["cached"] is True
    assert body["result"] == str(fib_reference(100))


def test_fib_around_the_4300_digit_limit(client):
    """fib(20578) is the first with more than 4,300 digits, where CPython's int-to-str refuses."""
    for n in (20576, 20577, 20578, 20580):
        expected = fib_reference(n)
        response = client.get(f"/api/fib/{n}/")
        assert response.status_code == 200
        with unlimited_int_digits():
            assert json.loads(response.content)["result"] == expected
            expected_digits = len(str(expected))
        text = response.content.split(b'"result":')[1].split(b",")[0]
        assert len(text) == expected_digits
    with unlimited_int_digits():
        assert len(str(fib_reference(20577))) == 4300
        assert len(str(fib_reference(20578))) == 4301
    _, body = get_json(client, "/api/fib/20577/?format=string")
    assert len(body["result"]) == 4300


def test_fib_million_exact_and_gzip(client):
    response = client.get("/api/fib/1000000/", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    body = gzip.decompress(response.content)
    assert body.startswith(b'{"cached":false,"result":')
    text = body.split(b'"result":')[1].split(b",")[0]
    assert len(text) == 208_988
    # Last and first digits against plain integer arithmetic (no str of the
    # whole number needed): fib(10**6) mod 10**30 and its leading digits.
    plain = client.get("/api/fib/1000000/")
    assert "Content-Encoding" not in plain
    assert json.loads(plain.content.replace(text, b"0"))["cached"] is True
    assert plain.content.split(b'"result":')[1].split(b",")[0] == text
    assert int(text[-30:]) == fib_mod(10**6, 10**30)
    assert text[:20] == b"19532821287077577316"


def fib_mod(n: int, m: int) -> int:
    """fib(n) mod m by fast doubling in plain Python (small integers only)."""

    def pair(k: int) -> tuple[int, int]:
        if k == 0:
            return 0, 1
        a, b = pair(k >> 1)
        c = a * ((2 * b - a) % m) % m
        d = (a * a + b * b) % m
        return (d, (c + d) % m) if k & 1 else (c, d)

    return pair(n)[0]


# --- query-string forms are distinct results ----------------------------------------


def test_query_forms_are_distinct_results(client):
    _, double = get_json(client, "/api/pi/10/")
    _, five = get_json(client, "/api/pi/10/?digits=5")
    _, six = get_json(client, "/api/pi/10/?digits=6")
    assert (double["cached"], five["cached"], six["cached"]) == (False, False, False)
    assert five["result"] == "3.0395" and six["result"] == "3.03951"
    assert double["result"] == pi_reference(10)
    rows = ComputedResult.objects.filter(kind="pi", n=10).order_by("precision")
    assert [r.precision for r in rows] == [0, 5, 6]


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segment",
    ["-1", "+1", "1.5", "1e3", "1_000", " 1", "\u0661\u0662", "abc", "0x10", "%201", "1%20"],
)
@pytest.mark.parametrize("kind", ["pi", "fib"])
def test_bad_path_segments_are_json_4xx(client, kind, segment):
    response = client.get(f"/api/{kind}/{segment}/")
    assert response.status_code in (400, 404)
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content)
    assert not ComputedResult.objects.exists()


@pytest.mark.parametrize("value", ["-5", "+5", "5.0", "5e1", "1_0", " 5", "\u0665", "x", ""])
def test_bad_query_n_is_400(client, value):
    response = client.get("/pi", {"n": value})
    assert response.status_code == 400
    assert "n" in json.loads(response.content)
    assert not ComputedResult.objects.exists()


@pytest.mark.parametrize(
    ("url", "field", "fragment"),
    [
        ("/api/fib/1000001/", "n", "1000000"),
        ("/api/fib/-3/", "n", "at least 0"),
        ("/api/pi/0/", "n", "at least 1"),
        ("/api/pi/-3/", "n", "at least 1"),
        (f"/api/pi/{10**18 + 1}/", "n", str(10**18)),
        (f"/api/pi/{10**40}/", "n", "PI_MAX_N"),
        ("/api/pi/" + "9" * 5000 + "/", "n", "PI_MAX_N"),
        ("/api/pi/10/?digits=0", "digits", "at least 1"),
        ("/api/pi/10/?digits=1001", "digits", "1000"),
        ("/api/pi/10/?digits=-1", "digits", "at least 1"),
        ("/api/pi/10/?digits=abc", "digits", "digits"),
        ("/api/fib/10/?digits=5", "digits", "pi only"),
        ("/api/fib/10/?format=xml", "format", "string"),
    ],
)
def test_limits_are_named_in_400s(client, url, field, fragment):
    response = client.get(url)
    assert response.status_code == 400, response.content
    body = json.loads(response.content)
    assert fragment in " ".join(body[field])
    assert not ComputedResult.objects.exists()


def test_leading_zeros_are_plain_digits(client):
    _, body = get_json(client, "/api/fib/0010/")
    assert body["result"] == 55 and body["n"] == 10


# --- seed-compatible routes -------------------------------------------------------------


def test_seed_routes(client):
    assert get_json(client, "/fib/10")[1] == {"cached": False, "result": 55, "n": 10}
    assert get_json(client, "/fib/10/")[1]["cached"] is True
    assert get_json(client, "/pi/100")[1]["result"] == 3.131980747244363
    assert get_json(client, "/pi?n=100")[1] == {
        "cached": True,
        "result": 3.131980747244363,
        "n": 100,
    }
    _, default = get_json(client, "/pi")
    assert default["n"] == 100 and default["cached"] is True
    assert get_json(client, "/api/fib/10/")[1]["cached"] is True


# --- HTTP caching -------------------------------------------------------------------------


def test_etag_and_304(client):
    cold = client.get("/api/fib/1000/")
    hot = client.get("/api/fib/1000/")
    assert cold["ETag"] == hot["ETag"] == 'W/"fib-1000-v1"'
    assert "max-age" in hot["Cache-Control"] and "public" in hot["Cache-Control"]
    not_modified = client.get("/api/fib/1000/", HTTP_IF_NONE_MATCH='W/"fib-1000-v1"')
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert client.get("/api/fib/1000/?format=string")["ETag"] == 'W/"fib-1000-s-v1"'
    assert client.get("/api/pi/7/?digits=3")["ETag"] == 'W/"pi-7-d3-v1"'
    other = client.get("/api/fib/1000/", HTTP_IF_NONE_MATCH='W/"fib-999-v1"')
    assert other.status_code == 200


def test_304_comes_before_any_lookup(client):
    response = client.get("/api/fib/777/", HTTP_IF_NONE_MATCH='W/"fib-777-v1"')
    assert response.status_code == 304
    assert not ComputedResult.objects.exists()


def test_hot_and_cold_responses_carry_the_same_headers(client):
    for url in ("/api/fib/50/", "/api/pi/50/?digits=300", "/fib/60", "/pi?n=61"):
        for encoding in ("", "gzip"):
            ComputedResult.objects.all().delete()
            result_cache.clear_namespace()
            cold = client.get(url, HTTP_ACCEPT_ENCODING=encoding)
            hot = client.get(url, HTTP_ACCEPT_ENCODING=encoding)
            assert cold.status_code == hot.status_code == 200
            skip = {"Content-Length", "Cache-Status"}  # Cache-Status says which one computed
            cold_headers = {k: v for k, v in cold.headers.items() if k not in skip}
            hot_headers = {k: v for k, v in hot.headers.items() if k not in skip}
            assert cold_headers == hot_headers, url
            assert cold["Cache-Status"] == "mathsite; fwd=miss; stored"
            assert hot["Cache-Status"] == "mathsite; hit; detail=in-process"


def test_cache_status_names_the_tier_that_answered(client, redis_client):
    """RFC 9211: computed and stored, then this process's tier, Redis, the result log."""
    url = "/api/fib/321/"
    seen = []
    for forget in (None, None, result_cache.local.clear, result_cache.clear_namespace, None):
        if forget is not None:
            forget()
        response, body = get_json(client, url)
        seen.append((response["Cache-Status"], body["cached"]))
    assert seen == [
        ("mathsite; fwd=miss; stored", False),
        ("mathsite; hit; detail=in-process", True),
        ("mathsite; hit; detail=redis", True),  # the process's tier forgot it
        ("mathsite; hit; detail=log", True),  # Redis lost it: the log refills Redis
        ("mathsite; hit; detail=in-process", True),
    ]
    assert redis_client.exists(result_cache.make_key(ResultQuery("fib", 321).cache_key)) == 1
    not_modified = client.get(url, HTTP_IF_NONE_MATCH='W/"fib-321-v1"')
    assert not_modified.status_code == 304 and "Cache-Status" not in not_modified


def test_a_result_computed_while_redis_is_down_is_not_said_to_be_stored(client, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    response, body = get_json(client, "/api/fib/322/")
    assert (response["Cache-Status"], body["cached"]) == ("mathsite; fwd=miss", False)
    response, body = get_json(client, "/api/fib/322/")  # Redis still down: from the log
    assert (response["Cache-Status"], body["cached"]) == ("mathsite; hit; detail=log", True)


def test_strict_accept_header_still_gets_json(client):
    """Hit and miss agree: no 406 on the computing path for a strict Accept."""
    for _ in range(2):
        response = client.get("/api/fib/13/", HTTP_ACCEPT="text/html")
        assert response.status_code == 200
        assert json.loads(response.content)["result"] == 233
    assert client.get("/api/fib/", HTTP_ACCEPT="text/html").status_code == 200


def test_head_request(client):
    response = client.head("/api/fib/12/")
    assert response.status_code == 200
    assert response["ETag"] == 'W/"fib-12-v1"'


# --- the result log and its list endpoints --------------------------------------------------


def test_list_items_never_embed_huge_results(client):
    client.get("/api/fib/100000/")
    client.get("/api/fib/5/")
    response, body = get_json(client, "/api/fib/")
    assert response.status_code == 200
    assert set(body) == {"next", "previous", "results"}
    assert len(response.content) < 2000
    newest, oldest = body["results"]
    assert set(newest) == {
        "n",
        "digits",
        "mod",
        "preview",
        "length",
        "compute_ms",
        "computed_at",
        "url",
    }
    assert newest["n"] == 5 and newest["preview"] == "5" and newest["digits"] is None
    assert newest["mod"] is None
    assert oldest["length"] == 20_899
    assert oldest["preview"].startswith("2597406934") and "..." in oldest["preview"]
    assert oldest["url"] == "http://testserver/api/fib/100000/"


def test_list_pagination_and_pi_precision(client):
    for n in (3, 4, 5):
        client.get(f"/api/pi/{n}/?digits=20")
    _, page = get_json(client, "/api/pi/?page_size=2")
    assert [item["n"] for item in page["results"]] == [5, 4]
    assert page["results"][0]["digits"] == 20
    assert page["results"][0]["url"].endswith("/api/pi/5/?digits=20")
    _, rest = get_json(client, page["next"])
    assert [item["n"] for item in rest["results"]] == [3]
    assert rest["next"] is None


def test_served_from_log_after_redis_loses_it(client, redis_client):
    get_json(client, "/api/fib/300/")
    result_cache.clear_namespace()
    _, body = get_json(client, "/api/fib/300/")
    assert body == {"cached": True, "result": fib_reference(300), "n": 300}
    assert redis_client.exists(result_cache.make_key(ResultQuery("fib", 300).cache_key)) == 1


def attacked_result(kind: str, n: int, digits: int | None):
    """Return the right result for an entry of ``ATTACKS``, from the references here."""
    if kind == "fib":
        return fib_reference(n)
    if digits is not None:
        assert (n, digits) == (100, 5)
        return "3.1320"  # SPEC.md, README
    return pi_reference(n)


@pytest.mark.parametrize(("kind", "n", "digits", "path", "data"), ATTACKS)
@pytest.mark.parametrize("signed", [False, True], ids=["as-planted", "signed-by-attacker"])
def test_values_planted_in_redis_are_never_served(
    client, redis_client, kind, n, digits, path, data, signed
):
    assert client.get(path).status_code == 200  # computed and logged
    key = result_cache.make_key(ResultQuery(kind, n, digits=digits).cache_key)
    redis_client.set(key, sign(key, data) if signed else data)
    result_cache.local.clear()  # as in a process that had not read it yet
    with unlimited_int_digits():
        response, body = get_json(client, path)
    assert response.status_code == 200
    assert body["result"] == attacked_result(kind, n, digits)
    assert body["cached"] is True  # from the result log, which refilled Redis
    assert response["ETag"].endswith('-v1"')  # the bodies' format did not change


def test_a_discarded_entry_is_counted_in_metrics(client, redis_client):
    get_json(client, "/api/fib/20/")
    key = result_cache.make_key(ResultQuery("fib", 20).cache_key)
    redis_client.set(key, sign(key, b"r6766"))
    result_cache.local.clear()

    def mismatches() -> float:
        text = client.get("/metrics").content.decode()
        found = [x for x in text.splitlines() if 'rejected_total{reason="mismatch"}' in x]
        return float(found[0].split()[-1]) if found else 0.0

    before = mismatches()
    assert get_json(client, "/api/fib/20/")[1]["result"] == 6765
    assert mismatches() - before == 1


# --- DELETE ------------------------------------------------------------------------------------


def test_delete_requires_authentication(client):
    client.get("/api/fib/20/")
    response = client.delete("/api/fib/20/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert ComputedResult.objects.filter(kind="fib", n=20).exists()


def test_delete_forbidden_for_non_staff(client):
    user = User.objects.create_user("plain", password="pw-plain-123")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    client.get("/api/fib/20/")
    assert client.delete("/api/fib/20/").status_code == 403
    assert get_json(client, "/api/fib/20/")[1]["cached"] is True


def test_staff_delete_then_recompute(staff_client):
    get_json(staff_client, "/api/fib/30/")
    assert staff_client.delete("/api/fib/30/").status_code == 204
    assert not ComputedResult.objects.filter(kind="fib", n=30).exists()
    assert get_json(staff_client, "/api/fib/30/")[1]["cached"] is False
    assert staff_client.delete("/api/fib/31/").status_code == 204  # never existed


def test_staff_delete_pi_precision_only(staff_client):
    get_json(staff_client, "/api/pi/9/")
    get_json(staff_client, "/api/pi/9/?digits=8")
    assert staff_client.delete("/api/pi/9/?digits=8").status_code == 204
    assert get_json(staff_client, "/api/pi/9/?digits=8")[1]["cached"] is False
    assert get_json(staff_client, "/api/pi/9/")[1]["cached"] is True


def test_staff_without_the_delete_permission_is_forbidden(client):
    """The admin's rule: staff who may only view results cannot delete them by token either."""
    user = User.objects.create_user("viewer", password="pw-view-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_computedresult"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    client.get("/api/fib/22/")
    response = client.delete("/api/fib/22/")
    assert response.status_code == 403
    assert "delete computed result" in response.json()["detail"]
    assert ComputedResult.objects.filter(kind="fib", n=22).exists()
    assert get_json(client, "/api/fib/22/")[1]["cached"] is True


def test_superuser_token_may_delete(client):
    user = User.objects.create_superuser("root", password="pw-root-123")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    client.get("/api/fib/23/")
    assert client.delete("/api/fib/23/").status_code == 204
    assert not ComputedResult.objects.filter(kind="fib", n=23).exists()


def test_session_staff_can_delete(client):
    deleting_staff("admin", "pw-admin-123")
    assert client.login(username="admin", password="pw-admin-123")
    get_json(client, "/api/pi/44/")
    assert client.delete("/api/pi/44/").status_code == 204
    assert get_json(client, "/api/pi/44/")[1]["cached"] is False


def test_delete_with_redis_unreachable_is_503_and_deletes_nothing(staff_client, settings):
    """Deleting only the row would let Redis serve the value again, unlogged, once back."""
    get_json(staff_client, "/api/fib/33/")
    dead = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {"default": dead}  # a port nothing listens on: refused at once
    response = staff_client.delete("/api/fib/33/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert "nothing was deleted" in json.loads(response.content)["detail"]
    assert ComputedResult.objects.filter(kind="fib", n=33).exists()


def test_seed_route_delete_needs_staff_too(client):
    client.get("/fib/21")
    assert client.delete("/fib/21").status_code == 401


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/nope", "/api/nope/", "/api/fib/1/extra/", "/static/none.css"])
def test_unknown_routes_are_json_404(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in json.loads(response.content)


def test_wrong_method_is_405(client):
    for method in (client.post, client.put, client.patch):
        response = method("/api/fib/5/", {}, format="json")
        assert response.status_code == 405
        assert "detail" in json.loads(response.content)
    assert not ComputedResult.objects.exists()


def test_health_endpoints(client):
    assert get_json(client, "/healthz")[1]["status"] == "ok"
    response, body = get_json(client, "/readyz")
    assert response.status_code == 200
    assert body["database"]["ok"] is True and body["redis"]["ok"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "cD1ub3RhZGF0ZQ==",  # p=notadate
        "cj0xJnA9eA==",  # r=1&p=x
        "cD0yMDI2LTExLTIxIDA2OjEwOjM1LjM5NjM3OSAwMDowMA==",  # a real one whose + became a space
    ],
)
def test_a_crafted_cursor_is_a_json_404_not_a_500(client, cursor):
    response = client.get("/api/fib/", {"cursor": cursor})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def compact(body: bytes) -> bytes:
    return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("method", "url", "status", "extra"),
    [
        ("get", "/nope", 404, {}),
        ("get", "/api/nope/", 404, {}),
        ("get", "/static/none.css", 404, {}),
        ("get", "/api/fib/-1/", 400, {}),
        ("get", "/api/fib/5/", 400, {"HTTP_HOST": "evil.example"}),
        ("post", "/api/fib/5/", 405, {}),
        ("post", "/metrics", 405, {}),
        ("post", "/", 405, {}),
        ("delete", "/api/fib/5/", 401, {}),
        ("get", "/readyz", 200, {}),
    ],
)
def test_every_json_body_is_compact(client, method, url, status, extra):
    response = getattr(client, method)(url, **extra)
    assert response.status_code == status
    assert response.content == compact(response.content), response.content


def test_the_404_body_is_the_one_the_readme_shows(client):
    assert client.get("/nope").content == b'{"detail":"Not found."}'


def test_the_500_and_403_handlers_are_compact_json(rf):
    from mathsite.views import permission_denied, server_error

    assert server_error(rf.get("/")).content == b'{"detail":"Internal server error."}'
    assert permission_denied(rf.get("/")).content == (
        b'{"detail":"You do not have permission to perform this action."}'
    )
