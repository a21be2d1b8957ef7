"""Every way in reaches the one service entrance, and the service keeps the guarantees.

Regression tests of issue 18's findings, each through every entrance it
concerns:

- a residue fib(n) mod M logged first, then ``warm_cache fib n n``: the
  cache must get fib(n) itself, never the residue (which has fib(n)'s digit
  count and last digit, so the content check alone would pass it), through
  the API, the old route and the WSGI front;
- a client whose digit budget is spent, or who is beyond its computation
  slots, is refused (429) by the front page's form and by the convergence
  picture as by the API, and nothing is computed or logged for it;
- system callers (``warm_cache``, the admin) are charged to no client and
  counted per caller; the picture is drawn once under its stampede lock.

Reference values: fast doubling on Python integers (``tests.support.reference``).
"""

from __future__ import annotations

import copy
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client as DjangoClient
from prometheus_client import REGISTRY

from compute import services
from compute.admission import Client, System, process_slots
from compute.cache import result_cache
from compute.domain import convergence
from compute.models import ComputedResult
from tests.http.test_wsgi import CountingApp, call
from tests.support.reference import fib_reference

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection")]

HOUR = 3600
T0 = HOUR * 500_000 + 600.0
SPENDER = "203.0.113.77"


def look_alike_modulus(n: int) -> int:
    """Return an M below fib(n) whose residue has fib(n)'s digit count and last digit.

    M = fib(n) - R with R = 10**(d-1) plus fib(n)'s last digit: R < M, so
    fib(n) mod M = R, which has d digits and ends like fib(n); M ends in 0,
    so the residue check's last-digit rule holds too.
    """
    value = fib_reference(n)
    digits = len(str(value))
    residue = 10 ** (digits - 1) + value % 10
    modulus = value - residue
    assert residue < modulus and value % modulus == residue
    return modulus


@pytest.mark.parametrize("n", [20, 67, 68, 73])
def test_warm_cache_after_a_residue_caches_fib_n_itself(n):
    modulus = 5000 if n == 20 else look_alike_modulus(n)
    client = DjangoClient()
    residue = client.get(f"/api/fib/{n}/?mod={modulus}").json()
    assert residue["result"] == fib_reference(n) % modulus != fib_reference(n)

    call_command("warm_cache", "fib", str(n), str(n), "--no-progress", verbosity=0)

    expected = fib_reference(n)
    for path in (f"/api/fib/{n}/", f"/fib/{n}"):
        body = client.get(path).json()
        assert body["result"] == expected, path
    front = CountingApp()
    from compute.http.wsgi import ResultFront

    app = ResultFront(front)
    for _ in range(3):  # Django teaches the front its headers, then it answers alone
        status, _headers, body = call(app, f"/api/fib/{n}/")
        assert status == "200 OK" and f'"result":{expected},'.encode() in body
    rows = ComputedResult.objects.filter(kind="fib", n=n)
    assert sorted(rows.values_list("modulus", "value")) == [
        (0, str(expected)),
        (modulus, str(fib_reference(n) % modulus)),
    ]


@pytest.fixture
def spent_budget(settings, monkeypatch):
    """Clients told apart by X-Forwarded-For; a 1000-digit budget that SPENDER has spent."""
    framework = copy.deepcopy(settings.REST_FRAMEWORK)
    framework["NUM_PROXIES"] = 1
    settings.REST_FRAMEWORK = framework
    settings.COMPUTE_DIGITS_PER_HOUR = 1000
    monkeypatch.setattr(result_cache.budget, "clock", lambda: T0)
    response = DjangoClient().get("/api/fib/4700/", HTTP_X_FORWARDED_FOR=SPENDER)  # 983 digits
    assert response.status_code == 200
    refused = DjangoClient().get("/api/fib/1000/", HTTP_X_FORWARDED_FOR=SPENDER)
    assert refused.status_code == 429  # the API refuses it: the entrances below must too


def form(n: int, client: str = SPENDER):
    return DjangoClient().get(
        f"/?kind=fib&n={n}", HTTP_ACCEPT="text/html", HTTP_X_FORWARDED_FOR=client
    )


def picture(n: int, client: str = SPENDER):
    return DjangoClient().get(f"/api/pi/{n}/convergence/", HTTP_X_FORWARDED_FOR=client)


def test_the_form_refuses_a_client_whose_budget_is_spent(spent_budget):
    refused = form(1000)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "budget of 1000 digits per hour is spent" in refused.content.decode()
    assert not ComputedResult.objects.filter(kind="fib", n=1000).exists()
    # Another client computes it, and then the spent one gets the cached value.
    assert form(1000, client="203.0.113.78").status_code == 200
    assert form(1000).status_code == 200


def test_the_picture_refuses_a_client_whose_budget_is_spent(spent_budget, redis_client):
    refused = picture(4321)
    assert refused.status_code == 429
    assert refused["Retry-After"] and "budget" in refused.json()["detail"]
    key = result_cache.make_key(convergence.convergence_cache_key(4321))
    assert redis_client.exists(key) == 0  # nothing drawn, nothing stored


def test_the_picture_is_charged_to_the_budget(settings, monkeypatch, redis_client):
    settings.COMPUTE_DIGITS_PER_HOUR = services.PICTURE_DIGITS * 2
    monkeypatch.setattr(result_cache.budget, "clock", lambda: T0)
    assert picture(1001, client="127.0.0.1").status_code == 200
    assert picture(1001, client="127.0.0.1").status_code == 200  # cached: not charged again
    assert picture(1002, client="127.0.0.1").status_code == 200
    refused = picture(1003, client="127.0.0.1")
    assert refused.status_code == 429 and "budget" in refused.json()["detail"]


def test_the_form_and_the_picture_refuse_a_client_beyond_its_compute_slots():
    # Another computation of this client (127.0.0.1) runs in this process.
    with process_slots.hold("127.0.0.1"):
        busy = DjangoClient().get("/?kind=fib&n=2345", HTTP_ACCEPT="text/html")
        assert busy.status_code == 429
        assert "COMPUTE_CONCURRENCY_PER_CLIENT" in busy.content.decode()
        drawn = DjangoClient().get("/api/pi/2345/convergence/")
        assert drawn.status_code == 429 and drawn["Retry-After"] == "1"
    assert not ComputedResult.objects.filter(n=2345).exists()
    assert DjangoClient().get("/?kind=fib&n=2345", HTTP_ACCEPT="text/html").status_code == 200


def counted(caller: str, kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "mathsite_system_computations_total", {"caller": caller, "kind": kind}
    )
    return value or 0.0


def test_system_callers_are_charged_to_no_client_and_counted_by_name(
    settings, monkeypatch, redis_client
):
    settings.COMPUTE_DIGITS_PER_HOUR = 10  # less than any fib(n) of the range below costs
    monkeypatch.setattr(result_cache.budget, "clock", lambda: T0)
    before = counted("warm_cache", "fib")
    call_command("warm_cache", "fib", "100", "119", "--no-progress", verbosity=0)
    assert counted("warm_cache", "fib") - before == 20
    assert ComputedResult.objects.filter(kind="fib").count() == 20
    assert not list(redis_client.scan_iter(match=result_cache.make_key("budget:*")))


@pytest.mark.django_db(transaction=True)
def test_a_system_caller_waits_for_a_slot_instead_of_being_refused(settings):
    settings.COMPUTE_CONCURRENCY, settings.COMPUTE_QUEUE_LENGTH = 1, 0
    done = threading.Event()
    outcome = {}

    def ask() -> None:
        query = services.ResultQuery("fib", 777)
        try:
            outcome["value"] = services.result_get(query=query, caller=System("tests")).payload.text
        finally:
            connection.close()
            done.set()

    with process_slots.hold("someone"):
        worker = threading.Thread(target=ask)
        worker.start()
        assert not done.wait(0.3)  # waiting, not refused
    assert done.wait(10)
    worker.join()
    assert outcome["value"] == str(fib_reference(777))


def test_the_picture_is_drawn_once_under_its_stampede_lock(settings, monkeypatch):
    settings.COMPUTE_OFFLOAD_DIGITS = None  # drawn in this process, where it is counted
    drawn = []
    real = convergence.convergence_svg_bytes

    def counting(n: int) -> bytes:
        drawn.append(n)
        return real(n)

    monkeypatch.setattr(convergence, "convergence_svg_bytes", counting)
    barrier = threading.Barrier(6)
    pictures: list[bytes] = []

    def ask() -> None:
        barrier.wait(timeout=5)
        svg, _ = services.convergence_picture(n=98765, caller=Client(f"c{len(pictures)}"))
        pictures.append(svg)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert drawn == [98765]
    assert len(pictures) == 6 and len(set(pictures)) == 1
    assert pictures[0].startswith(b"<?xml")
