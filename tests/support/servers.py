"""Real servers for live tests: a dedicated Redis and granian (or gunicorn) running mathsite.

Fault and concurrency tests need processes they can kill, pause and
restart, so nothing here is shared with the machine's services: each
Redis listens on a free port of its own (persistence off unless asked),
each web server (granian, the project's server, started by its own
launcher's command and defaults; or gunicorn with the repository's
configuration) gets its own free port, a temporary SQLite database copied
from one migrated template, its own key prefix and its own data folder.
Every class stops what it started (``stop()`` is idempotent and used in
fixture finalizers), and every wait is bounded.

    redis_server = RedisServer(tmp_path / "redis").start()
    server = LiveServer(tmp_path / "web", redis_url=redis_server.url()).start()
    reply = server.get("/api/fib/10/")        # Reply(status=200, ...)
    ...
    server.stop(); redis_server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from launcher import embedded_redis
from launcher import server as mathsite_server
from mathsite import paths
from mathsite.paths import BASE_DIR

PYTHON = sys.executable
# Variables of the test run that must not leak into a live server's environment.
_RUN_ONLY = (
    "REDIS_URL",
    "DATABASE_URL",
    "CACHE_KEY_PREFIX",
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "MATHSITE_DATA_DIR",
    "PORT",
)
NO_RETRY = Retry(NoBackoff(), 0)
LIVE_APPLICATION = "tests.support.live_wsgi:application"
# Where a live server's worker says what its front memo keeps (``live_wsgi``).
KEPT_PROBE = "/__live_wsgi__/kept/"
SERVERS = ("granian", "gunicorn")
# Processes below a server's main process that are not workers (a worker's
# computation processes, compute.admission.offload, are spawned children).
_HELPERS = (
    b"multiprocessing.resource_tracker",
    b"multiprocessing.forkserver",
    b"multiprocessing.spawn",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes() -> Iterator[tuple[int, int, str, bytes]]:
    """Yield (pid, parent pid, state, command line) of every process, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        fields = _stat_fields(stat)
        yield int(entry.name), int(fields[1]), fields[0], cmdline


def _stat_fields(stat: str) -> list[str]:
    """Return the fields of a /proc ``stat`` line after the parenthesised command name
    (state, ppid, ...): the name itself may hold spaces and parentheses."""
    return stat.rsplit(")", 1)[1].split()


def exited(pid: int) -> bool:
    """Return whether every thread of ``pid`` has finished exiting (its sockets are closed).

    A SIGKILLed worker's sockets (the connections it had accepted) close
    only as its last thread exits. A test that kills a worker waits for
    this before its next request so that it measures what it means to, not
    that race. The thread-group leader turns zombie first, so each thread
    is looked at.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True  # reaped
    states = []
    for task in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue  # that thread is gone
        states.append(_stat_fields(stat)[0])
    return all(state in {"Z", "X"} for state in states)


def frozen(pid: int) -> bool:
    """Return whether every thread of ``pid`` is stopped (SIGSTOP took effect: none runs)."""
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            states.append(_stat_fields(Path(f"/proc/{pid}/task/{task}/stat").read_text())[0])
    return bool(states) and all(state in {"T", "t"} for state in states)


def listening_sockets(port: int) -> dict[int, set[int]]:
    """Return the TCP sockets listening on ``port`` (inode -> pids holding it), from /proc.

    One listening socket held by several processes is one kernel backlog
    (granian's main process and its workers); ``SO_REUSEPORT`` sockets are
    one entry each, every one with a backlog of its own.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "0A":  # TCP_LISTEN
                    inodes.add(int(fields[9]))
    holders: dict[int, set[int]] = {inode: set() for inode in inodes}
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    inode = wanted.get(os.readlink(fd))
                    if inode is not None:
                        holders[inode].add(int(entry.name))
    return holders


def spawned_children(parent: int) -> set[int]:
    """Return the pids of ``parent``'s children started by multiprocessing's ``spawn``."""
    return {
        pid
        for pid, ppid, _state, cmdline in processes()
        if ppid == parent and b"multiprocessing.spawn" in cmdline
    }


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def redis_binary() -> str:
    """Return a Redis server binary: ``redis-server`` on PATH, else the embedded one."""
    return shutil.which("redis-server") or embedded_redis.server_binary()


# One secret for every child server of a test run: servers that share a Redis
# are instances of one deployment, and entries one writes carry a MAC keyed
# by that secret that the others must verify (compute.cache.integrity).
_DEPLOYMENT_SECRET = "live-test-" + uuid.uuid4().hex + uuid.uuid4().hex  # 50+ characters


def base_environment() -> dict[str, str]:
    """Return the environment for a child server: the caller's minus this run's settings."""
    env = {k: v for k, v in os.environ.items() if k not in _RUN_ONLY}
    env.update(
        {
            "SECRET_KEY": _DEPLOYMENT_SECRET,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "SECURE_PROXY_SSL_HEADER": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Signal ``process`` (if still running) and reap it, killing it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)  # a stopped process cannot exit
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.wait(timeout=5)


# --- Redis --------------------------------------------------------------------------


class RedisServer(embedded_redis.RedisServer):
    """The project's launcher as live tests use it: a free TCP port, persistence off.

    A port rather than a socket, so a test can hand its URL to child
    processes and break the server under them (``kill``, ``pause``,
    ``shutdown``, ``start`` again); ``redis-server`` from PATH when there is
    one. Other options (``persistence=True``, ``password``, ...) as for
    ``launcher.embedded_redis.RedisServer``.
    """

    def __init__(self, folder: Path, *, port: int | None = None, **options: Any) -> None:
        options.setdefault("persistence", False)
        options.setdefault("binary", redis_binary())
        super().__init__(folder, port=port or free_port(), **options)


# --- the database template -------------------------------------------------------------


@cache
def template_database() -> Path:
    """Return a migrated SQLite file (made once per test run) for live servers to copy."""
    folder = Path(tempfile.mkdtemp(prefix="mathsite-live-db-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.sqlite3"
    env = base_environment()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mathsite.settings",
            "DATABASE_URL": f"sqlite:///{path}",
            "MATHSITE_DATA_DIR": str(folder),
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted by migrate
        }
    )
    subprocess.run(
        [PYTHON, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
        env=env,
        cwd=BASE_DIR,
        check=True,
        timeout=60,
    )
    return path


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP exchange as a test sees it."""

    status: int
    body: bytes
    headers: dict[str, str]
    started: float
    elapsed: float
    test_id: str = ""
    error: str = ""

    @property
    def data(self) -> Any:
        """Return the JSON body (integers of any length)."""
        return json.loads(self.body)


def http_get(
    port: int, path: str, *, headers: dict[str, str] | None = None, timeout: float = 15.0
) -> Reply:
    """GET ``path`` from 127.0.0.1:``port`` on a fresh connection; errors become status 0."""
    test_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"X-Test-Id": test_id, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        return Reply(
            response.status,
            body,
            {k.lower(): v for k, v in response.getheaders()},
            started,
            time.monotonic() - started,
            test_id,
        )
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, b"", {}, started, time.monotonic() - started, test_id, repr(exc))
    finally:
        connection.close()


def metric_samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """Return (labels, value) of every sample named ``name`` in /metrics on ``port``."""
    text = http_get(port, "/metrics").body.decode()
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


# --- live servers ------------------------------------------------------------------------


@dataclass
class Access:
    """One access-log line of a live server."""

    pid: int
    status: int
    sent: int
    seconds: float
    path: str


@dataclass
class LiveServer:
    """mathsite (through ``tests.support.live_wsgi``) served on a free port.

    ``server="granian"`` (the default) starts the project's own server
    command (``launcher.server.command`` with ``server_environment``'s
    defaults, ``workers`` processes, ``threads`` blocking threads each if
    given, else the project's default); ``server="gunicorn"`` starts
    gunicorn with the repository's ``gunicorn.conf.py`` (through
    ``tests/support/gunicorn_conf.py``), sync workers unless ``threads`` > 1.
    Either way the application writes the access log (``live_wsgi``), so
    ``accesses()`` tells which worker process served which request.
    """

    folder: Path
    redis_url: str
    workers: int = 3
    threads: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None
    prefix: str = ""
    server: str = "granian"

    def __post_init__(self) -> None:
        if self.server not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}, not {self.server!r}")
        self.port = self.port or free_port()
        self.prefix = self.prefix or "live-" + uuid.uuid4().hex[:8]

    @property
    def compute_log(self) -> Path:
        return self.folder / "computations.log"

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    @property
    def error_log(self) -> Path:
        return self.folder / "server.log"

    @property
    def database(self) -> Path:
        """Return this server's SQLite file (the default one in its data folder)."""
        return paths.sqlite_file(self.folder)

    def key(self, cache_key: str) -> str:
        """Return the Redis key this server stores ``cache_key`` under (prefix, version 1)."""
        return f"{self.prefix}:1:{cache_key}"

    def environment(self) -> dict[str, str]:
        env = base_environment()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "mathsite.settings",
                "DATABASE_URL": f"sqlite:///{self.database}",
                "MATHSITE_DATA_DIR": str(self.folder),
                "REDIS_URL": self.redis_url,
                "CACHE_KEY_PREFIX": self.prefix,
                "MATHSITE_TEST_COMPUTE_LOG": str(self.compute_log),
                "MATHSITE_TEST_ACCESS_LOG": str(self.access_log),
                "MATHSITE_TEST_KEPT_PROBE": KEPT_PROBE,
            }
        )
        env.update(self.env)
        return env

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Return the command line and environment that start this server."""
        env = self.environment()
        if self.server == "gunicorn":
            threads = self.threads or 1
            command = [
                PYTHON, "-m", "gunicorn", LIVE_APPLICATION,
                "--config", str(Path(__file__).with_name("gunicorn_conf.py")),
                "--no-control-socket",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--worker-class", "gthread" if threads > 1 else "sync",
                "--threads", str(threads),
                "--timeout", "30",
                "--graceful-timeout", "3",
            ]  # fmt: skip
            return command, env
        # What launcher.server.run sets up, minus its supervision: the metrics
        # folder is this server's own (inside its folder, removed with it).
        metrics = Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(self.folder / "metrics")))
        metrics.mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "GRANIAN_HOST": "127.0.0.1",
                "GRANIAN_PORT": str(self.port),
                "GRANIAN_WORKERS": str(self.workers),
                # Stops as quickly as gunicorn's above (--graceful-timeout 3).
                "GRANIAN_WORKERS_KILL_TIMEOUT": "3",
            }
        )
        if self.threads:
            env["GRANIAN_BLOCKING_THREADS"] = str(self.threads)
        return mathsite_server.command(LIVE_APPLICATION), mathsite_server.server_environment(env)

    def start(self, wait: float = 30.0) -> LiveServer:
        """Start the server and wait until /healthz answers and every worker is up."""
        paths.static_dir(self.folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template_database(), self.database)
        command, env = self.command()
        with open(self.error_log, "ab") as errors:
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=BASE_DIR,
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server} exited: {self.error_log.read_text()[-3000:]}")
            reply = http_get(self.port, "/healthz", timeout=2)
            return reply.status == 200 and len(self.worker_pids()) == self.workers

        started = wait_until(ready, wait, interval=0.1)
        if started and self.server == "granian":  # gunicorn forks loaded workers
            started = self._every_worker_answers(wait)
        if not started:
            self.stop()
            raise RuntimeError(
                f"{self.server} did not start in {wait}s: {self.error_log.read_text()}"
            )
        return self

    def _every_worker_answers(self, wait: float) -> bool:
        """Send concurrent /healthz probes until each worker has answered one.

        A worker loads the application (mathsite.warmup: the URLconf and the
        views) before it accepts connections, so a worker that exists may not
        listen yet; tests that spread a burst over every worker need them all.
        """
        deadline = time.monotonic() + wait
        answered: set[int] = set()
        while time.monotonic() < deadline:
            replies: list[Reply] = []
            threads = [
                threading.Thread(
                    target=lambda into=replies: into.append(http_get(self.port, "/healthz"))
                )
                for _ in range(2 * self.workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
            with contextlib.suppress(AssertionError):
                answered |= {record.pid for record in self.accesses_of(replies).values()}
            if self.worker_pids() <= answered:
                return True
            time.sleep(0.05)
        return False

    def get(self, path: str, **kwargs: Any) -> Reply:
        """GET ``path`` from this server (see ``http_get``)."""
        return http_get(self.port, path, **kwargs)

    def worker_pids(self) -> set[int]:
        """Return the pids of the live worker processes: the main process's descendants.

        gunicorn's master forks its workers; granian's main process starts
        them with multiprocessing (children today; descendants at any depth
        are looked for, so a launcher in between would not hide them).
        Helper processes (multiprocessing's resource tracker or fork
        server, a worker's computation processes) are not workers and are
        left out, and so is a worker's child caught between its fork and
        its exec (a computation process being spawned: for that instant it
        shows its parent's very command line; seen once in CI as a third
        "worker" right after start-up, when the workers spawn theirs).
        """
        if self.process is None:
            return set()
        main = self.process.pid
        children: dict[int, list[int]] = {}
        commands: dict[int, bytes] = {}
        for pid, ppid, state, cmdline in processes():
            if state == "Z" or any(helper in cmdline for helper in _HELPERS):
                continue
            children.setdefault(ppid, []).append(pid)
            commands[pid] = cmdline
        workers: set[int] = set()
        parents = [main]
        while parents:
            parent = parents.pop()
            below = [
                pid
                for pid in children.get(parent, [])
                if parent == main or commands[pid] != commands.get(parent)
            ]
            workers.update(below)
            parents.extend(below)
        return workers

    def computations(self, kind: str | None = None, n: int | None = None) -> list[tuple[str, int]]:
        """Return (event, pid) for every probe line (``start``/``end``) matching kind and n."""
        if not self.compute_log.exists():
            return []
        found = []
        for line in self.compute_log.read_text().splitlines():
            event, pid, line_kind, line_n = line.split()
            if (kind is None or line_kind == kind) and (n is None or int(line_n) == n):
                found.append((event, int(pid)))
        return found

    def accesses(self) -> dict[str, Access]:
        """Return the access log by test id (the ``X-Test-Id`` each ``http_get`` sends)."""
        records = {}
        if not self.access_log.exists():
            return records
        for line in self.access_log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 6 or parts[1] == "-":
                continue
            pid, test_id, status, sent, micros, path = parts
            records[test_id] = Access(int(pid), int(status), int(sent), int(micros) / 1e6, path)
        return records

    def accesses_of(self, replies: list[Reply], timeout: float = 3.0) -> dict[str, Access]:
        """Return the access records of ``replies``, waiting for them to be written
        (a request is logged when its response is closed, which may be after the
        client already has it)."""
        wanted = {reply.test_id for reply in replies}

        def complete() -> dict[str, Access] | None:
            found = self.accesses()
            return found if wanted <= found.keys() else None

        records = wait_until(complete, timeout)
        if records is None:
            raise AssertionError(f"access log lacks {len(wanted - self.accesses().keys())} lines")
        return records

    def log_lines(self, needle: str) -> list[str]:
        """Return the lines of the server's stderr (its log) that contain ``needle``."""
        if not self.error_log.exists():
            return []
        return [line for line in self.error_log.read_text().splitlines() if needle in line]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL of its group if it lingers); idempotent.

        Then remove the shared-memory eviction counter its workers mapped
        (/dev/shm/mathsite-<uid>/evictions-*): no process uses it any more.
        """
        from tests.support.caches import remove_host_counter  # needs configured settings

        _stop_process(self.process, signal.SIGTERM, timeout=10)
        remove_host_counter(self.redis_url, self.prefix)


# --- make run ---------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Return the pids of every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class ServeRun:
    """``python -m launcher.serve`` as ``make run`` starts it, in a data folder of its own.

    Its own session and process group (``kill_group`` kills all of it, as
    a terminal closing or an OOM kill of the group would); output in
    ``data/serve.log``.
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.output = data / "serve.log"

    def environment(self) -> dict[str, str]:
        env = base_environment()
        for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "SECURE_SSL_REDIRECT"):
            env.pop(name, None)  # serve.py's own local defaults apply
        env.update({"MATHSITE_DATA_DIR": str(self.data), "PORT": str(self.port)})
        env["WEB_CONCURRENCY"] = "2"
        return env

    def spawn(self) -> subprocess.Popen:
        """Start serve and return its process without waiting for it to answer."""
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.output, "ab") as output:
            return subprocess.Popen(
                [PYTHON, "-m", "launcher.serve"],
                env=self.environment(),
                cwd=BASE_DIR,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )

    def start(self) -> ServeRun:
        self.process = self.spawn()

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.output.read_text()[-3000:]}")
            return http_get(self.port, "/healthz", timeout=1).status == 200

        if not wait_until(up, 60, interval=0.1):
            self.stop()
            raise RuntimeError(f"serve did not answer: {self.output.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        """SIGTERM (what Ctrl-C does): granian stops, then the embedded Redis saves and stops."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL serve's whole process group at once and reap serve."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    @property
    def redis_folder(self) -> Path:
        return paths.redis_dir(self.data)

    def redis_pid(self) -> int | None:
        """Return the pid the embedded Redis wrote into its pid file (None without one)."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.redis_folder / "redis.pid").read_text())
        return None

    def redis(self) -> Any:
        return embedded_redis.embedded(self.redis_folder).client()


@contextlib.contextmanager
def serving_a_hit(folder: Path, path: str, *, workers: int) -> Iterator[LiveServer]:
    """A granian server of ``workers`` on a Redis of its own, ``path`` computed once (a hit after).

    Both are stopped on the way out, whatever the test did.
    """
    redis_server = RedisServer(folder / "redis").start()
    server = LiveServer(folder / "web", redis_url=redis_server.url(), workers=workers)
    try:
        server.start()
        assert server.get(path).status == 200
        yield server
    finally:
        server.stop()
        redis_server.stop()
