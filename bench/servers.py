"""The servers a benchmark run starts and always stops: a Redis, gunicorns and granians.

Everything listens on 127.0.0.1 or a unix socket in the run's temporary
folder, on ports picked free at start. Each server runs in a process group
of its own so ``stop`` ends it and its children (gunicorn's or granian's
workers) without touching any other process. ``cpus`` pins a server with
``taskset`` when the machine has it and more than one core; ``set_affinity``
moves a running process (every thread) to other cores.

    with RedisServer(folder, cpus=[0]) as redis_server, Gunicorn(...) as web:
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from launcher import embedded_redis
from launcher import server as mathsite_server
from mathsite.paths import BASE_DIR


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(command: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    """Return ``command`` prefixed with ``taskset -c`` for ``cpus`` when that is possible."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", ",".join(str(c) for c in cpus), *command]
    return list(command)


class _Process:
    """A child process in its own group, stopped (group-wide) on exit or error."""

    name = "process"
    process: subprocess.Popen | None = None

    def __enter__(self) -> _Process:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        """Return the process's pid (the server's main process: its workers are its children)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    base_dir: Path = BASE_DIR

    def _spawn(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                command,
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() ends workers too
            )

    def stop(self, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        """Stop the process group: ``sig`` first, SIGKILL after ``wait`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Workers may outlive a killed master for a moment; end the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


class RedisServer(embedded_redis.RedisServer):
    """A throwaway Redis for one run: unix socket, no persistence, no eviction.

    The project's launcher with the benchmark's settings, pinned to ``cpus``
    (``taskset`` execs the server, so its pid is the server's); a context
    manager that stops it on exit.
    """

    client_timeout = 10.0  # its clients share the machine with a full load

    def __init__(self, folder: Path, *, cpus: Sequence[int] | None = None) -> None:
        super().__init__(
            folder,
            persistence=False,
            maxmemory="1gb",
            policy="noeviction",
            config=["databases 16"],
            wrapper=pinned([], cpus),
        )


class _WebServer(_Process):
    """An HTTP server on 127.0.0.1:port (free at start): ready check, base URL, worker pids."""

    kind = "server"

    def __init__(
        self,
        name: str,
        app: str,
        *,
        env: dict[str, str],
        log: Path,
        workers: int = 2,
        cpus: Sequence[int] | None = None,
        base_dir: Path = BASE_DIR,
    ) -> None:
        self.name = name
        self.base_dir = base_dir  # the checkout whose code (and server configuration) runs
        self.app = app
        self.env = env
        self.log = log
        self.workers = workers
        self.cpus = cpus
        self.port = 0

    @property
    def base(self) -> str:
        """Return the service's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Return the server process's environment."""
        return self.env

    def start(self) -> None:
        self.port = free_port()
        self._spawn(self.command(), self.log, self.environment())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} {self.kind} exited: see {self.log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"GET /__ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/1."):
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within 30 s: see {self.log}")

    def worker_pids(self) -> list[int]:
        """Return the pids of the worker processes (children of the master)."""
        if self.process is None:
            return []
        master = self.process.pid
        # With taskset in front, the master is taskset's exec'd image: same pid.
        children = Path(f"/proc/{master}/task/{master}/children")
        with contextlib.suppress(OSError):
            return [int(p) for p in children.read_text().split()]
        return []


class Gunicorn(_WebServer):
    """A gunicorn serving ``app`` on 127.0.0.1:port with sync workers."""

    kind = "gunicorn"

    def __init__(
        self,
        name: str,
        app: str,
        *,
        env: dict[str, str],
        log: Path,
        workers: int = 2,
        timeout: int = 60,
        cpus: Sequence[int] | None = None,
        base_dir: Path = BASE_DIR,
    ) -> None:
        super().__init__(name, app, env=env, log=log, workers=workers, cpus=cpus, base_dir=base_dir)
        self.timeout = timeout

    def command(self) -> list[str]:
        """Return the gunicorn command line (the same settings for every service).

        mathsite's shipped ``gunicorn.conf.py`` is the configuration of both
        services, so they differ only in the application; bind address,
        worker count and class and timeout are then fixed on the command line.
        """
        config = self.base_dir / "gunicorn.conf.py"
        return pinned(
            [
                sys.executable, "-m", "gunicorn", self.app,
                *(["--config", str(config)] if config.exists() else []),
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--worker-class", "sync",
                "--timeout", str(self.timeout),
                # The control socket's default path is shared by every gunicorn
                # of the user: two services at once must not fight over it.
                "--no-control-socket",
            ],
            self.cpus,
        )  # fmt: skip

    def quick_stop(self) -> None:
        """Stop at once (SIGQUIT: workers exit even mid-computation)."""
        self.stop(signal.SIGQUIT, wait=5)


class Launcher(Protocol):
    """How a checkout starts granian: the two functions of its ``launcher.server``."""

    def server_environment(self, env: dict[str, str]) -> dict[str, str]: ...

    def command(self, application: str) -> list[str]: ...


class Granian(_WebServer):
    """granian (WSGI interface) serving ``app`` on 127.0.0.1:port, as mathsite serves in production.

    The command and settings are mathsite's own (``launcher.server``:
    ``server_environment`` fills the GRANIAN_* defaults, ``command`` gives
    ``python -m launcher.shared_listener APP``: granian's CLI with one
    listening socket held by its main process), for every application served, so services
    differ only in the application. ``workers`` is fixed here (the
    comparison runs 2); ``blocking_threads`` overrides mathsite's default
    threads per worker when given. ``metrics_dir``, when given, is emptied
    and used as the Prometheus multi-process folder (as ``launcher.server``
    provides one). ``launcher`` supplies those two functions: by default this
    tree's ``launcher.server``; ``bench.against`` passes another checkout's.
    """

    kind = "granian"

    def __init__(
        self,
        name: str,
        app: str,
        *,
        env: dict[str, str],
        log: Path,
        workers: int = 2,
        blocking_threads: int | None = None,
        cpus: Sequence[int] | None = None,
        base_dir: Path = BASE_DIR,
        metrics_dir: Path | None = None,
        launcher: Launcher = mathsite_server,
    ) -> None:
        super().__init__(name, app, env=env, log=log, workers=workers, cpus=cpus, base_dir=base_dir)
        self.blocking_threads = blocking_threads
        self.metrics_dir = metrics_dir
        self.launcher = launcher

    def environment(self) -> dict[str, str]:
        """Return ``env`` with mathsite's granian settings, this worker count and address."""
        env = dict(self.env)
        env["GRANIAN_WORKERS"] = str(self.workers)
        if self.blocking_threads is not None:
            env["GRANIAN_BLOCKING_THREADS"] = str(self.blocking_threads)
        env = self.launcher.server_environment(env)
        env["GRANIAN_HOST"] = "127.0.0.1"
        env["GRANIAN_PORT"] = str(self.port)
        if self.metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        return env

    def settings(self) -> dict[str, str]:
        """Return the GRANIAN_* settings the server runs with (for the report)."""
        return {k: v for k, v in sorted(self.environment().items()) if k.startswith("GRANIAN_")}

    def command(self) -> list[str]:
        """Return mathsite's granian command line for ``app``, pinned to ``cpus``."""
        return pinned(self.launcher.command(self.app), self.cpus)

    def start(self) -> None:
        if self.metrics_dir is not None:
            self.metrics_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.metrics_dir.glob("*.db"):
                stale.unlink()
        super().start()


def set_affinity(pid: int, cpus: Sequence[int]) -> int:
    """Move every thread of running process ``pid`` to ``cpus``; return how many moved."""
    moved = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setaffinity(int(task.name), set(cpus))
                moved += 1
    return moved
