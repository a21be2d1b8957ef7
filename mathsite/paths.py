"""Where mathsite keeps its files: one definition of every local path and its default.

The data folder (``MATHSITE_DATA_DIR``, default ``var/`` in the repository)
holds what ``make run`` creates and keeps: the SQLite database, the
generated secret key, collected static files, the embedded Redis (its
socket, data and log) and ``run/``, what lives only while a server runs
(the pid file of ``make run``, each server's Prometheus multi-process
folder ``run/metrics-<pid>``; a killed run's are swept at the next start).
Settings, the local launcher (``launcher.serve``), the embedded Redis, the
tests and the benchmarks all derive these paths from here, so a folder or
file name is spelled once. Pure Python with no
Django import: ``serve.py`` and the embedded Redis need the paths before
(or without) Django's settings.

The data folder holds user records, API tokens, session keys and the
secret key, so it is private to the service's user: whoever creates it
(``make run``, the embedded Redis, the first database connection) makes it
0700 with ``private_folder``, whatever the umask, and an existing one is
put right at start (``mathsite.sqlite`` keeps the database files 0600).

    paths.data_dir()                  # Path(".../var"), or $MATHSITE_DATA_DIR
    paths.redis_socket()              # .../var/redis/redis.sock
    paths.sqlite_file(Path("/srv"))   # /srv/db.sqlite3
    paths.private_folder(paths.data_dir())   # created if missing, mode 0700

Every function reads the environment when called, not at import, so a
process that sets ``MATHSITE_DATA_DIR`` (a test, a child's environment)
sees its own value.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = BASE_DIR / "var"

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def data_dir() -> Path:
    """Return the data folder: ``MATHSITE_DATA_DIR``, default ``<repository>/var``."""
    return Path(os.environ.get("MATHSITE_DATA_DIR", DEFAULT_DATA_DIR))


def private_folder(folder: Path) -> Path:
    """Create ``folder`` if missing (parents too) and make it mode 0700; return it.

    The mode is set with ``chmod``, not left to ``mkdir``: ``mkdir`` applies
    the process's umask (0022 gives 0755), and a folder an earlier version
    created readable by everyone is put right too. Parents created on the
    way keep the umask's mode: they hold nothing but this folder.
    """
    folder.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) != PRIVATE_FOLDER_MODE:
        folder.chmod(PRIVATE_FOLDER_MODE)
    return folder


def _in(data: Path | None, name: str) -> Path:
    return (data_dir() if data is None else data) / name


def redis_dir(data: Path | None = None) -> Path:
    """Return the embedded Redis's folder (socket, data, log) in ``data`` (the data folder)."""
    return _in(data, "redis")


def redis_socket(folder: Path | None = None) -> Path:
    """Return the unix socket of the Redis kept in ``folder`` (default: ``redis_dir()``)."""
    return (redis_dir() if folder is None else folder) / "redis.sock"


def secret_key_file(data: Path | None = None) -> Path:
    """Return the file ``make run`` keeps its generated ``SECRET_KEY`` in."""
    return _in(data, "secret_key")


def static_dir(data: Path | None = None) -> Path:
    """Return ``STATIC_ROOT``, where ``collectstatic`` puts the files WhiteNoise serves."""
    return _in(data, "static")


def run_dir(data: Path | None = None) -> Path:
    """Return the folder of runtime files, which live only while a server runs."""
    return _in(data, "run")


def serve_pid_file(data: Path | None = None) -> Path:
    """Return the file naming the pid of the ``make run`` serving from the data folder."""
    return run_dir(data) / "serve.pid"


METRICS_PREFIX = "metrics-"


def metrics_dir(pid: int, data: Path | None = None) -> Path:
    """Return the Prometheus multi-process folder of the server launched by process ``pid``."""
    return run_dir(data) / f"{METRICS_PREFIX}{pid}"


def sqlite_file(data: Path | None = None) -> Path:
    """Return the SQLite database used when ``DATABASE_URL`` is not set."""
    return _in(data, "db.sqlite3")
