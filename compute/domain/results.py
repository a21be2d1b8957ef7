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
