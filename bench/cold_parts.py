"""Where a cold request's time goes: each part of a computing request, timed in-process.

``python -m bench.cold_parts [--kind pi] [--count 300] [--out FILE]`` starts
a private embedded Redis on a unix socket and a SQLite log in a temporary
folder (mathsite's shipped settings, as the benchmark's servers use them),
then asks one result three times (so the WSGI front, having learnt the
site's headers, looks up every request, as on a server that has seen
traffic) and sends ``count`` cold requests (an n never requested before, each
through the whole WSGI application: the front, Django, DRF's view, the
throttle, the gate) and times the parts of each with wrappers around the
functions that do them:

- ``cache lookup``: the in-process tier, then Redis (a miss), by the WSGI
  front and, unless told the front's verdict, the view (``ResultCache.find``);
- ``log lookup``: the result log's SELECT (``ResultLogManager.value_of``);
- ``rate throttle``: the compute rate's counter (one Redis round trip);
- ``lock``: taking the stampede lock, the entry read with it (one round trip);
- ``digit budget``: the budget's charge (one Redis script);
- ``computation``: the maths (in this thread, or in a computation process);
- ``log insert``: the row's INSERT and commit;
- ``payload``: the payload of the computed text (its JSON bodies; gzip for large ones);
- ``store``: storing the entry and releasing the lock (one round trip);
- ``MAC``: sealing the entry (``EntrySeal.seal``, inside the store; each
  part's time excludes the parts timed inside it);
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
STARTS = {"pi": 7_000_000, "fib": 999_000}


class Parts:
    """Milliseconds spent in each named part, per request."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.requests: list[dict[str, float]] = []
        # Seconds spent in parts nested inside the part being timed, per level:
        # a part's own time excludes them (the MAC inside the store, ...).
        self._inner: list[float] = []

    def add(self, name: str, seconds: float) -> None:
        self.current[name] = self.current.get(name, 0.0) + seconds * 1000

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Time the block as part ``name``, less the parts timed inside it."""
        self._inner.append(0.0)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            inner = self._inner.pop()
            self.add(name, elapsed - inner)
            if self._inner:
                self._inner[-1] += elapsed

    def function(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``function`` timed as part ``name``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(name):
                return function(*args, **kwargs)

        return timed

    def entering(self, name: str, manager: Callable[..., Any]) -> Callable[..., Any]:
        """Return the context manager ``manager`` with its entering timed as part ``name``."""

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with contextlib.ExitStack() as stack:
                with self.timing(name):
                    value = stack.enter_context(manager(*args, **kwargs))
                yield value

        return timed


def instrument(parts: Parts) -> None:
    """Wrap the functions that make up a cold request (this process only)."""
    from compute import services
    from compute.cache.budget import BudgetLedger
    from compute.cache.integrity import EntrySeal
    from compute.cache.locks import ComputeLocks
    from compute.cache.store import ResultCache
    from compute.domain.payload import Payload
    from compute.models import ResultLogManager

    ResultCache.find = parts.function("cache lookup", ResultCache.find)
    ResultLogManager.value_of = parts.function("log lookup", ResultLogManager.value_of)
    ResultCache.count_hit = parts.function("rate throttle", ResultCache.count_hit)
    ComputeLocks.hold = parts.entering("lock", ComputeLocks.hold)
    BudgetLedger.charge = parts.function("digit budget", BudgetLedger.charge)
    services.compute_pool.run = parts.function("computation", services.compute_pool.run)
    services.result_record = parts.function("log insert", services.result_record)
    ResultCache.set = parts.function("store", ResultCache.set)
    EntrySeal.seal = parts.function("MAC", EntrySeal.seal)
    Payload.from_text = parts.function("payload", Payload.from_text)


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
            # fib near 10**6 costs ~209,000 digits a request: the default budget
            # (20,000,000 an hour) would refuse the 96th; charged all the same.
            "COMPUTE_DIGITS_PER_HOUR": str(10**12),
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
    for _ in range(3):  # hits teach the WSGI front the site's headers: it then looks up misses
        get(start - 100)
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
