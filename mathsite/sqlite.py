"""SQLite connections that keep the database private to the service's user.

The database holds password hashes, API tokens and session keys, so the
file and its companions (``-wal``, ``-shm``, ``-journal``) are mode 0600
and the data folder holding them 0700, whatever the umask. Settings pass
``PrivateConnection`` as the ``factory`` of ``sqlite3.connect`` (Django
hands the database's ``OPTIONS`` to it), so this runs before every new
connection of every process: the server's workers, ``manage.py``, the
tests' servers.

    DATABASES["default"]["OPTIONS"]["factory"] = PrivateConnection

Why before connecting, and not a restrictive umask around the connection
or a ``chmod`` in Django's ``connection_created`` signal:

- SQLite creates a missing database file with 0644 minus the umask; the
  signal only fires once the file exists. Creating it first, empty and
  0600, leaves no moment in which it is readable by others.
- SQLite creates the ``-wal``, ``-shm`` and ``-journal`` files itself,
  again and again (the WAL goes when the last connection closes), and
  gives each the permission bits of the database file, whatever the umask
  (``robust_open`` in its ``os_unix.c`` ``fchmod``s them): a 0600 database
  is all it takes to have 0600 companions.
- The umask is one per process, shared by its threads: setting it around a
  connection would race with whatever another thread creates meanwhile
  (and with the restore of another connection's umask).

Companions and folders left readable by an earlier version are put right
at the first connection of each process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from mathsite import paths

COMPANIONS = ("-wal", "-shm", "-journal")


def make_private(database: str | os.PathLike[str]) -> None:
    """Create the SQLite database file ``database`` (mode 0600) if missing; make it private.

    The file and its existing companions get mode 0600; when the database
    lives in the data folder, that folder is created if missing and made
    0700. In-memory databases and ``file:`` URIs (a memory database, or a
    path with options only SQLite parses) are left alone. A file that
    cannot be created (its folder is missing) is left for SQLite to report
    as usual; raise ``sqlite3.OperationalError`` if a mode cannot be set (a
    file owned by another user), so that callers see a database error.
    """
    name = os.fspath(database)
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if path.parent.resolve() == paths.data_dir().resolve():
        paths.private_folder(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, flags, paths.PRIVATE_FILE_MODE))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in COMPANIONS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode != paths.PRIVATE_FILE_MODE:  # the umask may also have taken bits away
            try:
                file.chmod(paths.PRIVATE_FILE_MODE)
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot make {file} private: {exc}") from exc


class PrivateConnection(sqlite3.Connection):
    """A ``sqlite3.Connection`` that makes its database file private before opening it."""

    def __init__(self, database: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        make_private(database)
        super().__init__(database, *args, **kwargs)
