"""``python -m bench.run --against REV``: this tree's serving figures beside another revision's.

Why: a change to the hot path moves cached-hit throughput by a few per
cent, while two runs of the benchmark minutes or sessions apart differ by
more than that (the machine, its other load, its clock). So both
revisions are measured in one run, interleaved, and compared round by
round instead of against a figure from another day.

How: REV is exported with ``git archive`` into a temporary folder (removed
afterwards, also on error, Ctrl-C or SIGTERM), byte-compiled like a
checkout that has run before, and served from there with the same Python
(``sys.executable``), so its own code runs, with its own
``launcher.server`` granian settings and its own ``make run`` plain-HTTP
defaults (``launcher.serve.LOCAL_DEFAULTS``), asked of its checkout in a
subprocess. Side A is this tree (its working files, uncommitted changes
included), side B is REV; each has its own data folder (migrated and with
static files collected, as ``make run`` does) and its own database index
on one Redis the run starts. A round starts each side on granian (2
workers, unpinned: the serving stage's keep-alive layout), makes
``/fib/90`` a warm cached hit, runs wrk once (``bench.serving.measure``:
``wrk -t2 -c32 -d6s --latency``) and stops it; the order alternates (A B,
then B A) to cancel drift, and the constant WSGI app on this tree's
granian settings follows as the ceiling. The result per side is the median
over rounds of requests/s and of p99, and A/B of the medians and of each
round.

    python -m bench.run --against HEAD~3            # 3 rounds, bench/results/against-<rev>/
    python -m bench.run --against main --rounds 5
    python -m bench.run --against HEAD --smoke      # 1 round of 1 s runs, bench/results/tmp/

A revision that cannot be served this way (no ``launcher.server``, a
failing migration, no cached hit at ``/fib/90``) stops the run with a
message that says which.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from launcher import server as mathsite_server

from . import load, machine, report, run, serving
from .servers import BASE_DIR, Granian, Gunicorn, Launcher, RedisServer
from .stages import Config
from .stats import median

DEFAULT_ROUNDS = 3
# The sides in the order of a round that starts with A; "floor" always ends a round.
SIDES = ("A", "B")
FLOOR = "floor"
# Each side's database index on the run's Redis.
REDIS_DB = {"A": 1, "B": 2}
APP = "mathsite"

# Run in the other checkout (cwd), so ``import mathsite`` is its own: answers
# with where mathsite came from, make run's local defaults and, for the
# environment and application given on stdin, its launcher's server settings and
# command. Any failure is reported as text, never raised.
_PROBE = """
import importlib.util, json, sys
request = json.load(sys.stdin)
try:
    import mathsite
    try:  # the launcher's package since issue 19; mathsite's own before
        from launcher import serve, server
    except ImportError:
        from mathsite import serve, server
    answer = {
        "mathsite": mathsite.__file__,
        "wsgi": importlib.util.find_spec("mathsite.wsgi") is not None,
        "local_defaults": dict(serve.LOCAL_DEFAULTS),
        "environment": server.server_environment(dict(request["env"])),
        "command": server.command(request["app"]),
    }
except Exception as exc:
    answer = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(answer))
"""


class AgainstError(RuntimeError):
    """The other revision cannot be measured: unknown to git, or it cannot serve this way."""


def _git(*args: str) -> str:
    """Return git's output for ``args`` in this checkout; raise AgainstError if git fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(BASE_DIR), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise AgainstError(f"git could not run: {exc}") from exc
    if done.returncode:
        raise AgainstError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve_revision(rev: str) -> tuple[str, str]:
    """Return (full commit, short commit) of ``rev``; raise AgainstError if git does not know it."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except AgainstError:
        raise AgainstError(f"--against {rev}: not a commit of this repository") from None
    return commit, _git("rev-parse", "--short", commit)


def round_orders(rounds: int) -> list[tuple[str, ...]]:
    """Return the order of each round: A B floor, then B A floor, alternating.

    Raise ValueError if ``rounds`` is below 1.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    return [(*(SIDES if r % 2 == 0 else SIDES[::-1]), FLOOR) for r in range(rounds)]


@contextlib.contextmanager
def exported(commit: str, folder: Path) -> Iterator[Path]:
    """Provide ``commit``'s files in ``folder`` (``git archive``), removed afterwards."""
    folder.mkdir(parents=True)
    try:
        archive = subprocess.Popen(
            ["git", "-C", str(BASE_DIR), "archive", "--format=tar", commit],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert archive.stdout is not None
        untar = subprocess.run(
            ["tar", "-x", "-C", str(folder)], stdin=archive.stdout, capture_output=True,
            check=False, timeout=300,
        )  # fmt: skip
        archive.stdout.close()
        _out, errors = archive.communicate(timeout=60)
        if archive.returncode or untar.returncode:
            raise AgainstError(
                f"could not export {commit}: {errors.decode(errors='replace').strip()} "
                f"{untar.stderr.decode(errors='replace').strip()}"
            )
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def byte_compile(checkout: Path) -> list[str]:
    """Byte-compile the top-level packages of ``checkout``; return their names.

    A fresh export has no ``__pycache__``: its granian workers would compile
    every module as they start and come up later than the other side's,
    which changes how the first connections spread over the workers.
    """
    packages = sorted(p.parent.name for p in checkout.glob("*/__init__.py"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *packages],
        cwd=checkout, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    return packages


class CheckoutLauncher:
    """Another checkout's ``launcher.server`` (a ``servers.Launcher``), asked in a subprocess.

    Every answer comes from a fresh ``python -c`` (the same interpreter as
    the run) whose working folder is the checkout, so the code that answers
    is the checkout's, as the granian it configures will be.
    """

    def __init__(self, checkout: Path, *, env: dict[str, str], label: str) -> None:
        self.checkout = checkout
        self.env = env
        self.label = label

    def ask(self, env: dict[str, str], app: str = serving.APPS[APP]) -> dict[str, Any]:
        """Return the checkout's answer for ``env`` and ``app``; raise AgainstError if it has none.

        The answer holds ``mathsite`` (the file imported), ``wsgi`` (whether
        ``mathsite.wsgi`` exists), ``local_defaults``, ``environment`` and ``command``.
        """
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], input=json.dumps({"env": env, "app": app}),
            capture_output=True, text=True, cwd=self.checkout, env=self.env, timeout=60,
            check=False,
        )  # fmt: skip
        try:
            answer = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            answer = {"error": (done.stderr or done.stdout).strip()[-2000:] or "no answer"}
        if "error" in answer:
            raise AgainstError(
                f"{self.label} cannot be served the way this bench serves (granian through "
                f"launcher.server, make run's launcher.serve defaults): {answer['error']}"
            )
        if not answer["wsgi"]:
            raise AgainstError(f"{self.label} has no mathsite.wsgi to serve")
        mathsite = Path(answer["mathsite"]).resolve()
        if not mathsite.is_relative_to(self.checkout.resolve()):
            raise AgainstError(
                f"{self.label}'s checkout imports mathsite from {mathsite}, not from its own "
                "folder: the figures would not be its code's"
            )
        return answer

    def server_environment(self, env: dict[str, str]) -> dict[str, str]:
        """Return ``env`` with the checkout's granian defaults filled in."""
        return self.ask(env)["environment"]

    def command(self, application: str) -> list[str]:
        """Return the checkout's command line that starts granian on ``application``."""
        return self.ask({}, application)["command"]


@dataclass
class Side:
    """One thing served in a round: this tree (A), the other revision (B) or the constant app."""

    key: str
    label: str
    app: str  # a key of bench.serving.APPS
    env: dict[str, str]
    checkout: Path
    launcher: Launcher

    def server(self, config: Config, folder: Path) -> Granian | Gunicorn:
        """Return this side's (not yet started) granian, logging into ``folder``/``key``."""
        where = folder / self.key
        where.mkdir(parents=True, exist_ok=True)
        return serving.make_server(
            "granian", self.app, env=self.env, folder=where, workers=config.workers, cpus=None,
            blocking_threads=config.granian_blocking_threads, base_dir=self.checkout,
            launcher=self.launcher,
        )  # fmt: skip


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom and not math.isnan(bottom) else math.nan


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return per side the medians over ``rounds`` and A/B of the medians and of each round.

    Each round is ``{"cells": {"A": cell, "B": cell, "floor": cell}}`` with
    a cell's ``requests_per_second``, ``p50_ms``, ``p99_ms``, ``errors`` and
    ``non_2xx``. A throughput ratio above 1 and a p99 ratio below 1 mean A
    is the faster.
    """
    sides: dict[str, dict[str, Any]] = {}
    for key in (*SIDES, FLOOR):
        cells = [r["cells"][key] for r in rounds if key in r["cells"]]
        sides[key] = {
            "requests_per_second": median([c["requests_per_second"] for c in cells]),
            "p50_ms": median([c["p50_ms"] for c in cells]),
            "p99_ms": median([c["p99_ms"] for c in cells]),
            "errors": sum(c["errors"] for c in cells),
            "non_2xx": sum(c["non_2xx"] for c in cells),
            "rounds": len(cells),
        }
    a, b, floor = sides["A"], sides["B"], sides[FLOOR]
    both = [r["cells"] for r in rounds if all(k in r["cells"] for k in SIDES)]
    return {
        "sides": sides,
        "throughput_ratio": _ratio(a["requests_per_second"], b["requests_per_second"]),
        "p99_ratio": _ratio(a["p99_ms"], b["p99_ms"]),
        "round_throughput_ratios": [
            _ratio(c["A"]["requests_per_second"], c["B"]["requests_per_second"]) for c in both
        ],
        "round_p99_ratios": [_ratio(c["A"]["p99_ms"], c["B"]["p99_ms"]) for c in both],
        "of_floor": {
            key: _ratio(sides[key]["requests_per_second"], floor["requests_per_second"])
            for key in SIDES
        },
    }


def output_folder(short: str, *, smoke: bool) -> Path:
    """Return the default output folder: ``against-<short>`` in the results (or tmp) folder."""
    return (run.RESULTS_DIR / "tmp" if smoke else run.RESULTS_DIR) / f"against-{short}"


def _measure_side(
    side: Side,
    config: Config,
    *,
    folder: Path,
    all_cpus: list[int],
    label: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Serve ``side`` on granian, warm it, run wrk, stop it; return its cell (raise if no hit)."""
    web = side.server(config, folder)
    before = machine.snapshot()
    check, cell = serving.measure(
        config, web, side.app, f"/fib/{config.fib_hit_n}", all_cpus, {}, label, log
    )
    after = machine.snapshot()
    if check["status"] != 200 or check["cached"] is not True:
        raise AgainstError(
            f"{side.label} did not answer /fib/{config.fib_hit_n} as a cached hit after the "
            f"warm-up (status {check['status']}, body {check['body'][:80]!r}): see {web.log}"
        )
    wall = after.wall - before.wall
    foreign = machine.foreign_cpu_seconds(before, after)
    cell["check"] = check
    cell["foreign_fraction"] = round(foreign / (wall * len(all_cpus)), 3) if wall else 0.0
    return cell


def benchmark_against(
    config: Config,
    *,
    rev: str,
    rounds: int,
    wait_quiet: float,
    keep: bool,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure this tree against ``rev`` in ``rounds`` interleaved rounds; return the results.

    Raise AgainstError if ``rev`` is unknown or cannot be served this way,
    or if wrk is missing.
    """
    if not load.have_wrk():  # the Python load generator keeps no connection alive
        raise AgainstError("--against needs wrk (apt-get install -y wrk)")
    commit, short = resolve_revision(rev)
    orders = round_orders(rounds)
    this_tree = run.source_revision(dirty_mark="+dirty")
    other = short if rev == short else f"{rev} ({short})"
    all_cpus = sorted(os.sched_getaffinity(0))
    busy = machine.wait_until_quiet(limit=wait_quiet, log=log) if wait_quiet else None
    path = f"/fib/{config.fib_hit_n}"
    results: dict[str, Any] = {
        "config": asdict(config),
        "meta": {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "revision": this_tree,
            "cpu_count": os.cpu_count(),
            "cpu_model": run.cpu_model(),
            "python": platform.python_version(),
            "load_tool": "wrk",
            "loadavg_start": os.getloadavg(),
            "foreign_fraction_before_start": busy,
        },
        "against": {
            "rev": rev,
            "commit": commit,
            "short": short,
            "labels": {"A": this_tree, "B": other, FLOOR: serving.APP_LABELS[FLOOR]},
            "path": path,
            "connections": config.connections,
            "threads": config.serving_threads,
            "seconds": config.serving_seconds,
            "warmup_seconds": config.serving_warmup_seconds,
            "workers": config.workers,
            "orders": [list(order) for order in orders],
            "rounds": [],
        },
    }
    against = results["against"]
    folder = Path(tempfile.mkdtemp(prefix="mathsite-bench-against-"))
    log(f"bench: temporary folder {folder}; A = this tree ({this_tree}), B = {other}")
    try:
        with (
            exported(commit, folder / "checkout") as checkout,
            RedisServer(folder / "redis") as redis,
        ):
            launcher = CheckoutLauncher(checkout, env=run.base_env(), label=f"--against {other}")
            probe = launcher.ask(run.base_env())
            env_a = run.mathsite_env(folder / "data-A", redis.url(REDIS_DB["A"]))
            env_b = run.mathsite_env(
                folder / "data-B", redis.url(REDIS_DB["B"]), local_defaults=probe["local_defaults"]
            )
            run.prepare_mathsite(env_a, folder / "prepare-A.log")
            for where in (BASE_DIR, checkout):
                byte_compile(where)
            try:
                run.prepare_mathsite(env_b, folder / "prepare-B.log", base_dir=checkout)
            except RuntimeError as exc:
                raise AgainstError(f"--against {other}: {exc}") from exc
            sides = {
                "A": Side("A", this_tree, APP, env_a, BASE_DIR, mathsite_server),
                "B": Side("B", other, APP, env_b, checkout, launcher),
                FLOOR: Side(FLOOR, "constant WSGI app", FLOOR, run.base_env(), BASE_DIR,
                            mathsite_server),
            }  # fmt: skip
            against["granian_settings"] = {
                key: {
                    k: v
                    for k, v in side.server(config, folder).settings().items()
                    if k not in ("GRANIAN_HOST", "GRANIAN_PORT")
                }
                for key, side in sides.items()
            }
            for number, order in enumerate(orders, 1):
                log(f"  round {number}/{rounds}: {' '.join(order)}")
                cells = {}
                for key in order:
                    cells[key] = _measure_side(
                        sides[key], config, folder=folder, all_cpus=all_cpus,
                        label=f"round {number} {key:5}", log=log,
                    )  # fmt: skip
                against["rounds"].append({"round": number, "order": list(order), "cells": cells})
    finally:
        if keep:
            log(f"bench: kept {folder} (the checkout of {short} is removed)")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    against["summary"] = summarize(against["rounds"])
    results["meta"]["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    results["meta"]["loadavg_end"] = os.getloadavg()
    return results


def main(
    *,
    rev: str,
    rounds: int | None,
    smoke: bool,
    out: Path | None,
    wait_quiet: float,
    keep: bool,
    blocking_threads: int | None,
    command: str,
) -> int:
    """Run ``--against``, write results.json and report.md; return 0, or 2 with a message."""
    started = time.monotonic()
    config = Config.smoke_config() if smoke else Config(serving_repeats=1)
    config.granian_blocking_threads = blocking_threads
    count = rounds if rounds is not None else (1 if smoke else DEFAULT_ROUNDS)
    try:
        results = benchmark_against(
            config, rev=rev, rounds=count, wait_quiet=wait_quiet, keep=keep,
            log=lambda text: print(text, flush=True),
        )  # fmt: skip
    except AgainstError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    results["meta"].update(
        {
            "command": command,
            "mode": "smoke" if smoke else "full",
            "total_s": round(time.monotonic() - started, 1),
        }
    )
    folder = out or output_folder(results["against"]["short"], smoke=smoke)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (folder / "report.md").write_text(report.render_against_markdown(results))
    summary = results["against"]["summary"]
    labels = results["against"]["labels"]
    for key in (*SIDES, FLOOR):
        side = summary["sides"][key]
        print(f"{key:5} {labels[key]:24} {side['requests_per_second']:9,.0f} req/s  "
              f"p99 {side['p99_ms']:6.2f} ms")  # fmt: skip
    print(f"A/B throughput {summary['throughput_ratio']:.3f}x, p99 {summary['p99_ratio']:.3f}x")
    print(f"bench: {results['meta']['total_s']} s; wrote {folder / 'results.json'}, "
          f"{folder / 'report.md'}")  # fmt: skip
    return 0
