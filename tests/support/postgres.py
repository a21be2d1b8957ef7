"""A PostgreSQL of the test's own, for outage tests: stopped, paused and restarted at will.

The machine's PostgreSQL is shared and is never stopped or paused; the
outage tests (``make test-outages``, tests/outages/) break a server of
their own instead, made with the PostgreSQL binaries (``initdb``,
``pg_ctl``, ``postgres``) in a temporary folder, listening on a free port
of 127.0.0.1 and on a Unix socket in that folder, with trust
authentication, and always stopped by ``stop()`` (``pg_ctl stop -m
immediate``, then SIGKILL of whatever is left; idempotent, used in fixture
finalizers and at exit)::

    server = PostgresServer(tmp / "pg").start()
    server.url("mathsite")     # postgres://postgres@127.0.0.1:PORT/mathsite (created)
    server.halt()              # pg_ctl stop -m fast: connections refused
    server.start()
    server.pause(); server.resume()  # SIGSTOP / SIGCONT of the postmaster and its backends
    server.restart()           # pg_ctl restart -m fast
    server.stop()

PostgreSQL refuses to run as root; run as root (a container), the server
runs as the ``postgres`` user (``PG_TEST_USER`` to name another), in a
folder of ``/tmp`` that user owns, since the test's own temporary folder is
private to root.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from tests.support.servers import free_port, processes, wait_until

BINARIES = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"


def postgres_bin() -> Path | None:
    """Return the folder of the PostgreSQL server binaries, or None without them.

    ``PG_BIN`` if set, else the folder of ``pg_ctl`` on PATH, else Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest).
    """
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)
        candidates.append(Path(found).parent)
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for folder in candidates:
        if all((folder / name).exists() for name in BINARIES):
            return folder
    return None


class PostgresServer:
    """One PostgreSQL cluster in a folder of its own (see the module docstring)."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres): install them "
                "(apt-get install -y postgresql) or set PG_BIN to their folder"
            )
        self.bin = binaries
        self.port = port or free_port()
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            name = os.environ.get("PG_TEST_USER", "postgres")
            try:
                self.user = pwd.getpwnam(name)
            except KeyError:
                raise RuntimeError(
                    f"PostgreSQL refuses to run as root and there is no user {name!r} to run "
                    "it as: create one (useradd) or name another in PG_TEST_USER"
                ) from None
            folder = Path(tempfile.mkdtemp(prefix="mathsite-outage-pg-"))
            os.chown(folder, self.user.pw_uid, self.user.pw_gid)
            self._remove = folder
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self._remove = None
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "postgres.log"
        self._initialized = False
        self._started = False
        atexit.register(self.stop)

    # --- running the binaries -----------------------------------------------------

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run one of the binaries as the server's user; raise with its output if it fails."""
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
            **extra,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\nserver log:\n" + self.log.read_text()[-2000:]
        return ""

    def _options(self) -> str:
        # Durability off (a throw-away server); a small footprint on a shared machine.
        return (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=16MB -c max_connections=40"
        )

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Make the cluster (the first time) and start it; wait until it accepts connections."""
        if not self._initialized:
            self._run(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
            self._initialized = True
        self._started = True
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", "30", "-o", self._options(),
        )  # fmt: skip
        return self

    def halt(self) -> None:
        """Stop the server the way an operator does (``pg_ctl stop -m fast``)."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")

    def restart(self) -> None:
        """Restart the server (``pg_ctl restart -m fast``); return once it accepts connections."""
        self._run(
            "pg_ctl", "restart", "-D", str(self.data), "-l", str(self.log),
            "-m", "fast", "-w", "-t", "30", "-o", self._options(),
        )  # fmt: skip

    def postmaster(self) -> int | None:
        """Return the postmaster's pid (from ``postmaster.pid``), or None if it is not running."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        return None

    def backends(self) -> set[int]:
        """Return the pids of the postmaster's children (backends and helper processes)."""
        postmaster = self.postmaster()
        return {pid for pid, ppid, _state, _cmd in processes() if ppid == postmaster}

    def pause(self) -> None:
        """SIGSTOP the postmaster, then every child: the kernel still ACKs, nothing answers."""
        postmaster = self.postmaster()
        if postmaster is None:
            raise RuntimeError("the server is not running")
        os.kill(postmaster, signal.SIGSTOP)  # first: it forks no new backend meanwhile
        for pid in self.backends():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the children and the postmaster (idempotent)."""
        postmaster = self.postmaster()
        if postmaster is None:
            return
        for pid in self.backends():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server for good and remove what this object made; idempotent.

        ``pg_ctl stop -m immediate`` after a SIGCONT (a paused server cannot
        stop); if that fails, SIGKILL of the postmaster and its children.
        """
        if self._started:
            self._started = False
            self.resume()
            try:
                self._run(
                    "pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "15"
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                postmaster = self.postmaster()
                if postmaster is not None:
                    for pid in (*self.backends(), postmaster):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    wait_until(lambda: self.postmaster() is None, 10)
        if self._remove is not None and self.postmaster() is None:
            shutil.rmtree(self._remove, ignore_errors=True)
            self._remove = None

    # --- clients ------------------------------------------------------------------

    def url(self, database: str) -> str:
        """Return the URL of ``database`` on this server, creating the database if needed."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if exists.fetchone() is None:
                admin.execute(f'CREATE DATABASE "{database}"')
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """Return a libpq connection string for ``database`` (TCP, a short connect timeout)."""
        return (
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=5"
        )
