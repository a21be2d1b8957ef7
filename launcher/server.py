"""The production server: granian (WSGI interface) serving mathsite.

    python -m launcher.server        # serve on $GRANIAN_HOST:$PORT (default 127.0.0.1:8000)

``make run`` serves through ``run`` too (``launcher.serve``), with the local
defaults on top. granian runs through ``launcher.shared_listener`` (its own
command line; its main process holds the one listening socket, so
connections wait while workers die, respawn or restart). Every granian
option is a ``GRANIAN_*`` environment variable that granian reads itself;
this module only sets defaults for the ones mathsite cares about (an
explicitly set variable always wins):

- ``GRANIAN_INTERFACE=wsgi`` (Django is a WSGI application);
- ``GRANIAN_WORKERS``: ``WEB_CONCURRENCY`` if set, else the number of cores;
- ``GRANIAN_BLOCKING_THREADS=4``: threads per worker that run Django (its
  ORM is synchronous). A request waiting for another worker's computation
  holds one; four per worker keep cached hits flowing beside a few such
  waiters (the stampede lock bounds how long any of them waits);
- ``GRANIAN_RESPAWN_FAILED_WORKERS=true``: a worker that dies is replaced
  at once; ``GRANIAN_RESPAWN_INTERVAL=0.5``: on a restart on purpose
  (``GRANIAN_WORKERS_LIFETIME``, SIGHUP) the old worker is stopped 0.5 s
  after its replacement was started;
- ``GRANIAN_WORKERS_KILL_TIMEOUT=10``: on SIGTERM/SIGINT, workers finish
  their requests for up to 10 s (graceful shutdown), then are killed;
- ``GRANIAN_HTTP=1``, ``GRANIAN_WEBSOCKETS=false``: plain HTTP/1.1 with
  keep-alive (the TLS proxy in front speaks HTTP/2 to clients);
- ``GRANIAN_HTTP1_HEADER_READ_TIMEOUT=10000``: a client that dribbles its
  headers is dropped after 10 s (it never held a Python thread meanwhile);
- ``GRANIAN_BACKPRESSURE``: granian's default (backlog / workers) bounds the
  requests each worker runs at once; the rest wait in the socket backlog;
- ``GRANIAN_WORKERS_LIFETIME`` (unset: forever) restarts workers
  periodically when set, e.g. ``6h``.

Prometheus: each worker is a process, so samples are shared through files in
``PROMETHEUS_MULTIPROC_DIR``. Unless one is given, this launcher uses a
private folder under the data folder, ``run/metrics-<launcher pid>``
(``mathsite.paths``), empties it at start (stale samples of an earlier run
would be added to this one's), removes the live-gauge files of workers that
died (``mark_process_dead``; their counters stay, so totals never go
backwards when a worker is replaced) and deletes the folder when the server
stops. A launcher killed with SIGKILL cannot delete its folder: the next
start sweeps every ``run/metrics-<pid>`` whose launcher no longer runs.

granian is spawned with a parent-death signal (``launcher.lifetime``):
if this launcher is killed, granian gets SIGTERM and shuts down gracefully
instead of serving on, unsupervised.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from launcher import lifetime
from mathsite import paths
from mathsite.paths import BASE_DIR

APPLICATION = "mathsite.wsgi:application"
BLOCKING_THREADS = 4
_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def cores() -> int:
    """Return the number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def server_environment(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` with mathsite's granian defaults filled in (set variables win)."""
    env = dict(env)
    env.setdefault("GRANIAN_INTERFACE", "wsgi")
    env.setdefault("GRANIAN_WORKERS", env.get("WEB_CONCURRENCY") or str(cores()))
    env.setdefault("GRANIAN_BLOCKING_THREADS", str(BLOCKING_THREADS))
    env.setdefault("GRANIAN_RESPAWN_FAILED_WORKERS", "true")
    env.setdefault("GRANIAN_RESPAWN_INTERVAL", "0.5")
    env.setdefault("GRANIAN_WORKERS_KILL_TIMEOUT", "10")
    env.setdefault("GRANIAN_HTTP", "1")
    env.setdefault("GRANIAN_WEBSOCKETS", "false")
    env.setdefault("GRANIAN_HTTP1_HEADER_READ_TIMEOUT", "10000")
    return env


def command(application: str = APPLICATION) -> list[str]:
    """Return the command line that starts granian on ``application`` (options: environment).

    granian's own command line, run by ``launcher.shared_listener``.
    """
    return [sys.executable, "-m", "launcher.shared_listener", application]


def sweep_dead_workers(folder: Path) -> int:
    """Remove the live-gauge files of processes that no longer run; return how many pids."""
    from prometheus_client import multiprocess

    dead = set()
    for path in folder.glob("*.db"):
        found = _PID_IN_NAME.search(path.name)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:
            pass  # alive, someone else's
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))
    return len(dead)


def sweep_metrics_folders(data: Path | None = None) -> list[Path]:
    """Delete the private metrics folders of launchers that no longer run; return them."""
    swept = []
    for folder in sorted(paths.run_dir(data).glob(f"{paths.METRICS_PREFIX}*")):
        pid = folder.name.removeprefix(paths.METRICS_PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not lifetime.alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept


@contextlib.contextmanager
def metrics_folder(env: dict[str, str]) -> Iterator[Path]:
    """Provide the Prometheus multi-process folder: given (emptied) or private (removed after).

    The private folder is ``run/metrics-<pid>`` in the data folder that
    ``env`` names (``MATHSITE_DATA_DIR``); leftovers of killed launchers
    there are swept first.
    """
    given = env.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
    else:
        data = Path(env["MATHSITE_DATA_DIR"]) if env.get("MATHSITE_DATA_DIR") else None
        sweep_metrics_folders(data)
        folder = paths.metrics_dir(os.getpid(), data)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def run(env: dict[str, str], *, host: str, port: str, sweep_seconds: float = 5.0) -> int:
    """Serve mathsite with granian on ``host:port`` until SIGTERM/SIGINT; return its exit code."""
    env = server_environment(env)
    env["GRANIAN_HOST"], env["GRANIAN_PORT"] = host, port
    with metrics_folder(env) as folder:
        # Spawned from the calling (main) thread, before the sweeper starts.
        server = subprocess.Popen(  # noqa: S603
            command(), env=env, cwd=BASE_DIR, preexec_fn=lifetime.die_with_parent()
        )
        stopped = threading.Event()

        def forward(signum: int, _frame: object) -> None:
            server.send_signal(signum)  # granian shuts down gracefully on either

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}

        def sweeper() -> None:
            while not stopped.wait(sweep_seconds):
                sweep_dead_workers(folder)

        threading.Thread(target=sweeper, name="metrics-sweeper", daemon=True).start()
        try:
            return server.wait()
        finally:
            stopped.set()
            if server.poll() is None:
                server.terminate()
                server.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main() -> int:
    """Production entry point: serve on ``$GRANIAN_HOST:$PORT`` with the environment's settings."""
    env = dict(os.environ)
    return run(env, host=env.get("GRANIAN_HOST", "127.0.0.1"), port=env.get("PORT", "8000"))


if __name__ == "__main__":
    sys.exit(main())
