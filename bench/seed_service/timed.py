"""Any WSGI app, its calls timed inside the server: how long the application holds a request.

``TIMED_APP`` names the application (``module:attribute``); every call is
timed with ``time.perf_counter`` (a vDSO clock read, about 0.05 us: a CPU
clock would be a system call here) and each worker writes its count and
total to ``TIMED_DIR/<pid>.txt`` every half second (``bench.call_time``
reads them). A call's time ends when the application returns its body
list; the server's conversion of the reply comes after.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_module, _, _name = os.environ["TIMED_APP"].partition(":")
_inner = getattr(importlib.import_module(_module), _name)
_clock = time.perf_counter
_totals = [0, 0.0]  # calls, seconds: one writer at a time per call; a race costs one sample


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Call the timed application and add the call's time to this worker's totals."""
    started = _clock()
    try:
        return _inner(environ, start_response)
    finally:
        _totals[1] += _clock() - started
        _totals[0] += 1


def _write() -> None:
    path = Path(os.environ["TIMED_DIR"]) / f"{os.getpid()}.txt"
    while True:
        time.sleep(0.5)
        path.write_text(f"{_totals[0]} {_totals[1]!r}\n")


threading.Thread(target=_write, name="timed-writer", daemon=True).start()
