"""Where a cold request's time goes: each part of a computing request, timed in-process.

``python -m bench.cold_parts [--kind pi] [--count 300] [--out FILE]`` starts
a private embedded Redis on a unix socket and a SQLite log in a temporary
folder (mathsite's shipped settings, as the benchmark's servers use them),
then sends ``count`` cold requests (an n never requested before, each
through the whole WSGI application: the front, Django, DRF's view, the
throttle, the gate) and times the parts of each with wrappers around the
functions that do them:

- ``cache lookup``: the in-process tier, then one Redis GET (a miss);
- ``log lookup``: the result log's SELECT (``ResultLogManager.value_of``);
- ``rate throttle``: the compute rate's counter (one Redis round trip);
- ``lock``: taking the stampede lock, the entry read with it (one round trip);
- ``digit budget``: the budget's charge (one Redis script);
- ``computation``: the maths (in this thread, or in a computation process);
- ``log insert``: the row's INSERT and commit;
- ``store``: sealing the entry, storing it and releasing the lock (one round trip);
- ``rest``: the total less the parts (the WSGI front's miss, Django's
  middleware, DRF's dispatch and validation, the response).

Prints JSON with the median of each part in milliseconds, the median
total and the Redis round trips per request (counted on redis-py's
connection), and writes it to ``--out`` (default
``bench/results/cold_parts.json``). Without HTTP: the server and the socket
add the same to every request (section 2 of the report measures them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from launcher import embedded_redis
from launcher.serve import LOCAL_DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUT = BASE_DIR / "bench" / "results" / "cold_parts.json"
STARTS = {"pi": 7_000_000, "fib": 50_000}


class Parts:
    """Milliseconds spent in each named part, per request."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.requests: list[dict[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self.current[name] = self.current.get(name, 0.0) + seconds * 1000

    def function(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``function`` timed as part ``name``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return timed

    def entering(self, name: str, manager: Callable[..., Any]) -> Callable[..., Any]:
        """Return the context manager ``manager`` with its entering timed as part ``name``."""

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            started = time.perf_counter()
            with manager(*args, **kwargs) as value:
                self.add(name, time.perf_counter() - started)
                yield value

        return timed


def instrument(parts: Parts) -> None:
    """Wrap the functions that make up a cold request (this process only)."""
    from compute import services
    from compute.cache.budget import BudgetLedger
    from compute.cache.locks import ComputeLocks
    from compute.cache.store import ResultCache
    from compute.models import ResultLogManager

    ResultCache.get = parts.function("cache lookup", ResultCache.get)
    ResultLogManager.value_of = parts.function("log lookup", ResultLogManager.value_of)
    ResultCache.count_hit = parts.function("rate throttle", ResultCache.count_hit)
    ComputeLocks.hold = parts.entering("lock", ComputeLocks.hold)
    BudgetLedger.charge = parts.function("digit budget", BudgetLedger.charge)
    services.compute_pool.run = parts.function("computation", services.compute_pool.run)
    services.result_record = parts.function("log insert", services.result_record)
    ResultCache.set = parts.function("store", ResultCache.set)


def count_round_trips() -> list[int]:
    """Count every request redis-py sends from now on (one per command or pipeline)."""
    from redis.connection import AbstractConnection

    sent = [0]
    real = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        sent[0] += 1
        return real(self, command, check_health)

    AbstractConnection.send_packed_command = counting
    return sent


def measure(kind: str, count: int, redis_url: str, data: Path) -> dict[str, Any]:
    """Send ``count`` cold requests in-process; return the medians of their parts."""
    data.mkdir(parents=True, exist_ok=True)
    os.environ.update(LOCAL_DEFAULTS)
    os.environ.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "MATHSITE_DATA_DIR": str(data),
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "mathsite-cold-parts",
            "DJANGO_SETTINGS_MODULE": "mathsite.settings",
        }
    )
    subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
        check=True, cwd=BASE_DIR, timeout=300,
    )  # fmt: skip
    import django

    django.setup()
    from mathsite.wsgi import application

    from .wsgi_cost import environ_for

    def get(n: int) -> tuple[str, bytes]:
        status: list[str] = []
        environ = environ_for(f"/api/{kind}/{n}/")
        environ["wsgi.errors"] = io.StringIO()
        body = application(environ, lambda code, headers, exc_info=None: status.append(code))
        content = b"".join(body)
        getattr(body, "close", lambda: None)()
        return status[0], content

    start = STARTS[kind]
    for k in range(10):  # one-off set-up: connections, classes, the computation processes
        get(start - 100 - k)
    parts = Parts()
    instrument(parts)
    sent = count_round_trips()
    totals, trips = [], []
    for k in range(count):
        parts.current = {}
        before = sent[0]
        started = time.perf_counter()
        status, content = get(start + k)
        totals.append((time.perf_counter() - started) * 1000)
        trips.append(sent[0] - before)
        if not status.startswith("200") or not content.startswith(b'{"cached":false'):
            raise RuntimeError(f"request {k} was not a cold 200: {status} {content[:80]!r}")
        parts.requests.append(parts.current)
    names = sorted({name for request in parts.requests for name in request})
    medians = {
        name: round(statistics.median(r.get(name, 0.0) for r in parts.requests), 3)
        for name in names
    }
    total = statistics.median(totals)
    medians["rest"] = round(total - sum(medians.values()), 3)
    return {
        "kind": kind,
        "requests": count,
        "total_ms": round(total, 3),
        "parts_ms": medians,
        "redis_round_trips": statistics.median(trips),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the JSON (a private embedded Redis is started and stopped)."""
    parser = argparse.ArgumentParser(prog="python -m bench.cold_parts")
    parser.add_argument("--kind", choices=sorted(STARTS), default="pi")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="mathsite-bench-") as folder,
        embedded_redis.running(Path(folder) / "redis") as url,
    ):
        # The request log goes to a file, as under the benchmark's servers.
        log = (Path(folder) / "mathsite.log").open("ab")
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            result = measure(args.kind, args.count, url, Path(folder) / "data")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.close()
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
