"""The in-process tier's size is a gauge per live worker (``mathsite_local_cache_bytes``).

In one process the gauge follows the tier through stores and clears. On
real servers, every worker that has stored a result reports it under its
pid, and a worker that died leaves no series behind: granian's launcher
sweeps its files (``launcher.server.sweep_dead_workers``), gunicorn's
configuration drops them when the master reaps it (``child_exit``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from compute.cache import result_cache
from launcher.server import sweep_dead_workers
from tests.support.reference import fib_reference
from tests.support.servers import (
    LiveServer,
    RedisServer,
    exited,
    http_get,
    metric_samples,
    wait_until,
)

N = 77
PATH = f"/api/fib/{N}/"


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


@pytest.mark.django_db
def test_the_gauges_follow_the_tier_in_process():
    result_cache.local.clear()
    assert gauge("mathsite_local_cache_bytes") == 0
    assert gauge("mathsite_local_cache_entries") == 0
    reply = Client().get("/api/fib/4321/")
    assert reply.status_code == 200 and reply.json()["cached"] is False
    assert len(result_cache.local) == 1
    assert gauge("mathsite_local_cache_entries") == 1
    assert gauge("mathsite_local_cache_bytes") == result_cache.local.nbytes > 900
    result_cache.local.clear()
    assert gauge("mathsite_local_cache_bytes") == 0


def tier_bytes_by_pid(port: int) -> dict[int, float]:
    """Return each worker's ``mathsite_local_cache_bytes`` from /metrics, by pid."""
    return {
        int(labels["pid"]): value
        for labels, value in metric_samples(port, "mathsite_local_cache_bytes")
    }


def every_worker_reports(server: LiveServer) -> bool:
    """Ask for the hit on new connections (spread over the workers); True once all report."""
    for _ in range(5):
        reply = http_get(server.port, PATH)
        assert reply.status == 200 and reply.data["result"] == fib_reference(N)
    reported = tier_bytes_by_pid(server.port)
    return set(reported) == server.worker_pids() and all(size > 0 for size in reported.values())


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("tier-gauge-redis")).start()
    yield server.url()
    server.stop()


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_each_live_worker_reports_its_tier_and_a_dead_one_none(tmp_path, redis_url, kind):
    server = LiveServer(tmp_path / "web", redis_url=redis_url, workers=2, server=kind)
    try:
        server.start()
        assert wait_until(lambda: every_worker_reports(server), 15, interval=0.1)
        (victim, *_rest) = sorted(server.worker_pids())
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: exited(victim) and len(server.worker_pids()) == 2, 20)
        if kind == "granian":  # what launcher.server's sweeper does every few seconds
            assert sweep_dead_workers(Path(server.folder / "metrics")) == 1
        assert wait_until(lambda: every_worker_reports(server), 15, interval=0.1)
        assert victim not in tier_bytes_by_pid(server.port)
    finally:
        server.stop()
