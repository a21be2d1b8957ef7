"""The ``serving`` stage: mathsite, the old service and a constant app under granian and gunicorn.

Six (server, application) combinations, started one at a time and stopped
before the next: mathsite (``mathsite.wsgi:application``), the old Flask
service (``bench.seed_service.app:app``) and the constant WSGI app
(``bench.seed_service.floor:app``), each under granian with mathsite's
production settings (``launcher.server``; ``servers.Granian``) and under
gunicorn with the sync workers of the other stages (``servers.Gunicorn``),
2 workers each. Every one answers ``GET /fib/90`` from its cache (the
constant app answers everything alike).

Three layouts, one phase each (every combination measured in a phase
before the next phase starts, so the rows compared with each other are
measured minutes apart at most):

- ``keep-alive``: 32 keep-alive connections (``wrk -t2 -c32``), server, wrk
  and Redis all free to run on every core. The targets are read here.
- ``pinned``: the same load, the server on the upper half of the cores and
  wrk and Redis on the lower half, as the other stages run.
- ``close``: unpinned, every request on a new connection
  (``wrk -H "Connection: close"``).

Each combination is warmed first: ``/fib/90`` requested until it answers
``cached: true`` (computed and stored by the first request), then a few
requests per worker (mathsite's WSGI front answers a hit itself only after
it has seen Django's site headers twice) and a short wrk run. For mathsite
the warm-up is checked: a last few requests must leave no line in the
request log, which only Django's stack writes (the front answered them).
Then wrk runs ``repeats`` times; medians of requests/s and of p99 latency.

Sync gunicorn workers close each connection after its response, so wrk's
"keep-alive" connections to gunicorn reconnect for every request: what a
client of a gunicorn deployment without a buffering proxy gets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from launcher import server as mathsite_server

from . import client, load, machine
from .servers import BASE_DIR, Granian, Gunicorn, Launcher, RedisServer, set_affinity
from .stages import Config
from .stats import median

SERVERS = ("granian", "gunicorn")
APPS = {
    "mathsite": "mathsite.wsgi:application",
    "old": "bench.seed_service.app:app",
    "floor": "bench.seed_service.floor:app",
}
APP_LABELS = {"mathsite": "mathsite", "old": "old service", "floor": "constant WSGI app"}
# The order each phase starts them in: the bounded comparisons side by side.
ORDER = (
    ("granian", "mathsite"),
    ("gunicorn", "old"),
    ("granian", "old"),
    ("granian", "floor"),
    ("gunicorn", "mathsite"),
    ("gunicorn", "floor"),
)
LAYOUTS = {
    "keep-alive": "32 keep-alive connections; server, wrk and Redis unpinned (every core)",
    "pinned": "32 keep-alive connections; server on the upper half of the cores, "
    "wrk and Redis on the lower half",
    "close": "32 connections, each request on a new one (Connection: close); unpinned",
}
BOUNDED_LAYOUT = "keep-alive"
SUBJECT = "granian mathsite"
# (key, what mathsite on granian is compared with, bound, goal): throughput ratios.
RATIO_TARGETS = (
    ("vs old gunicorn", "gunicorn old", 10.0, 15.0),
    ("vs old granian", "granian old", 5.0, 8.0),
    ("vs floor granian", "granian floor", 0.6, 0.75),
)
P99_BOUND_MS = 10.0
P99_GOAL_MS = 5.0


def cell(server: str, app: str) -> str:
    """Return the results key of one combination, e.g. ``"granian mathsite"``."""
    return f"{server} {app}"


def make_server(
    server: str,
    app: str,
    *,
    env: dict[str, str],
    folder: Path,
    workers: int,
    cpus: Sequence[int] | None,
    blocking_threads: int | None,
    base_dir: Path = BASE_DIR,
    launcher: Launcher = mathsite_server,
) -> Granian | Gunicorn:
    """Return the (not yet started) server of one combination, logging into ``folder``.

    ``base_dir`` and ``launcher`` name the checkout whose code granian serves
    and whose ``launcher.server`` settings it runs with (``bench.against``).
    """
    log = folder / f"serving-{server}-{app}.log"
    if server == "granian":
        return Granian(
            f"{app} on granian", APPS[app], env=env, log=log, workers=workers,
            blocking_threads=blocking_threads, cpus=cpus, metrics_dir=folder / f"metrics-{app}",
            base_dir=base_dir, launcher=launcher,
        )  # fmt: skip
    return Gunicorn(f"{app} on gunicorn", APPS[app], env=env, log=log, workers=workers, cpus=cpus)


def _logged_lines(log: Path, offset: int, path: str) -> int:
    """Return how many lines written to ``log`` after ``offset`` mention ``path``."""
    with log.open("rb") as handle:
        handle.seek(offset)
        return sum(1 for line in handle if path.encode() in line)


def warm(
    web: Granian | Gunicorn,
    app: str,
    path: str,
    *,
    requests: int,
    seconds: float,
    load_run: Callable[[float], load.LoadResult],
) -> dict[str, Any]:
    """Make ``path`` a warm cached hit on ``web``; return the hit check."""
    reply = client.fetch(web.port, path)
    for _ in range(10):
        if reply.cached:
            break
        reply = client.fetch(web.port, path)
    for _ in range(requests):
        client.fetch(web.port, path)
    if seconds:
        load_run(seconds)
    check: dict[str, Any] = {
        "status": reply.status,
        "cached": reply.cached,
        "body": reply.body.decode("latin-1")[:120],
        "wire_bytes": reply.wire_bytes,
    }
    if app == "mathsite":
        # Django's request log has a line for every request its stack answered;
        # the WSGI front writes none: none for these means the front has learned.
        offset = web.log.stat().st_size
        for _ in range(requests):
            client.fetch(web.port, path)
        check["logged_by_django"] = _logged_lines(web.log, offset, path)
        check["front_answered"] = check["logged_by_django"] == 0
    return check


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians of req/s, p50 and p99 over wrk ``runs``, their error sums, the runs."""
    return {
        "requests_per_second": median([r["requests_per_second"] for r in runs]),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "runs": runs,
    }


def measure(
    cfg: Config,
    web: Granian | Gunicorn,
    app: str,
    path: str,
    cpus: Sequence[int],
    headers: dict[str, str],
    label: str,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start ``web``, warm it, run wrk ``repeats`` times, stop it; return (check, summary).

    The summary holds medians of requests/s, p50 and p99 over the runs.
    """

    def run(seconds: float) -> load.LoadResult:
        return load.run_wrk(
            web.base + path, connections=cfg.connections, seconds=seconds, cpus=cpus,
            threads=cfg.serving_threads, headers=headers,
        )  # fmt: skip

    time_wait = machine.time_wait_sockets()
    with web:
        check = warm(
            web, app, path, requests=cfg.serving_warm_requests * cfg.workers,
            seconds=cfg.serving_warmup_seconds, load_run=run,
        )  # fmt: skip
        runs = []
        for repeat in range(cfg.serving_repeats):
            figures = run(cfg.serving_seconds)
            runs.append(figures.as_dict())
            log(
                f"  {label} run {repeat + 1}/{cfg.serving_repeats} "
                f"{figures.requests_per_second:9.0f} req/s  "
                f"p50 {figures.p50_ms:6.2f} ms  p99 {figures.p99_ms:6.2f} ms  "
                f"errors {figures.errors} non-2xx {figures.non_2xx}"
            )
    figures = summary(runs)
    figures["time_wait_at_start"] = time_wait
    return check, figures


def evaluate(serving: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the four verdicts: target text, figure, value, bound, goal, met, goal met."""
    cells = serving["cells"].get(BOUNDED_LAYOUT, {})
    subject = cells.get(SUBJECT)
    if subject is None:
        return []
    clean = subject["non_2xx"] == 0 and subject["errors"] == 0
    verdicts = []
    rps = subject["requests_per_second"]
    for key, other_key, bound, goal in RATIO_TARGETS:
        other = cells.get(other_key)
        if other is None:
            continue
        server, app = other_key.split(" ", 1)
        ratio = rps / other["requests_per_second"] if other["requests_per_second"] else 0.0
        verdicts.append(
            {
                "key": key,
                "target": f"mathsite on granian, cached-hit throughput vs the "
                f"{APP_LABELS[app]} on {server} >= {bound:g}x (goal {goal:g}x)",
                "figure": f"{ratio:.2f}x ({rps:,.0f} vs {other['requests_per_second']:,.0f} req/s)",
                "value": ratio,
                "bound": bound,
                "goal": goal,
                "met": ratio >= bound and clean,
                "goal_met": ratio >= goal and clean,
            }
        )
    p99 = subject["p99_ms"]
    verdicts.append(
        {
            "key": "p99",
            "target": f"mathsite on granian, cached-hit p99 at {serving['connections']} "
            f"keep-alive connections < {P99_BOUND_MS:g} ms (goal < {P99_GOAL_MS:g} ms)",
            "figure": f"{p99:.2f} ms (p50 {subject['p50_ms']:.2f} ms)",
            "value": p99,
            "bound": P99_BOUND_MS,
            "goal": P99_GOAL_MS,
            "met": p99 < P99_BOUND_MS and clean,
            "goal_met": p99 < P99_GOAL_MS and clean,
        }
    )
    return verdicts


def stage_serving(
    cfg: Config,
    *,
    envs: dict[str, dict[str, str]],
    folder: Path,
    redis: RedisServer,
    all_cpus: Sequence[int],
    server_cpus: Sequence[int] | None,
    client_cpus: Sequence[int] | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every (server, app) combination in every layout; return cells and verdicts."""
    path = f"/fib/{cfg.fib_hit_n}"
    result: dict[str, Any] = {
        "path": path,
        "connections": cfg.connections,
        "threads": cfg.serving_threads,
        "seconds": cfg.serving_seconds,
        "repeats": cfg.serving_repeats,
        "warmup_seconds": cfg.serving_warmup_seconds,
        "workers": cfg.workers,
        "order": [cell(s, a) for s, a in ORDER],
        "layouts": {},
        "cells": {},
        "checks": {},
        "skipped": {},
    }
    if not cfg.use_wrk:
        result["skipped"]["all"] = (
            "wrk is not installed (the Python load generator has no keep-alive)"
        )
        result["targets"] = []
        return result
    folder.mkdir(parents=True, exist_ok=True)
    probe = make_server(
        "granian", "mathsite", env=envs["mathsite"], folder=folder, workers=cfg.workers,
        cpus=None, blocking_threads=cfg.granian_blocking_threads,
    )  # fmt: skip
    result["granian_settings"] = {
        k: v for k, v in probe.settings().items() if k not in ("GRANIAN_HOST", "GRANIAN_PORT")
    }
    layouts: dict[str, tuple[Sequence[int], Sequence[int], dict[str, str]]] = {
        "keep-alive": (all_cpus, all_cpus, {}),
        "close": (all_cpus, all_cpus, {"Connection": "close"}),
    }
    if server_cpus and client_cpus:
        layouts["pinned"] = (server_cpus, client_cpus, {})
    else:
        result["skipped"]["pinned"] = "not pinned (--no-pin, one core, or no taskset)"
    redis_pid = redis.pid
    try:
        for name in ("keep-alive", "pinned", "close"):
            if name not in layouts:
                continue
            web_cpus, load_cpus, headers = layouts[name]
            if redis_pid:
                set_affinity(redis_pid, load_cpus)
            result["layouts"][name] = {
                "description": LAYOUTS[name],
                "server_cpus": list(web_cpus),
                "wrk_cpus": list(load_cpus),
                "redis_cpus": list(load_cpus),
                "headers": headers,
            }
            result["cells"][name] = {}
            log(f"  layout {name}: {LAYOUTS[name]}")
            for server, app in ORDER:
                web = make_server(
                    server, app, env=envs[app], folder=folder, workers=cfg.workers,
                    cpus=web_cpus, blocking_threads=cfg.granian_blocking_threads,
                )  # fmt: skip
                key = cell(server, app)
                check, summary = measure(
                    cfg, web, app, path, load_cpus, headers, f"{name:10} {key:17}", log
                )
                result["checks"][f"{name} {key}"] = check
                result["cells"][name][key] = summary
    finally:
        if redis_pid:
            set_affinity(redis_pid, client_cpus or all_cpus)
    result["targets"] = evaluate(result)
    return result
