"""A graceful stop (SIGTERM) is graceful: workers exit by themselves, computation processes too.

A granian worker starts its computation processes as it starts
(``compute.admission.offload``). Python's multiprocessing waits at exit for
the children of a process, and the pool's children wait for work: a worker
told to stop would hang until granian's kill timeout (10 s in production,
3 s here) and be killed. Measured on a live server: the stop's duration
and that no computation process outlives it.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.servers import LiveServer, RedisServer, exited, http_get, spawned_children

pytestmark = pytest.mark.slow

KILL_TIMEOUT = 3.0  # LiveServer's GRANIAN_WORKERS_KILL_TIMEOUT


def test_sigterm_stops_workers_and_their_computation_processes_without_the_kill_timeout(
    tmp_path_factory,
):
    store = RedisServer(tmp_path_factory.mktemp("graceful-redis")).start()
    server = LiveServer(tmp_path_factory.mktemp("graceful-web"), redis_url=store.url(), workers=1)
    try:
        server.start()
        assert http_get(server.port, "/api/fib/300000/").status == 200  # offloaded
        (worker,) = server.worker_pids()
        children = spawned_children(worker)
        assert children, "the worker's computation processes"
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=15)
        stopped = time.monotonic() - started
        assert stopped < KILL_TIMEOUT, f"stopped in {stopped:.2f} s: the worker was killed"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not all(map(exited, children)):
            time.sleep(0.05)
        assert all(map(exited, children))
    finally:
        server.stop()
        store.stop()
