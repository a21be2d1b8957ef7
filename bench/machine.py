"""How busy the machine is with work that is not the benchmark's (Linux /proc).

A benchmark on a shared 2-core machine is only as good as the machine's
quiet: this module measures the CPU time spent by processes outside the
benchmark's own process tree (the runner, its servers and load
generators), so the report can say how much foreign load each stage saw,
and ``wait_until_quiet`` can hold the start until the machine is idle;
``wait_for_time_wait`` lets the sockets a load run closed leave TIME_WAIT
before latency is measured.

    >>> before = snapshot(); ...; foreign_cpu_seconds(before, snapshot())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    """Machine-wide busy CPU seconds, ours (this process tree), and the wall clock."""

    busy: float
    ours: float
    wall: float


def _machine_busy() -> float:
    with contextlib.suppress(OSError):
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in fields[:8]]
        idle = values[3] + values[4]  # idle + iowait
        return (sum(values) - idle) / _TICK
    return 0.0


def _processes() -> dict[int, tuple[int, float]]:
    """Return pid -> (parent pid, CPU seconds incl. waited-for children) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            rest = stat[stat.rindex(")") + 2 :].split()
            # Fields after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
            ppid = int(rest[1])
            cpu = sum(int(v) for v in rest[11:15]) / _TICK
            table[int(entry.name)] = (ppid, cpu)
    return table


def _tree_cpu(root: int) -> float:
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][1]
        stack.extend(children.get(pid, []))
    return total


def snapshot() -> Snapshot:
    """Return the current busy, own-tree and wall clock seconds."""
    return Snapshot(_machine_busy(), _tree_cpu(os.getpid()), time.monotonic())


def foreign_cpu_seconds(before: Snapshot, after: Snapshot) -> float:
    """Return CPU seconds spent between two snapshots by processes outside our tree.

    Approximate: a child that exited and was reaped in between is counted in
    its parent's children time, one that was not reaped yet counts as ours
    only once it is.
    """
    return max(0.0, (after.busy - before.busy) - (after.ours - before.ours))


def wait_until_quiet(
    *,
    threshold: float = 0.15,
    window: float = 3.0,
    limit: float = 0.0,
    log=print,  # noqa: ANN001
) -> float:
    """Wait (at most ``limit`` seconds) until other processes use < ``threshold`` of the CPUs.

    Return the foreign busy fraction of the last window.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    deadline = time.monotonic() + limit
    while True:
        before = snapshot()
        time.sleep(window)
        after = snapshot()
        fraction = foreign_cpu_seconds(before, after) / (window * cpus)
        if fraction < threshold or time.monotonic() >= deadline:
            return fraction
        log(f"bench: machine busy ({fraction:.0%} of {cpus} CPUs used by others); waiting")


def time_wait_sockets() -> int:
    """Return the number of TCP sockets in TIME_WAIT (from /proc/net/sockstat; 0 if unknown)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("tw") + 1])
    return 0


def wait_for_time_wait(*, below: int = 2000, limit: float = 75.0) -> tuple[int, float]:
    """Wait (at most ``limit`` s) until fewer than ``below`` sockets are in TIME_WAIT.

    A load run leaves one TIME_WAIT socket per request (sync gunicorn closes
    every connection) for 60 s; tens of thousands of them make every new
    loopback connection slower to set up, which would add to the latency
    of the stages that follow. Return (count left, seconds waited).
    """
    started = time.monotonic()
    count = time_wait_sockets()
    while count >= below and time.monotonic() - started < limit:
        time.sleep(1.0)
        count = time_wait_sockets()
    return count, time.monotonic() - started
