"""Large computations run in computation processes (``compute.admission.offload``).

Real child processes (``spawn``); the functions sent are this module's
module-level functions, which report where they ran. The reference for
the value is fast doubling on Python integers.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from compute.admission.offload import NICE, ComputePool
from compute.domain import results
from compute.domain.cost import estimated_work
from compute.domain.query import ResultQuery
from tests.support.reference import fib_reference, unlimited_int_digits
from tests.support.servers import spawned_children

BIG = ResultQuery("fib", 300_000)  # 62,696 digits
SMALL = ResultQuery("fib", 3_000)  # 627 digits


def where(query: ResultQuery) -> str:
    """Return the pid and niceness of the process that runs this."""
    return f"{os.getpid()} {os.nice(0)}"


def fail_in_a_child(query: ResultQuery) -> str:
    """Raise where it runs (the caller must see the very exception)."""
    raise ArithmeticError(f"refused {query.n} in {os.getpid()}")


def die_in_a_child(query: ResultQuery) -> str:
    """Kill the process running this, unless it is the test's own (the fallback)."""
    if os.environ.get("OFFLOAD_TEST_PARENT") != str(os.getpid()):
        os.kill(os.getpid(), signal.SIGKILL)
    return "computed here"


def offloaded(computations: ComputePool, function, query: ResultQuery) -> str:
    """Run ``function(query)`` through the pool with the query's own work estimate."""
    return computations.run(function, query, work=estimated_work(query))


def pool(threshold: int | None = 50_000) -> ComputePool:
    return ComputePool(processes=lambda: 1, threshold=lambda: threshold)


def test_large_computations_run_in_a_child_at_a_lower_priority_small_ones_here():
    computations = pool()
    try:
        pid, nice = map(int, offloaded(computations, where, BIG).split())
        assert pid != os.getpid()
        assert nice == os.nice(0) + NICE
        assert offloaded(computations, where, SMALL).split()[0] == str(os.getpid())
        with unlimited_int_digits():
            assert offloaded(computations, results.result_text, BIG) == str(fib_reference(300_000))
        # The same child serves the next large computation (the pool is kept).
        assert int(offloaded(computations, where, BIG).split()[0]) == pid
    finally:
        computations.close()


def test_an_exception_in_the_child_is_raised_to_the_caller_and_the_child_kept():
    computations = pool()
    try:
        first = int(offloaded(computations, where, BIG).split()[0])
        with pytest.raises(ArithmeticError, match=f"refused 300000 in {first}"):
            offloaded(computations, fail_in_a_child, BIG)
        assert int(offloaded(computations, where, BIG).split()[0]) == first
    finally:
        computations.close()


def test_threads_share_the_children_one_computation_each_at_a_time():
    """Four threads, one child: each computation gets the child to itself, none is lost."""
    computations = pool()
    try:
        with ThreadPoolExecutor(4) as threads:
            ran = list(threads.map(lambda _: offloaded(computations, where, BIG), range(12)))
        assert len({line.split()[0] for line in ran}) == 1
        assert str(os.getpid()) not in {line.split()[0] for line in ran}
    finally:
        computations.close()


def test_threshold_none_computes_everything_here():
    computations = pool(threshold=None)
    assert offloaded(computations, where, BIG).split()[0] == str(os.getpid())


def test_a_child_that_dies_costs_one_computation_here_and_is_replaced(monkeypatch):
    monkeypatch.setenv("OFFLOAD_TEST_PARENT", str(os.getpid()))  # children inherit it
    computations = pool()
    try:
        first = int(offloaded(computations, where, BIG).split()[0])
        assert (
            offloaded(computations, die_in_a_child, BIG) == "computed here"
        )  # after the child died
        second = int(offloaded(computations, where, BIG).split()[0])
        assert second not in (first, os.getpid())
    finally:
        computations.close()


def test_start_spawns_every_computation_process_before_any_computation():
    before = spawned_children(os.getpid())
    computations = ComputePool(processes=lambda: 2, threshold=lambda: 50_000)
    try:
        started = computations.start()
        assert len(started) == 2
        ran_in = {future.result(timeout=60) for future in started}
        children = spawned_children(os.getpid()) - before
        assert len(children) == 2  # both spawned, though the tasks may have shared one
        assert ran_in <= children
        # A large computation then runs in one of them, already niced.
        pid, nice = map(int, offloaded(computations, where, BIG).split())
        assert pid in children and nice == os.nice(0) + NICE
    finally:
        computations.close()


def test_start_spawns_nothing_when_nothing_is_offloaded():
    assert pool(threshold=None).start() == []


def test_computation_processes_end_soon_after_their_worker_is_killed():
    """A server worker killed with SIGKILL (or restarted) must not leave its computation
    processes behind: each would wait for work forever, holding its memory."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from compute.admission.offload import ComputePool\n"
        "pool = ComputePool(processes=lambda: 2, threshold=lambda: 1)\n"
        "pids = [f.result() for f in pool.start()]\n"
        "print(' '.join(map(str, pids)), flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        children = [int(pid) for pid in worker.stdout.readline().split()]
        assert len(children) == 2 and all(_alive(pid) for pid in children)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


def _alive(pid: int) -> bool:
    """Return True if ``pid`` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
