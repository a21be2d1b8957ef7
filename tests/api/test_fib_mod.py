"""fib(n) mod M over HTTP (``?mod=M``): values, the cache, the log, ETags, DELETE and the 400s.

Expected residues come from ``tests.support.reference`` (matrix power mod M,
or the exact fib(n) reduced), never from the service's own fast doubling.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from compute import services
from compute.cache import result_cache
from compute.domain.query import ResultQuery
from compute.models import ComputedResult
from tests.support.entries import sign, unsigned
from tests.support.reference import fib_mod_reference, fib_reference

pytestmark = pytest.mark.django_db

BIG = 10**18


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client() -> APIClient:
    user = User.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="delete_computedresult"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def get_json(client: APIClient, url: str, **extra):
    response = client.get(url, **extra)
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response, json.loads(response.content)


# --- values ----------------------------------------------------------------------------


def test_spec_example_body_and_cached_flag(client):
    response, body = get_json(client, "/api/fib/10/?mod=10")
    assert response.status_code == 200
    assert response.content == b'{"cached":false,"result":5,"n":10,"mod":10}'
    _, body = get_json(client, "/api/fib/10/?mod=10")
    assert body == {"cached": True, "result": 5, "n": 10, "mod": 10}


@pytest.mark.parametrize(
    ("n", "m"),
    [(0, 1), (1, 1), (2, 1), (0, BIG), (1, BIG), (2, BIG), (1000, 7), (BIG, BIG), (BIG, 1),
     (BIG, 10**9 + 7), (BIG - 1, BIG - 1), (123456789012345678, 987654321098765432)],
)  # fmt: skip
def test_values_against_matrix_power(client, n, m):
    _, body = get_json(client, f"/api/fib/{n}/?mod={m}")
    assert body == {"cached": False, "result": fib_mod_reference(n, m), "n": n, "mod": m}
    assert isinstance(body["result"], int)


@pytest.mark.parametrize("n", [0, 1, 2, 93, 4321, 99_999])
def test_values_against_the_exact_fib(client, n):
    exact = fib_reference(n)
    for m in (10, 10**9 + 7, BIG):
        assert get_json(client, f"/api/fib/{n}/?mod={m}")[1]["result"] == exact % m


def test_format_string_shares_the_value_and_has_its_own_etag(client):
    url = f"/api/fib/{BIG}/?mod={BIG}"
    expected = fib_mod_reference(BIG, BIG)
    cold, body = get_json(client, url + "&format=string")
    assert body == {"cached": False, "result": str(expected), "n": BIG, "mod": BIG}
    assert cold["ETag"] == f'W/"fib-{BIG}-m{BIG}-s-v1"'
    hot, body = get_json(client, url)
    assert body == {"cached": True, "result": expected, "n": BIG, "mod": BIG}
    assert hot["ETag"] == f'W/"fib-{BIG}-m{BIG}-v1"'


def test_the_old_service_route_takes_mod_too(client):
    assert get_json(client, "/fib/10?mod=10")[1] == {
        "cached": False,
        "result": 5,
        "n": 10,
        "mod": 10,
    }
    assert get_json(client, "/fib/10/?mod=10")[1]["cached"] is True
    assert get_json(client, "/api/fib/10/?mod=10")[1]["cached"] is True


# --- distinct results: cache keys and log rows ----------------------------------------------


def test_each_modulus_is_its_own_cached_and_logged_result(client, redis_client):
    assert get_json(client, "/api/fib/10/")[1] == {"cached": False, "result": 55, "n": 10}
    assert get_json(client, "/api/fib/10/?mod=10")[1]["cached"] is False
    assert get_json(client, "/api/fib/10/?mod=7")[1] == {
        "cached": False,
        "result": 6,
        "n": 10,
        "mod": 7,
    }
    for query in (
        ResultQuery("fib", 10),
        ResultQuery("fib", 10, mod=10),
        ResultQuery("fib", 10, mod=7),
    ):
        assert redis_client.exists(result_cache.make_key(query.cache_key)) == 1, query
    seven = result_cache.make_key(ResultQuery("fib", 10, mod=7).cache_key)
    assert unsigned(seven, redis_client.get(seven)) == b"r6"
    rows = ComputedResult.objects.filter(kind="fib", n=10).order_by("modulus")
    assert [(r.modulus, r.value, r.length) for r in rows] == [
        (0, "55", 2),
        (7, "6", 1),
        (10, "5", 1),
    ]


def test_served_from_the_log_after_redis_loses_it(client, redis_client):
    get_json(client, f"/api/fib/{BIG}/?mod=1000")
    result_cache.clear_namespace()
    _, body = get_json(client, f"/api/fib/{BIG}/?mod=1000")
    assert body == {"cached": True, "result": fib_mod_reference(BIG, 1000), "n": BIG, "mod": 1000}
    key = result_cache.make_key(ResultQuery("fib", BIG, mod=1000).cache_key)
    assert redis_client.exists(key) == 1


def test_a_foreign_entry_under_a_mod_key_is_discarded(client, redis_client):
    """An entry that cannot be this key's residue (not below M) is never served."""
    get_json(client, "/api/fib/10/?mod=10")
    result_cache.reset()  # forget the process tier: the next read goes to Redis
    key = result_cache.make_key(ResultQuery("fib", 10, mod=10).cache_key)
    redis_client.set(key, sign(key, b"r55"))  # even signed with the deployment's secret
    _, body = get_json(client, "/api/fib/10/?mod=10")
    assert body == {"cached": True, "result": 5, "n": 10, "mod": 10}  # refilled from the log


def test_the_log_is_unique_per_modulus_on_the_database():
    def row(modulus: int) -> ComputedResult:
        return ComputedResult(
            kind="fib", n=10, modulus=modulus, value="5", preview="5", length=1,
            compute_ms=0.1, computed_at=timezone.now(),
        )  # fmt: skip

    row(10).save()
    row(0).save()
    row(7).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        row(10).save()


# --- HTTP caching ------------------------------------------------------------------------------


def test_etag_and_304(client):
    cold = client.get("/api/fib/10/?mod=10")
    hot = client.get("/api/fib/10/?mod=10")
    assert cold["ETag"] == hot["ETag"] == 'W/"fib-10-m10-v1"'
    assert client.get("/api/fib/10/")["ETag"] == 'W/"fib-10-v1"'
    not_modified = client.get("/api/fib/10/?mod=10", HTTP_IF_NONE_MATCH='W/"fib-10-m10-v1"')
    assert not_modified.status_code == 304 and not_modified.content == b""
    other = client.get("/api/fib/10/?mod=10", HTTP_IF_NONE_MATCH='W/"fib-10-v1"')
    assert other.status_code == 200


def test_304_comes_before_any_lookup(client):
    response = client.get(f"/api/fib/{BIG}/?mod=3", HTTP_IF_NONE_MATCH=f'W/"fib-{BIG}-m3-v1"')
    assert response.status_code == 304
    assert not ComputedResult.objects.exists()


# --- the list ------------------------------------------------------------------------------------


def test_list_items_carry_mod_and_a_url_naming_it(client):
    get_json(client, "/api/fib/12/")
    get_json(client, f"/api/fib/{BIG}/?mod=97")
    _, body = get_json(client, "/api/fib/")
    newest, oldest = body["results"]
    assert newest["n"] == BIG and newest["mod"] == 97 and newest["digits"] is None
    assert newest["preview"] == str(fib_mod_reference(BIG, 97))
    assert newest["url"] == f"http://testserver/api/fib/{BIG}/?mod=97"
    assert oldest["mod"] is None and oldest["url"] == "http://testserver/api/fib/12/"
    followed = client.get(newest["url"])
    assert json.loads(followed.content)["cached"] is True


# --- DELETE ---------------------------------------------------------------------------


def test_delete_names_one_residue_only(staff_client, client):
    for url in ("/api/fib/20/", "/api/fib/20/?mod=10", "/api/fib/20/?mod=11"):
        get_json(client, url)
    assert client.delete("/api/fib/20/?mod=10").status_code == 401
    assert staff_client.delete("/api/fib/20/?mod=10").status_code == 204
    assert list(
        ComputedResult.objects.filter(kind="fib", n=20)
        .order_by("modulus")
        .values_list("modulus", flat=True)
    ) == [0, 11]
    assert get_json(client, "/api/fib/20/?mod=10")[1]["cached"] is False
    assert get_json(client, "/api/fib/20/?mod=11")[1]["cached"] is True
    assert get_json(client, "/api/fib/20/")[1]["cached"] is True
    assert staff_client.delete(f"/api/fib/{BIG}/?mod=5").status_code == 204  # never existed
    assert staff_client.delete("/api/fib/20/?mod=0").status_code == 400


# --- 400s -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field", "fragment"),
    [
        ("/api/pi/10/?mod=10", "mod", "fib only"),
        ("/pi/10?mod=10", "mod", "fib only"),
        ("/pi?n=10&mod=10", "mod", "fib only"),
        ("/api/pi/10/?digits=5&mod=10", "mod", "fib only"),
        ("/api/fib/10/?digits=5&mod=10", "digits", "pi only"),
        ("/api/fib/10/?mod=0", "mod", "at least 1"),
        ("/api/fib/10/?mod=-5", "mod", "at least 1"),
        (f"/api/fib/10/?mod={BIG + 1}", "mod", f"at most {BIG} (FIB_MOD_MAX_M)"),
        (f"/api/fib/10/?mod={'9' * 5000}", "mod", "FIB_MOD_MAX_M"),
        ("/api/fib/10/?mod=", "mod", "mod"),
        ("/api/fib/10/?mod=abc", "mod", "digits 0-9"),
        ("/api/fib/10/?mod=1.0", "mod", "digits 0-9"),
        ("/api/fib/10/?mod=1e3", "mod", "digits 0-9"),
        ("/api/fib/10/?mod=%2B7", "mod", "digits 0-9"),
        ("/api/fib/10/?mod=1_000", "mod", "digits 0-9"),
        ("/api/fib/10/?mod=%D9%A7", "mod", "digits 0-9"),
        (f"/api/fib/{BIG + 1}/?mod=10", "n", f"at most {BIG} (FIB_MOD_MAX_N)"),
        (f"/fib/{BIG + 1}?mod=10", "n", "FIB_MOD_MAX_N"),
        ("/api/fib/1000001/", "n", "at most 1000000 (FIB_MAX_N)"),
        ("/api/fib/10/?mod=10&format=xml", "format", "string"),
    ],
)
def test_bad_input_is_a_400_naming_the_limit(client, url, field, fragment):
    response = client.get(url)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    assert fragment in " ".join(json.loads(response.content)[field])
    assert not ComputedResult.objects.exists()


def test_limits_are_settings(client, settings):
    settings.FIB_MOD_MAX_N, settings.FIB_MOD_MAX_M = 1000, 50
    body = json.loads(client.get("/api/fib/1001/?mod=7").content)
    assert body == {"n": ["n must be at most 1000 (FIB_MOD_MAX_N)."]}
    body = json.loads(client.get("/api/fib/5/?mod=51").content)
    assert body == {"mod": ["mod must be at most 50 (FIB_MOD_MAX_M)."]}
    assert get_json(client, "/api/fib/1000/?mod=50")[1]["result"] == fib_mod_reference(1000, 50)


def test_a_second_record_of_the_same_residue_loses_quietly():
    """What a racing second writer does: the unique constraint keeps the first row."""
    query = ResultQuery("fib", 10, mod=10)
    services.result_record(query=query, text="5", compute_ms=1.0)
    services.result_record(query=query, text="5", compute_ms=2.0)
    services.result_record(query=ResultQuery("fib", 10), text="55", compute_ms=1.0)
    rows = ComputedResult.objects.filter(kind="fib", n=10).order_by("modulus")
    assert [(r.modulus, r.compute_ms) for r in rows] == [(0, 1.0), (10, 1.0)]
