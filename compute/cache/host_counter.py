"""A per-host eviction counter in shared memory, so evictions are instant on one host.

Every gunicorn worker (and management command) on a host maps the same
small file; an eviction increments the counter under an exclusive file
lock, and each worker compares it with the value it last saw before
serving from its in-process tier — a memory read, no system call. A
DELETE answered by one worker is therefore seen by the next request on
any worker of the same host. Processes on other hosts still learn of it
through the Redis generation within ``LOCAL_CACHE_SYNC_SECONDS``.

    >>> import tempfile, pathlib
    >>> counter = HostCounter(pathlib.Path(tempfile.mkdtemp()) / "gen")
    >>> before = counter.read(); counter.bump(); counter.read() == before + 1
    True
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import stat
import struct
import sys
import tempfile
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)
_unpack = struct.Struct(_FORMAT).unpack_from


def private_folder() -> Path:
    """Return a folder only this user can write: /dev/shm (memory) or the temp dir.

    Raise RuntimeError if the folder exists but belongs to someone else or
    is open to others, since another user could then forge evictions.
    """
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())  # noqa: S108
    folder = base / f"mathsite-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} must be a directory owned by this user with mode 700")
    return folder


class HostCounter:
    """An unsigned 64-bit counter shared by every process that maps ``path``."""

    @staticmethod
    def path_for(name: str) -> Path:
        """Return the file of ``name``'s counter (not created; for whoever removes it)."""
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        return private_folder() / f"evictions-{digest}"

    @classmethod
    def for_name(cls, name: str) -> HostCounter:
        """Return the counter every process of this host opens for ``name``."""
        return cls(cls.path_for(name))

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        if os.fstat(self._fd).st_size < _SIZE:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, _SIZE)
        # The hit path reads it: an index into a view is a fifth of an unpack.
        self._view = memoryview(self._map).cast("Q") if sys.byteorder == "little" else None

    def read(self) -> int:
        """Return the current value (a plain memory read)."""
        view = self._view
        return view[0] if view is not None else _unpack(self._map)[0]

    def bump(self) -> None:
        """Increment the value; the file lock makes concurrent bumps all count."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            struct.pack_into(_FORMAT, self._map, 0, (self.read() + 1) % 2**64)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
