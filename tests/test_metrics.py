"""Prometheus metrics: counters move as known requests say they must, and /metrics is guarded.

Mirrors ``compute/metrics.py`` (and the ``/metrics`` view with its access
rule from ``mathsite/security.py``). Requests go through the whole
middleware stack with the test client; the counters are read from the
process's registry before and after, so each test asserts exact deltas.
Aggregation across server worker processes is tested on real processes in
``tests/test_two_instances.py``.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time

import pytest
from django.test import Client
from django.urls import resolve
from prometheus_client import REGISTRY

from compute import metrics
from compute.cache import result_cache
from compute.domain.query import ResultQuery
from compute.http.routes import ResultMatcher, result_routes
from tests.support.caches import PointedCache, backend_at
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_of(route: str, status: int, method: str = "GET") -> float:
    return sample("mathsite_http_requests_total", route=route, method=method, status=str(status))


def lookups(kind: str, result: str) -> float:
    return sample("mathsite_cache_lookups_total", kind=kind, result=result)


def computations(kind: str) -> float:
    return sample("mathsite_compute_duration_seconds_count", kind=kind)


class Delta:
    """Snapshot the counters a test cares about, then report how much each moved."""

    def __init__(self, **readers) -> None:
        self.readers = readers
        metrics.front_tally.flush()  # what earlier tests' threads counted lands now, not later
        self.before = {name: read() for name, read in readers.items()}

    def moved(self) -> dict[str, float]:
        metrics.front_tally.flush()
        return {name: read() - self.before[name] for name, read in self.readers.items()}


def test_a_cold_request_then_hits_on_both_routes_then_a_304():
    client = Client()
    delta = Delta(
        miss=lambda: lookups("fib", "miss"),
        hit=lambda: lookups("fib", "hit"),
        computed=lambda: computations("fib"),
        api_200=lambda: requests_of("fib-detail", 200),
        seed_200=lambda: requests_of("seed-fib", 200),
        api_304=lambda: requests_of("fib-detail", 304),
        duration=lambda: sample(
            "mathsite_http_request_duration_seconds_count",
            route="fib-detail",
            method="GET",
            status="200",
        ),
    )
    assert client.get("/api/fib/20/").json()["cached"] is False
    assert client.get("/api/fib/20/").json()["cached"] is True
    assert client.get("/fib/20").json()["cached"] is True
    assert client.get("/api/fib/20/", HTTP_IF_NONE_MATCH='W/"fib-20-v1"').status_code == 304
    assert delta.moved() == {
        "miss": 1,  # the cold request: counted once although two tiers were asked
        "hit": 2,
        "computed": 1,
        "api_200": 2,
        "seed_200": 1,
        "api_304": 1,
        "duration": 2,
    }


def test_a_miss_answered_from_the_log_is_not_a_computation():
    client = Client()
    client.get("/api/pi/30/?digits=5")
    result_cache.clear_namespace()  # Redis loses it; the log still has it
    delta = Delta(
        log=lambda: sample("mathsite_result_log_hits_total", kind="pi"),
        miss=lambda: lookups("pi", "miss"),
        computed=lambda: computations("pi"),
    )
    assert client.get("/api/pi/30/?digits=5").json()["cached"] is True
    assert delta.moved() == {"log": 1, "miss": 1, "computed": 0}


def test_compute_durations_are_observed():
    before = sample("mathsite_compute_duration_seconds_sum", kind="fib")
    Client().get("/api/fib/200000/")
    spent = sample("mathsite_compute_duration_seconds_sum", kind="fib") - before
    assert 0 < spent < 10


def test_errors_and_unknown_routes_have_bounded_route_labels():
    client = Client()
    delta = Delta(
        bad=lambda: requests_of("fib-detail", 400),
        unknown=lambda: requests_of("unresolved", 404),
        static=lambda: requests_of("static", 200),
        method=lambda: requests_of("pi-detail", 405, method="PUT"),
    )
    assert client.get("/api/fib/abc/").status_code == 400
    assert client.get("/no/such/page-1").status_code == 404
    assert client.get("/no/such/page-2").status_code == 404
    assert client.get("/static/admin/css/base.css").status_code == 200
    assert client.put("/api/pi/3/").status_code == 405
    assert delta.moved() == {"bad": 1, "unknown": 2, "static": 1, "method": 1}


def test_redis_errors_are_counted_by_type():
    dead = PointedCache(backend_at(f"redis://127.0.0.1:{free_port()}/0"))
    before = sample("mathsite_redis_errors_total", error="ConnectionError")
    dead.get_shared(ResultQuery("fib", 7))
    dead.get_shared(ResultQuery("fib", 7))  # the breaker is open: Redis not tried again
    assert sample("mathsite_redis_errors_total", error="ConnectionError") - before == 1


@pytest.mark.parametrize(
    "path",
    ["/api/pi/12/", "/api/fib/0/", "/pi/12", "/pi/12/", "/fib/9", "/fib/9/", "/pi", "/pi/"],
)
def test_hot_path_route_names_match_the_url_conf(path):
    route, _n = ResultMatcher(result_routes()).match(path)
    assert route.name == resolve(path).view_name


# --- /metrics ------------------------------------------------------------------------


def test_metrics_endpoint_serves_prometheus_text_to_localhost():
    client = Client()
    client.get("/api/fib/3/")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "mathsite_http_requests_total",
        "mathsite_http_request_duration_seconds_bucket",
        "mathsite_cache_lookups_total",
        "mathsite_compute_duration_seconds_count",
    ):
        assert name in text
    assert 'route="fib-detail"' in text


def test_metrics_are_not_public(settings):
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    # Relayed by a proxy on this host: the address proves nothing.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.20.30.40").status_code == 200
    assert client.get("/metrics").status_code == 403  # 127.0.0.1 no longer listed
    body = client.get("/metrics", REMOTE_ADDR="203.0.113.9").json()
    assert "METRICS_ALLOWED_IPS" in body["detail"]


def test_metrics_addresses_are_addresses_not_clients(settings):
    """A client is an IPv6 /64; an allowed address is one address, not its neighbours."""
    settings.METRICS_ALLOWED_IPS = ["2001:db8::1"]
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::2").status_code == 403
    # Behind a trusted proxy the header names the client, still never by address here.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    relayed = {"REMOTE_ADDR": "2001:db8::1", "HTTP_X_FORWARDED_FOR": "2001:db8::1"}
    assert client.get("/metrics", **relayed).status_code == 403


def test_metrics_token(settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    client = Client()
    bearer = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token", "REMOTE_ADDR": "198.51.100.7"}
    assert client.get("/metrics", **bearer).status_code == 200
    assert client.get("/metrics", **bearer, HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 200
    wrong = {**bearer, "HTTP_AUTHORIZATION": "Bearer s3cret-scrape-tokem"}
    assert client.get("/metrics", **wrong).status_code == 403
    assert client.get("/metrics").status_code == 403


@pytest.mark.parametrize("method", ["post", "put", "delete", "options", "trace"])
def test_metrics_answers_other_methods_with_a_json_405(client, method):
    response = getattr(client, method)("/metrics")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert "mathsite_http_requests" not in response.content.decode()
    assert response.json()["detail"].startswith("Method")


def test_the_front_tally_counts_without_a_lock_and_loses_nothing_to_flushes():
    """Each thread counts in a table of its own; flushes while they count add each request once."""
    tally = metrics.FrontTally()
    key = ("tally-threads", "GET", "200", None)
    before = requests_of("tally-threads", 200)
    before_count = sample(
        "mathsite_http_request_duration_seconds_count",
        route="tally-threads", method="GET", status="200",
    )  # fmt: skip
    go = threading.Barrier(5)

    def count(seconds: float) -> None:
        go.wait()
        for _ in range(100):
            for _ in range(100):
                tally.add_entry(key, seconds)
            time.sleep(0.0001)

    threads = [threading.Thread(target=count, args=(0.0001 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    go.wait()
    flushes = 0
    while any(thread.is_alive() for thread in threads):
        tally.flush()
        flushes += 1
        time.sleep(0.0001)
    for thread in threads:
        thread.join()
    tally.flush()
    assert flushes > 2
    assert requests_of("tally-threads", 200) - before == 4 * 100 * 100
    labels = {"route": "tally-threads", "method": "GET", "status": "200"}
    count = sample("mathsite_http_request_duration_seconds_count", **labels)
    assert count - before_count == 40_000
    # 10,000 requests each of 0, 0.1, 0.2 and 0.3 ms; the first bucket (0.5 ms) holds them all
    assert sample("mathsite_http_request_duration_seconds_sum", **labels) == pytest.approx(6.0)
    first = str(metrics.HTTP_DURATION._upper_bounds[0])
    assert sample("mathsite_http_request_duration_seconds_bucket", le=first, **labels) == count
    assert tally._tables == []  # the threads ended: their tables were taken in full and dropped


class _Answer:
    """Stands for a kept answer: the tally holds it only weakly."""


def test_a_kept_answers_sends_are_counted_in_the_first_bucket_until_it_is_gone():
    """Sends counted by the answer's own counter reach the request count, the histogram's
    first bucket and the kind's hits, add nothing to the sum, and are all flushed once the
    answer is gone; then the tally forgets the counter (no registration outlives it)."""
    tally = metrics.FrontTally()
    labels = {"route": "tally-kept", "method": "GET", "status": "200"}
    first = str(metrics.HTTP_DURATION._upper_bounds[0])

    def readings() -> dict[str, float]:
        return {
            "count": sample("mathsite_http_request_duration_seconds_count", **labels),
            "first": sample("mathsite_http_request_duration_seconds_bucket", le=first, **labels),
            "sum": sample("mathsite_http_request_duration_seconds_sum", **labels),
            "hits": lookups("fib", "hit"),
            "requests": requests_of("tally-kept", 200),
        }

    before = readings()
    answer, sends = _Answer(), itertools.count()
    tally.watch_kept(answer, ("tally-kept", "GET", "200", "fib"), sends)
    for _ in range(3):
        next(sends)
    tally.flush()
    tally.flush()  # nothing new: nothing added
    assert requests_of("tally-kept", 200) - before["requests"] == 3
    for _ in range(2):
        next(sends)  # sent just before the memo dropped it
    del answer
    gc.collect()
    tally.flush()
    assert tally._kept == []
    after = readings()
    moved = {name: after[name] - before[name] for name in before}
    assert moved == {"count": 5, "first": 5, "sum": 0.0, "hits": 5, "requests": 5}


def test_after_a_fork_a_kept_answers_earlier_sends_are_the_parents():
    """``forget_thread`` (after a fork, in the child): what the parent's answer counted
    before the fork is the parent's to flush; the child counts its own sends only."""
    tally = metrics.FrontTally()
    answer, sends = _Answer(), itertools.count()
    tally.watch_kept(answer, ("tally-fork", "GET", "200", None), sends)
    for _ in range(4):
        next(sends)
    before = requests_of("tally-fork", 200)
    tally.forget_thread()
    next(sends)
    tally.flush()
    assert requests_of("tally-fork", 200) - before == 1
    assert answer is not None
