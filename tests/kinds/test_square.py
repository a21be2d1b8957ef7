"""A third kind, declared in one module (``tests.kinds.square``), served by every surface.

Runs only under ``tests.settings_square`` (``RESULT_KINDS`` plus square),
in a process of its own: ``tests/test_kinds_process.py`` starts it, so the
rest of the suite keeps seeing two kinds. Nothing of the app knows the
name "square": the URLconf, the WSGI front, the log, the list, DELETE, the
admin and its statistics, the schema, the front page's form, ``warm_cache``,
the budget and the metrics all take it from the registry. Reference: n * n
in Python, or the digits written out.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client as DjangoClient
from prometheus_client import REGISTRY
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from compute.cache import result_cache
from compute.domain.kinds import registry
from compute.domain.query import ResultQuery
from compute.http.wsgi import ResultFront
from compute.models import ComputedResult
from tests.http.test_wsgi import CountingApp, call

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("keep_test_connection"),
    pytest.mark.skipif(
        "tests.kinds.square.KIND" not in settings.RESULT_KINDS,
        reason="runs under tests.settings_square (tests/test_kinds_process.py starts it)",
    ),
]


def test_the_registry_has_the_third_kind_after_the_two():
    assert registry.names() == ("pi", "fib", "square")


def test_the_api_computes_then_serves_it_cached_and_logs_it():
    client = DjangoClient()
    first = client.get("/api/square/12345/")
    assert first.status_code == 200
    assert json.loads(first.content) == {"cached": False, "result": 12345 * 12345, "n": 12345}
    second = client.get("/api/square/12345/?format=string")
    assert json.loads(second.content) == {"cached": True, "result": "152399025", "n": 12345}
    assert second["ETag"] == 'W/"square-12345-s-v1"'
    row = ComputedResult.objects.get(kind="square")
    assert (row.n, row.value, row.length) == (12345, "152399025", 9)
    # Its limit is its own setting; its options are none.
    too_big = client.get(f"/api/square/{10**9 + 1}/")
    assert too_big.status_code == 400 and "SQUARE_MAX_N" in too_big.json()["n"][0]
    assert client.get("/api/square/3/?digits=5").status_code == 400
    assert client.get("/api/square/3/?mod=5").status_code == 400


def test_a_hit_through_the_wsgi_front_with_etag_and_304():
    DjangoClient().get("/api/square/77/")
    django = CountingApp()
    front = ResultFront(django)
    for _ in range(2):  # the view teaches the front the site's headers
        call(front, "/api/square/77/")
    calls = django.calls
    status, headers, body = call(front, "/api/square/77/")
    assert (status, body) == ("200 OK", b'{"cached":true,"result":5929,"n":77}')
    assert django.calls == calls  # answered by the front alone
    assert ("ETag", 'W/"square-77-v1"') in headers
    status, _, body = call(front, "/api/square/77/", if_none_match='W/"square-77-v1"')
    assert (status, body) == ("304 Not Modified", b"")


def test_the_list_and_delete():
    DjangoClient().get("/api/square/9/")
    listed = APIClient().get("/api/square/").json()["results"]
    assert [(item["n"], item["digits"], item["preview"]) for item in listed] == [(9, None, "81")]
    assert listed[0]["url"] == "http://testserver/api/square/9/"
    staff = User.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="delete_computedresult"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    assert api.delete("/api/square/9/").status_code == 204
    assert not ComputedResult.objects.filter(kind="square").exists()
    assert DjangoClient().get("/api/square/9/").json()["cached"] is False


def test_the_admin_list_and_statistics(admin_client):
    DjangoClient().get("/api/square/31/")
    listing = admin_client.get("/admin/compute/computedresult/").content.decode()
    assert "square" in listing and "961" in listing
    filtered = admin_client.get("/admin/compute/computedresult/", {"kind__exact": "square"})
    assert filtered.status_code == 200 and "961" in filtered.content.decode()
    statistics = admin_client.get("/admin/compute/computedresult/statistics/").content.decode()
    assert 'class="kind-square"' in statistics
    row = ComputedResult.objects.get(kind="square")
    detail = admin_client.get(f"/admin/compute/computedresult/{row.pk}/change/")
    assert detail.status_code == 200 and "exact" in detail.content.decode()


def test_the_schema_describes_it():
    schema = yaml.safe_load(DjangoClient().get("/api/schema/").content)
    assert {"/api/square/", "/api/square/{n}/"} <= set(schema["paths"])
    component = schema["components"]["schemas"]["SquareResult"]
    assert component["description"] == "square(n) = n**2, exact."
    get = schema["paths"]["/api/square/{n}/"]["get"]
    n = next(p for p in get["parameters"] if p["name"] == "n")
    assert n["schema"]["maximum"] == 10**9 and "SQUARE_MAX_N" in n["description"]
    assert any(tag["name"] == "square" for tag in schema["tags"])


def test_the_front_pages_form():
    page = DjangoClient().get("/?kind=square&n=1111", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="square"' in html and 'id="result" class="result">1234321<' in html


def test_warm_cache_and_its_metrics():
    call_command("warm_cache", "square", "1", "20", "--no-progress", verbosity=0)
    values = dict(ComputedResult.objects.filter(kind="square").values_list("n", "value"))
    assert values == {n: str(n * n) for n in range(1, 21)}
    computed = REGISTRY.get_sample_value(
        "mathsite_system_computations_total", {"caller": "warm_cache", "kind": "square"}
    )
    assert computed == 20
    assert result_cache.exists_many([ResultQuery("square", n) for n in (1, 20)]) == [True, True]


def test_the_budget_charges_its_digits(settings):
    framework = copy.deepcopy(settings.REST_FRAMEWORK)
    framework["NUM_PROXIES"] = 1
    settings.REST_FRAMEWORK = framework
    settings.COMPUTE_DIGITS_PER_HOUR = 20
    client = DjangoClient(HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert client.get("/api/square/999999999/").status_code == 200  # 18 digits
    refused = client.get("/api/square/999999998/")
    assert refused.status_code == 429 and "this result costs 18" in refused.json()["detail"]
