"""The decimal text of the result a query names: the one pure computation behind every value.

``result_text`` asks the query's kind (``compute.domain.kinds``). A plain
module-level function of a ``ResultQuery`` (both picklable), so it can run
in this process or in a computation process (``compute.admission.offload``)
alike; the kind is looked up in the registry of the process that runs it,
and a kind of a configured ``RESULT_KINDS`` that is not built in is sent
along (``computation``) so that a child process without Django finds it.

    >>> result_text(ResultQuery("fib", 10))
    '55'
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from compute.domain import maths
from compute.domain.kinds import registry
from compute.domain.query import ResultQuery


def result_text(query: ResultQuery) -> str:
    """Return the decimal text of ``query``'s result; raise UnknownKind for an unknown kind."""
    return registry.get(query.kind).compute(query)


def computation(query: ResultQuery) -> Callable[[ResultQuery], str]:
    """Return the picklable function that computes ``query``'s result in any process.

    The kind's bound ``compute``: pickled with its kind's class, which the
    child imports by module path, so it needs no registry of its own.
    """
    return registry.get(query.kind).compute


# How often a computation process looks whether the process that started it is gone.
PARENT_CHECK_SECONDS = 0.5


def prepare_process(niceness: int) -> None:
    """Set up a computation process: lower its priority, tie it to its parent, load the maths.

    The initializer of ``compute.admission.offload``'s children. A child
    whose parent (a server worker) is killed would otherwise wait forever
    for work that never comes, about 26 MB each, every time a worker is
    killed or restarted: a watch thread ends it within
    ``PARENT_CHECK_SECONDS`` once it has been handed to another parent.
    (Linux's parent-death signal is tied to the thread that spawned the
    child, which may be a server thread that ends long before the worker.)
    One small computation then imports the maths (gmpy2) and warms it while
    the worker starts, so the first large request a child takes pays for
    neither.
    """
    os.nice(niceness)
    _end_with(os.getppid())
    maths.fib_decimal(1_000)
    maths.prepare()


def _end_with(parent: int) -> None:
    """End this process soon after ``parent`` is no longer its parent (it died)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="mathsite-parent-watch", daemon=True).start()


# A computation's digits come back in one write (fib(10**6) is 209 kB): a pipe of
# Linux's default 64 kB would wake the reader for every fourth of them.
RESULT_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux; Python 3.11's fcntl does not name it)


def widen_pipe(descriptor: int, size: int = RESULT_PIPE_BYTES) -> None:
    """Ask Linux for a pipe buffer of ``size`` bytes on ``descriptor``; elsewhere, nothing."""
    try:
        import fcntl

        fcntl.fcntl(descriptor, _F_SETPIPE_SZ, size)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default pipe


def serve(tasks: Any, replies: Any, niceness: int) -> None:
    """Run a computation process: prepare it, say it is ready, then compute what it is sent.

    The target of ``compute.admission.offload``'s children. ``tasks`` and
    ``replies`` are the child's ends of two one-way pipes: the parent sends
    ``(function, argument)`` (or None: stop) and reads ``(True, value)`` or
    ``(False, exception)``; the first reply is the child's pid, once ready.
    """
    prepare_process(niceness)
    widen_pipe(replies.fileno())
    replies.send(os.getpid())
    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        function, argument = task
        try:
            reply: tuple[bool, Any] = (True, function(argument))
        except BaseException as exc:  # handed to the caller, as a call here would raise it
            reply = (False, exc)
        try:
            replies.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the value or the exception does not pickle
            replies.send((False, RuntimeError(f"computation reply not picklable: {exc!r}")))
