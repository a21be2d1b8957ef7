"""CPU cost of one cached hit inside the WSGI application, without gunicorn or sockets.

``python -m bench.wsgi_cost [--batch N] [--batches K] [--pollute BYTES] APP PATH...`` imports
the application (``mathsite``: ``mathsite.wsgi.application``; ``old``: the
Flask baseline), calls it with a
prebuilt WSGI environ for each path in batches, and prints JSON: the best
and median microseconds per call over the batches. The best batch is the
figure least disturbed by other processes, which makes this the steadiest
number the benchmark has on a shared machine; the difference between the
two applications is what the hot path can win or lose under HTTP load
(gunicorn's own per-request work is the same for both).

The runner starts it as a subprocess with the service's environment (its
stderr, where mathsite writes its request log, going to a file as under
gunicorn), so Django's settings never load into the runner.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from .stats import median


def environ_for(path: str, port: int = 8000) -> dict[str, Any]:
    """Return a WSGI environ for ``GET path`` as gunicorn would build it."""
    path_info, _, query = path.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": f"127.0.0.1:{port}",
        "HTTP_USER_AGENT": "mathsite-bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def call_cost(
    app: Callable[..., Any],
    path: str,
    *,
    batch: int = 500,
    batches: int = 9,
    pollute: int | None = None,
) -> dict[str, float]:
    """Return best and median microseconds per call of ``app`` for ``GET path``.

    ``pollute`` (bytes, 0 too): the calls are timed one by one, without the
    environ's building, and every cache line of that many bytes is touched
    before each, as a server's other threads do between two hits: the call
    then reads what it needs from memory instead of from the CPU's caches.
    """
    status: list[str] = []

    def start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(code)

    def once() -> None:
        body = app(environ_for(path), start_response)
        try:
            for _chunk in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    for _ in range(50):  # warm: imports, caches, the in-process tier
        once()
    if not status or not status[-1].startswith("200"):
        raise RuntimeError(f"GET {path} answered {status[-1] if status else 'nothing'}")
    per_call = []
    if pollute is not None:
        junk = bytearray(pollute)
        lines = bytes(len(range(0, pollute, 64)))
        for _ in range(batches):
            spent = 0.0
            for _ in range(batch):
                environ = environ_for(path)
                junk[::64] = lines
                started = time.perf_counter()
                app(environ, start_response)
                spent += time.perf_counter() - started
            per_call.append(spent / batch * 1e6)
        return {"best_us": min(per_call), "median_us": median(per_call)}
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            once()
        per_call.append((time.perf_counter() - started) / batch * 1e6)
    return {"best_us": min(per_call), "median_us": median(per_call)}


def load_app(name: str) -> Callable[..., Any]:
    """Return the WSGI application ``mathsite`` or ``old``."""
    if name == "mathsite":
        from mathsite.wsgi import application

        return application
    if name == "old":
        from .seed_service.app import app

        return app
    raise ValueError(f"unknown application {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Print the JSON cost of each path for the named application."""
    parser = argparse.ArgumentParser(prog="python -m bench.wsgi_cost")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument(
        "--pollute", type=int, default=None, metavar="BYTES", help="touch BYTES between calls"
    )
    parser.add_argument("app", choices=["mathsite", "old"])
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    app = load_app(args.app)
    costs = {
        path: call_cost(app, path, batch=args.batch, batches=args.batches, pollute=args.pollute)
        for path in args.paths
    }
    print(json.dumps(costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
