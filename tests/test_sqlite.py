"""The SQLite database is private to the service's user, whatever the umask.

Mirrors ``mathsite/sqlite.py`` (and ``paths.private_folder``). Each test
runs Django in a subprocess with umask 022 (files 0644, folders 0755 by
default) on a data folder of its own, as ``manage.py`` and the server's
workers do, and reads the modes the files end up with: the data folder
0700, the database and its ``-wal``/``-shm`` 0600.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mathsite import paths
from mathsite.sqlite import PrivateConnection, make_private

BASE_DIR = Path(__file__).resolve().parents[1]
SETUP = "import django; django.setup(); "
# Opens a connection, writes (so the WAL and its index exist), and prints
# the mode of every file in the data folder while the connection is open.
WRITE_AND_LIST = (
    SETUP + "import os, stat; from django.db import connection; "
    "cursor = connection.cursor(); cursor.execute('CREATE TABLE IF NOT EXISTS t (x)'); "
    "cursor.execute('INSERT INTO t VALUES (1)'); "
    "folder = os.environ['MATHSITE_DATA_DIR']; "
    "print(oct(stat.S_IMODE(os.stat(folder).st_mode))); "
    "[print(name, oct(stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode))) "
    "for name in sorted(os.listdir(folder))]"
)


def run_django(data: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    """Run ``manage.py ARGS`` (or ``-c CODE``) on data folder ``data`` with ``umask``."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(data.parent)),
        "DJANGO_SETTINGS_MODULE": "mathsite.settings",
        "MATHSITE_DATA_DIR": str(data),
        "SECRET_KEY": "test-only-" + "k7Qx" * 12,
        "ALLOWED_HOSTS": "localhost",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted
    }
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, umask=umask
    )


def modes(listing: str) -> dict[str, str]:
    """Parse WRITE_AND_LIST's output: {"<folder>": mode, name: mode, ...}."""
    first, *files = listing.split("\n")
    return {"<folder>": first, **dict(line.split() for line in files if line)}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private_after_a_write(data) -> None:
    """Write through Django in ``data`` and check the folder 0700 and every database file 0600."""
    listed = run_django(data, "-c", WRITE_AND_LIST)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert modes(listed.stdout.strip()) == {
        "<folder>": "0o700",
        "db.sqlite3": "0o600",
        "db.sqlite3-shm": "0o600",
        "db.sqlite3-wal": "0o600",
    }


def test_migrate_into_a_new_data_folder_creates_it_private(tmp_path):
    data = tmp_path / "data"  # missing: the first connection creates it
    migrated = run_django(data, "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert mode_of(data) == 0o700
    assert mode_of(paths.sqlite_file(data)) == 0o600
    assert_private_after_a_write(data)


def test_files_an_earlier_version_left_readable_are_put_right_at_the_first_connection(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = paths.sqlite_file(data)
    # A database in WAL mode whose process died with its connection open:
    # the -wal and -shm stay behind, 0644 like the file.
    crashed = (
        "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t (x)'); "
        "db.commit(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", crashed, str(database)], check=True, umask=0o022)
    before = {p.name: oct(mode_of(p)) for p in data.iterdir()}
    assert before == {name: "0o644" for name in ("db.sqlite3", "db.sqlite3-shm", "db.sqlite3-wal")}
    assert mode_of(data) == 0o755

    assert_private_after_a_write(data)


def test_companions_sqlite_creates_later_take_the_database_files_mode_whatever_the_umask(
    tmp_path,
):
    """What the design leans on: SQLite gives -wal, -shm and -journal the database's bits."""
    database = tmp_path / "db.sqlite3"
    old = os.umask(0o000)  # the most permissive umask: every file would be 0666
    try:
        make_private(database)
        db = sqlite3.connect(database)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        during_wal = {p.name: mode_of(p) for p in tmp_path.iterdir()}
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (1)")
        journal = mode_of(tmp_path / "db.sqlite3-journal")
        db.commit()
        db.close()
    finally:
        os.umask(old)
    assert during_wal == {"db.sqlite3": 0o600, "db.sqlite3-wal": 0o600, "db.sqlite3-shm": 0o600}
    assert journal == 0o600


def test_make_private_leaves_memory_databases_and_other_folders_alone(tmp_path):
    make_private(":memory:")
    make_private("file:memorydb_default?mode=memory&cache=shared")
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    make_private(elsewhere / "db.sqlite3")
    assert mode_of(elsewhere) == 0o755  # not the data folder: not ours to close
    assert mode_of(elsewhere / "db.sqlite3") == 0o600


def test_private_folder_sets_0700_whatever_the_umask(tmp_path):
    old = os.umask(0o277)  # mkdir alone would give 0500
    try:
        created = paths.private_folder(tmp_path / "new" / "data")
    finally:
        os.umask(old)
    assert mode_of(created) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    assert mode_of(paths.private_folder(existing)) == 0o700


def test_failures_stay_database_errors(tmp_path, monkeypatch):
    """A missing folder is SQLite's own error; a mode that cannot be set is an OperationalError."""
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
        PrivateConnection(tmp_path / "missing" / "db.sqlite3")
    database = tmp_path / "db.sqlite3"
    database.touch()
    database.chmod(0o644)

    def refused(self: Path, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "chmod", refused)  # a file owned by another user
    with pytest.raises(sqlite3.OperationalError, match=r"cannot make .* private"):
        PrivateConnection(database)
