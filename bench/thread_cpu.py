"""CPU time and context switches of a server's threads, per request, from ``/proc``.

Throughput on a shared 2-core virtual machine moves by a third between
6-second rounds of the same server; what a request costs the server moves
less, and says where the time goes. Linux keeps, for every thread, the
nanoseconds it has run and the number of times it was put on a CPU
(``/proc/<pid>/task/<tid>/schedstat``: exact, unlike the clock ticks of
``/proc/<pid>/stat``). ``snapshot`` sums them over a server's process tree
(granian's main process, its workers, their computation processes), by
role:

- ``io``: each worker's HTTP thread, granian's Rust runtime (the first
  thread named ``tokio-rt-worker``: its blocking threads are created from it
  later, and inherit the name), which parses requests and writes replies;
- ``app``: the worker's other threads: its blocking threads, which build
  the environ, call the WSGI application under the GIL and convert its
  reply, and whatever threads the application runs;
- ``other``: granian's main process and every other process of the tree.

``per_request`` turns two snapshots around a load run into microseconds and
switches per request. A thread's switches count every time it was put on a
CPU: waking for a request, and, on the ``app`` side, each wait for the GIL
that another of the worker's threads held.

    >>> before = {7: ("io", 1_000, 10), 8: ("app", 0, 0)}
    >>> after = {7: ("io", 21_000, 30), 8: ("app", 30_000, 15), 9: ("app", 10_000, 5)}
    >>> per_request(before, after, 10)["io_us"], per_request(before, after, 10)["app_switches"]
    (2.0, 2.0)
"""

from __future__ import annotations

from pathlib import Path

ROLES = ("io", "app", "other")
RUNTIME_THREAD = "tokio-rt-worker"

Snapshot = dict[int, tuple[str, int, int]]  # tid -> (role, run ns, times on a CPU)


def _children(proc: Path) -> dict[int, list[int]]:
    """Return each process's child processes (parent pid -> pids), from ``/proc``."""
    found: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone since the listing
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def _threads(proc: Path, pid: int) -> list[tuple[int, str, int, int]]:
    """Return (tid, name, run ns, times on a CPU) of each thread of ``pid``, by tid."""
    rows = []
    try:
        tids = sorted(int(task.name) for task in (proc / str(pid) / "task").iterdir())
    except OSError:
        return rows
    for tid in tids:
        task = proc / str(pid) / "task" / str(tid)
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "schedstat").read_text().split()
            ran, slices = int(fields[0]), int(fields[2])
        except (OSError, ValueError):
            continue
        rows.append((tid, name, ran, slices))
    return rows


def snapshot(root: int, *, proc: Path = Path("/proc")) -> Snapshot:
    """Return tid -> (role, run ns, times on a CPU) of every thread in the tree of ``root``.

    The workers are the processes of the tree that run a granian runtime
    thread; each one's first such thread is its ``io``, its other threads
    ``app``; every other thread (``root``'s, a computation process's) ``other``.
    """
    found: Snapshot = {}
    children = _children(proc)
    for tid, _name, ran, slices in _threads(proc, root):
        found[tid] = ("other", ran, slices)
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        threads = _threads(proc, pid)
        runtime = next((tid for tid, name, _r, _s in threads if name == RUNTIME_THREAD), None)
        for tid, _name, ran, slices in threads:
            role = "other" if runtime is None else "io" if tid == runtime else "app"
            found[tid] = (role, ran, slices)
    return found


def per_request(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float]:
    """Return microseconds and switches per request of each role between two snapshots.

    Per thread: a thread new since ``before`` counts from zero; one gone by
    ``after`` (a blocking thread that idled out) is left out, so the figures
    can be low by what it ran in between, never high. ``total_us`` sums the roles.
    """
    ran = dict.fromkeys(ROLES, 0)
    slices = dict.fromkeys(ROLES, 0)
    for tid, (role, ran_after, slices_after) in after.items():
        _role, ran_before, slices_before = before.get(tid, (role, 0, 0))
        ran[role] += ran_after - ran_before
        slices[role] += slices_after - slices_before
    count = max(requests, 1)
    figures: dict[str, float] = {}
    for role in ROLES:
        figures[f"{role}_us"] = round(ran[role] / 1000 / count, 3)
        figures[f"{role}_switches"] = round(slices[role] / count, 3)
    figures["total_us"] = round(sum(ran.values()) / 1000 / count, 3)
    return figures
