"""The ``million`` stage (issue 11): the admin, list endpoints and statistics at a million results.

SPEC "Operations": what costs grows with the work, not with the history.
This stage creates a PostgreSQL database of its own (``bench_mathsite_<pid>``
on ``BENCH_POSTGRES_URL``, default ``postgres://postgres@127.0.0.1:5432/postgres``),
fills the result log with ``Config.million_rows`` real results and drops the
database afterwards, also on error. Without a reachable PostgreSQL it
reports "not run".

The work happens in a child process (``python -m bench.million child``)
with mathsite's own settings pointed at that database and at the run's
dedicated Redis (a database index of its own):

1. migrate; compute the rows with ``compute.domain.maths`` (mostly pi
   doubles for n = 1, 2, ..., a thousandth each fib(n) and pi(n) to 30
   digits), each with its measured compute time, over two processes;
2. load them with one ``COPY`` (psycopg), then ``VACUUM ANALYZE`` (what
   autovacuum does on a live server), and store ``million_redis_entries``
   of them in Redis, so the cache's statistics are estimates;
3. time, in-process through Django's test client (middleware, views,
   templates, ORM; no HTTP socket), medians of ``million_repeats`` after
   one warm-up: the admin changelist (first page, and its last capped
   page), a search by n, the statistics page, ``/api/pi/`` and ``/api/fib/``
   (first page, and a page near the oldest end by a cursor), and
   ``manage.py cache_stats``; the bound is 300 ms each;
4. check the figures: the statistics page's counts and largest n equal
   what was loaded; ``cache_stats`` estimates the Redis entries within its
   stated margin.

    python -m bench.run --only million          # 1,000,000 rows (a few minutes)
    python -m bench.run --only million --smoke  # 5,000 rows
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BOUND_MS = 300.0
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# One row in this many is a fib(n), and as many again a pi(n) with 30 digits.
OTHER_KIND_EVERY = 1000
PI_DIGITS = 30


# --- the parent: create the database, run the child, drop the database ----------------


def stage_million(
    *,
    rows: int,
    redis_entries: int,
    repeats: int,
    redis_url: str,
    env: dict[str, str],
    folder: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the stage; return its figures, or ``{"status": "not run", ...}`` without PostgreSQL."""
    import psycopg

    server_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        admin = psycopg.connect(server_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        log(f"million: not run (no PostgreSQL at {server_url}: {exc})")
        return {"status": "not run", "reason": f"no PostgreSQL at {server_url}: {exc}"}
    name = f"bench_mathsite_{os.getpid()}"
    database_url = server_url.rsplit("/", 1)[0] + "/" + name
    (folder / "static").mkdir(parents=True, exist_ok=True)  # STATIC_ROOT of the child
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        log(f"million: database {name}, {rows:,} rows")
        child_env = {
            **env,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "mathsite-million",
            "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "MATHSITE_DATA_DIR": str(folder),
            "DJANGO_SETTINGS_MODULE": "mathsite.settings",
            "LOG_LEVEL": "WARNING",
            "REQUEST_LOG": "false",
        }
        command = [
            sys.executable, "-m", "bench.million", "child",
            "--rows", str(rows), "--redis-entries", str(redis_entries),
            "--repeats", str(repeats),
        ]  # fmt: skip
        done = subprocess.run(
            command, env=child_env, cwd=Path(__file__).resolve().parent.parent,
            capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        (folder / "million.log").write_text(done.stderr)
        if done.returncode:
            raise RuntimeError(f"the million child failed:\n{done.stderr[-4000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    figures.update(status="run", database=name, bound_ms=BOUND_MS)
    for row in figures["timings"]:
        log(
            f"million: {row['name']}: median {row['median_ms']:.1f} ms, "
            f"max {row['max_ms']:.1f} ms ({'met' if row['met'] else 'NOT MET'})"
        )
    return figures


# --- the child: load, time, check --------------------------------------------------------


def _pi_chunk(bounds: tuple[int, int]) -> list[tuple[int, str, float]]:
    """Return (n, text, compute ms) of pi(n) as a double for n in [start, stop)."""
    from compute.domain import maths

    out = []
    for n in range(*bounds):
        started = time.perf_counter()
        value = maths.pi_double(n)
        out.append((n, repr(value), (time.perf_counter() - started) * 1000))
    return out


def _rows(count: int) -> list[tuple[str, int, int, str, float]]:
    """Return (kind, n, precision, text, compute ms) of ``count`` real results."""
    from multiprocessing import Pool

    from compute.domain import maths

    others = max(1, count // OTHER_KIND_EVERY)
    doubles = count - 2 * others
    step = 20_000
    with Pool(2) as pool:
        chunks = pool.map(
            _pi_chunk, [(a, min(a + step, doubles + 1)) for a in range(1, doubles + 1, step)]
        )
    rows = [("pi", n, 0, text, ms) for chunk in chunks for n, text, ms in chunk]
    for n in range(others):
        started = time.perf_counter()
        text = maths.fib_decimal(n)
        rows.append(("fib", n, 0, text, (time.perf_counter() - started) * 1000))
    for n in range(1, others + 1):
        started = time.perf_counter()
        text = maths.pi_digits(n, PI_DIGITS)
        rows.append(("pi", n, PI_DIGITS, text, (time.perf_counter() - started) * 1000))
    return rows


def _load(rows: list[tuple[str, int, int, str, float]]) -> None:
    """COPY the rows into the log, newest last, spread over the last 30 days."""
    import datetime

    from django.db import connection

    from compute import services
    from compute.domain import maths

    order = list(range(len(rows)))
    random.Random(11).shuffle(order)  # kinds interleaved in time, as traffic would
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    spacing = datetime.timedelta(days=30) / len(rows)
    columns = "kind, n, precision, modulus, value, preview, length, compute_ms, computed_at"
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY compute_computedresult ({columns}) FROM STDIN") as copy,
    ):
        for position, index in enumerate(order):
            kind, n, precision, text, ms = rows[index]
            copy.write_row(
                (
                    kind, n, precision, 0, text, services.preview_of(text),
                    maths.count_digits(text), ms, start + spacing * position,
                )
            )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE compute_computedresult")


def _fill_redis(rows: list[tuple[str, int, int, str, float]], count: int) -> None:
    from compute.cache import result_cache
    from compute.domain.payload import Payload
    from compute.domain.query import ResultQuery

    result_cache.clear_namespace()  # this stage's prefix only, whichever Redis it is given
    items = []
    for kind, n, precision, text, _ in rows[:count]:
        query = ResultQuery(kind, n, digits=precision or None)
        items.append((query, Payload.from_text(query, text)))
        if len(items) == 10_000:
            result_cache.set_many(items)
            items = []
    result_cache.set_many(items)


def _time(name: str, function: Callable[[], Any], repeats: int) -> dict[str, Any]:
    from .stats import median

    function()  # warm-up: connections, templates, plans
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "name": name,
        "median_ms": round(median(samples), 2),
        "max_ms": round(max(samples), 2),
        "samples_ms": [round(s, 2) for s in samples],
        "met": median(samples) < BOUND_MS,
    }


def _deep_cursor(kind: str) -> tuple[str, int]:
    """Return a list cursor at the 61st oldest row of ``kind`` and the rows older than it.

    DRF's cursor is base64 of ``p=<position>`` (the first ordering field):
    the page it names starts just below that row, near the end of the list.
    """
    import base64
    from urllib.parse import urlencode

    from compute.models import ComputedResult

    oldest = list(
        ComputedResult.objects.filter(kind=kind)
        .order_by("computed_at", "id")
        .values_list("computed_at", flat=True)[:61]
    )
    cursor = base64.b64encode(urlencode({"p": str(oldest[-1])}).encode()).decode()
    return cursor, len(oldest) - 1


def child(rows_count: int, redis_entries: int, repeats: int) -> dict[str, Any]:
    """Load, time and check (in a process whose settings point at the stage's database)."""
    import django

    django.setup()
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", "--noinput", verbosity=0)
    figures: dict[str, Any] = {"rows": rows_count, "redis_entries": redis_entries}
    started = time.perf_counter()
    rows = _rows(rows_count)
    figures["compute_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    _load(rows)
    figures["load_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    _fill_redis(rows, redis_entries)
    figures["redis_fill_s"] = round(time.perf_counter() - started, 1)
    expected = {
        "pi": sum(1 for r in rows if r[0] == "pi"),
        "pi_digits": sum(1 for r in rows if r[0] == "pi" and r[2]),
        "fib": sum(1 for r in rows if r[0] == "fib"),
        "pi_largest_n": max(r[1] for r in rows if r[0] == "pi"),
        "fib_largest_n": max(r[1] for r in rows if r[0] == "fib"),
    }
    del rows

    staff = get_user_model().objects.create_superuser("bench", "bench@example.org", "unused")
    client = Client()
    client.force_login(staff)
    admin = "/admin/compute/computedresult/"

    def get(path: str) -> Callable[[], Any]:
        def fetch() -> Any:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.content[:300]!r}")
            return response

        return fetch

    def cache_stats() -> str:
        out = StringIO()
        call_command("cache_stats", "--json", stdout=out)
        return out.getvalue()

    deep, older = {}, {}
    for kind in ("pi", "fib"):
        deep[kind], older[kind] = _deep_cursor(kind)
    search_n = expected["pi_largest_n"] // 2
    last_page = (min(rows_count, 10_000) - 1) // 50  # 0-based, as the admin's ?p=
    cases = [
        ("admin changelist, first page", get(admin)),
        (
            f"admin changelist, page {last_page + 1} (the last of the capped count)",
            get(f"{admin}?p={last_page}"),
        ),
        (f"admin search by n (q={search_n})", get(f"{admin}?q={search_n}")),
        ("admin statistics page", get(f"{admin}statistics/")),
        ("GET /api/pi/, first page", get("/api/pi/")),
        ("GET /api/fib/, first page", get("/api/fib/")),
        ("GET /api/pi/, a page near the oldest end (cursor)", get(f"/api/pi/?cursor={deep['pi']}")),
        (
            "GET /api/fib/, a page near the oldest end (cursor)",
            get(f"/api/fib/?cursor={deep['fib']}"),
        ),
        ("manage.py cache_stats", cache_stats),
    ]
    figures["timings"] = [_time(name, function, repeats) for name, function in cases]

    # The figures are right, not only fast. (Responses carry their template
    # context only in Django's test environment, set up after the timings.)
    from django.test.utils import setup_test_environment

    setup_test_environment()
    page = get(f"{admin}statistics/")()
    counts = {row["kind"]: row for row in page.context["counts"]}
    search = get(f"{admin}?q={search_n}")()
    stats = json.loads(cache_stats())
    deep_page = get(f"/api/pi/?cursor={deep['pi']}")().json()
    checks = {
        "pi results": (counts["pi"]["results"], expected["pi"]),
        "pi with digits": (counts["pi"]["with_digits"], expected["pi_digits"]),
        "fib results": (counts["fib"]["results"], expected["fib"]),
        "pi largest n": (counts["pi"]["largest_n"], expected["pi_largest_n"]),
        "fib largest n": (counts["fib"]["largest_n"], expected["fib_largest_n"]),
        "search rows (double and digits=30 share no n this large)": (
            len(search.context["cl"].result_list),
            1 if search_n > expected["pi_digits"] else 2,
        ),
        "items of the pi page near the end": (len(deep_page["results"]), min(50, older["pi"])),
    }
    figures["checks"] = [
        {"what": what, "got": got, "expected": want, "ok": got == want}
        for what, (got, want) in checks.items()
    ]
    margin = stats["entries_margin"]
    figures["checks"].append(
        {
            "what": "cache_stats entries within its stated 95% margin"
            + (" (estimate)" if stats["estimated"] else " (exact)"),
            "got": f"{stats['entries']:,} +/- {margin:,}",
            "expected": redis_entries,
            "ok": abs(stats["entries"] - redis_entries) <= max(margin, 0),
        }
    )
    figures["cache_stats_method"] = stats["method"]
    return figures


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.million child ...``: the child process of the stage."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.million")
    parser.add_argument("mode", choices=["child"])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--redis-entries", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    figures = child(args.rows, args.redis_entries, args.repeats)
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
