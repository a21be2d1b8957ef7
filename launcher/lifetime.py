"""Process lifetimes: children that die with their parent, and what a pid file names.

``make run`` starts long-lived children (the Redis supervisor, granian). If
``make run`` itself is killed with SIGKILL, nothing of it runs any more to
stop them, and a child in a session of its own (Redis must not see the
terminal's Ctrl-C before granian has stopped) is not reached by a signal to
the process group either. Linux's parent-death signal covers that: the
kernel sends the child a signal when its parent dies, however it died::

    subprocess.Popen(command, preexec_fn=die_with_parent())   # SIGTERM when we die

The kernel ties the signal to the *thread* that forked the child, so spawn
such children from the main thread (or one that lives as long as they
should). Elsewhere than Linux ``die_with_parent`` returns None (no hook).

``alive`` and ``command_line`` tell whether a pid from a pid file still
runs, and what: a pid file of a killed run may name a pid that the system
has since given to an unrelated process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a ``preexec_fn`` making the child receive ``sig`` when this thread dies.

    The hook also covers the race where the parent died between ``fork``
    and the ``prctl`` call (the child would otherwise be adopted by init
    with no signal ever coming): it then sends ``sig`` to itself at once.
    Return None where the parent-death signal does not exist.
    """
    prctl = _prctl()  # resolved before fork: nothing is loaded in the child
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def alive(pid: int) -> bool:
    """Return True if a process with ``pid`` exists (ours or another user's), zombies excepted."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: it only waits for its parent to reap it
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def command_line(pid: int) -> list[str]:
    """Return the command line of process ``pid`` ([] if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path) -> int | None:
    """Return the pid written in ``path``, or None if there is none (missing, empty, junk)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None
