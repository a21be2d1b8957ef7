"""The admin with fib residues in the log (``?mod=M`` results): shown, searched, evicted, deleted.

Residues come from ``tests.support.reference.fib_mod_reference`` (matrix
power mod M), not from the service.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from compute import services
from compute.admin.statistics import chart_rows, chart_series
from compute.domain.kinds import registry
from compute.domain.query import ResultQuery
from compute.models import ComputedResult
from tests.admin.pages import (
    CHANGELIST,
    cell,
    change_url,
    messages_of,
    page_rows,
    redis_has,
    run_action,
)
from tests.support.callers import SETUP
from tests.support.reference import fib_mod_reference

pytestmark = pytest.mark.django_db

BIG = 10**18
QUERIES = {
    "fib10": ResultQuery("fib", 10),
    "fib10m7": ResultQuery("fib", 10, mod=7),
    "big": ResultQuery("fib", BIG, mod=BIG),
}


@pytest.fixture
def rows() -> dict[str, ComputedResult]:
    """Compute a plain fib and two residues through the service (rows + Redis entries)."""
    for query in QUERIES.values():
        services.result_get(caller=SETUP, query=query)
    return {
        name: ComputedResult.objects.get(kind="fib", n=q.n, modulus=q.modulus)
        for name, q in QUERIES.items()
    }


def test_the_changelist_names_the_modulus(admin_client, rows):
    page = page_rows(admin_client.get(CHANGELIST).content.decode())
    assert cell(page[rows["fib10m7"].pk], "precision_display") == "mod 7"
    assert cell(page[rows["big"].pk], "precision_display") == "mod 1,000,000,000,000,000,000"
    assert cell(page[rows["fib10"].pk], "precision_display") == "exact"
    expected = str(fib_mod_reference(BIG, BIG))
    assert expected in cell(page[rows["big"].pk], "preview_display")
    assert cell(page[rows["big"].pk], "in_redis") == "yes"


def test_search_by_n_finds_residues_too(admin_client, rows):
    found = page_rows(admin_client.get(CHANGELIST, {"q": "10"}).content.decode())
    assert set(found) == {rows["fib10"].pk, rows["fib10m7"].pk}
    found = page_rows(admin_client.get(CHANGELIST, {"q": str(BIG)}).content.decode())
    assert set(found) == {rows["big"].pk}


def test_detail_links_to_the_residue(admin_client, client, rows):
    page = admin_client.get(change_url(rows["fib10m7"])).content.decode()
    link = re.search(r'<a href="([^"]+)" class="result-api-link">', page).group(1)
    assert link == "/api/fib/10/?mod=7"
    assert client.get(link).json() == {"cached": True, "result": 6, "n": 10, "mod": 7}
    assert ComputedResult.objects.get(pk=rows["fib10m7"].pk).__str__() == "fib(10) mod 7"


def test_evict_and_delete_touch_only_the_residue(admin_client, rows, redis_client):
    response = run_action(admin_client, "evict_from_cache", [rows["fib10m7"]])
    assert messages_of(response)[0].startswith("Evicted 1 result from the cache: fib(10) mod 7.")
    assert not redis_has(redis_client, QUERIES["fib10m7"])
    assert redis_has(redis_client, QUERIES["fib10"]) and redis_has(redis_client, QUERIES["big"])
    url = reverse("admin:compute_computedresult_delete", args=[rows["big"].pk])
    admin_client.post(url, {"post": "yes"}, follow=True)
    assert not redis_has(redis_client, QUERIES["big"])
    assert not ComputedResult.objects.filter(modulus=BIG).exists()
    assert ComputedResult.objects.count() == 2


def test_recompute_a_residue(admin_client, client, rows, redis_client):
    ComputedResult.objects.filter(pk=rows["fib10m7"].pk).update(value="5", preview="5")
    services.results_evict(rows=[rows["fib10m7"]])
    response = run_action(admin_client, "recompute", [rows["fib10m7"]])
    assert "fib(10) mod 7" in messages_of(response)[0]
    assert ComputedResult.objects.get(pk=rows["fib10m7"].pk).value == "6"
    assert client.get("/api/fib/10/?mod=7").json()["result"] == 6


def test_residues_have_their_own_chart_series(rows):
    series, _ = chart_series(chart_rows())
    by_label = {s.label: s.points for s in series}
    assert [n for n, _ in by_label["fib mod M"]] == [BIG, 10]
    assert [n for n, _ in by_label["fib"]] == [10]
    assert registry.get("fib").series_of(precision=0, modulus=7) == "fib-mod"
