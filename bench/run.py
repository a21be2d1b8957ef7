"""``python -m bench.run``: the benchmark of issue 4, every stage in one run.

Starts a dedicated Redis (unix socket in a temporary folder), mathsite under
gunicorn (2 sync workers, ``DEBUG`` off, its shipped settings, SQLite in a
temporary data folder) and the old Flask service under the same gunicorn
settings against the same Redis (its own database index), measures, stops
everything (also on error or Ctrl-C), then writes ``results.json``,
``report.md`` and the PNG plots.

    python -m bench.run                 # full run with a py-spy profile of the hit path,
                                        # writes bench/results/ (about 15 minutes)
    python -m bench.run --smoke         # every stage, tiny sizes (about a minute),
                                        # writes bench/results/tmp/smoke/
    python -m bench.run --load python   # the Python load generator instead of wrk
    python -m bench.run --only fib_mod  # fib(10**18) mod 10**18, cold and cached (a minute)
    python -m bench.run --only serving  # one stage (or a comma-separated few), writes
                                        # bench/results/only-serving/ (about 7 minutes)
    python -m bench.run --against HEAD~3  # this tree's serving figures beside another
                                          # revision's, interleaved (bench.against)

On a machine with two or more cores the servers are pinned to the upper
half of the cores and the load generator, the runner and Redis to the lower
half (``--no-pin`` to leave scheduling to the kernel). A third gunicorn
serving a constant WSGI app (``bench.seed_service.floor``) shows what the
server layout allows at all. The stage ``million`` (``bench.million``) loads
a million results into a PostgreSQL database of its own and times the admin,
the list endpoints and the statistics ("not run" without PostgreSQL). The
stage ``serving`` (``bench.serving``),
starts its own servers one at a time: mathsite, the old service and the
constant app under granian (mathsite's production server) and under
gunicorn, unpinned and pinned, keep-alive and ``Connection: close``
clients. Then ``attack`` (``bench.attack``, issue 11): one client tries to
exhaust mathsite on granian while another reads cached hits. The machine
may be shared: the run first waits (``--wait-quiet``, default 300 s at most) until other processes
leave the CPUs idle, reports the CPU time others used during each stage,
and lets the hit stage's TIME_WAIT sockets expire before timing cold
requests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from launcher.serve import LOCAL_DEFAULTS
from mathsite import paths

from . import (
    attack,
    ceiling,
    fib_mod,
    load,
    machine,
    million,
    profile,
    report,
    rss,
    serving,
    stages,
)
from .servers import BASE_DIR, Granian, Gunicorn, RedisServer

RESULTS_DIR = BASE_DIR / "bench" / "results"
SMOKE_DIR = RESULTS_DIR / "tmp" / "smoke"
# Only these variables of the caller's environment reach the servers, so a
# setting exported in the shell cannot change what is measured.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONHASHSEED")
# Every stage, in the order a run takes them; ``--only`` picks some.
STAGES = (
    "inprocess", "hits", "wsgi_cost", "profile", "cold", "big_hit", "fib_mod", "burst", "serving",
    "rss", "million", "attack", "ceiling",
)  # fmt: skip
# The stages that share the three gunicorns started at the beginning of a run.
SHARED_SERVER_STAGES = set(STAGES) - {"serving", "rss", "million", "attack", "ceiling"}
# The Redis database index of the million stage (the others use 1-3).
MILLION_REDIS_DB = 5
# The attack stage's own database index on the run's Redis.
ATTACK_DB = 4


def cpu_layout(pin: bool) -> tuple[list[int] | None, list[int] | None]:
    """Return (client cpus, server cpus): lower and upper half of the usable cores."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2 or not shutil.which("taskset"):
        return None, None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or the platform's guess)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def source_revision(dirty_mark: str = " +uncommitted changes") -> str:
    """Return the git commit of the code measured, with ``dirty_mark`` if the tree differs.

    Uncommitted changes under ``bench/results`` (a run's own output) do not count.
    """
    try:
        commit = subprocess.run(
            ["git", "-C", str(BASE_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(BASE_DIR), "status", "--porcelain", "--untracked-files=no",
             "--", ".", ":(exclude)bench/results"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (dirty_mark if status else "")


def base_env() -> dict[str, str]:
    """Return the few variables of the caller's environment that servers may see."""
    return {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}


def mathsite_env(
    data: Path, redis_url: str, *, local_defaults: Mapping[str, str] = LOCAL_DEFAULTS
) -> dict[str, str]:
    """Return mathsite's environment: shipped defaults, local plain-HTTP settings, bench Redis.

    ``local_defaults`` are ``make run``'s plain-HTTP settings (``launcher.serve``);
    another checkout passes its own.
    """
    env = base_env()
    env.update(local_defaults)
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "MATHSITE_DATA_DIR": str(data),
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "mathsite-bench",
            "DJANGO_SETTINGS_MODULE": "mathsite.settings",
        }
    )
    return env


def prepare_mathsite(env: dict[str, str], log: Path, *, base_dir: Path = BASE_DIR) -> None:
    """Apply migrations and collect static files, as ``make run`` does, with checkout ``base_dir``.

    Raise RuntimeError (with the end of the log) if a command fails.
    """
    Path(env["MATHSITE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, str(base_dir / "manage.py")]
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"]):
        with log.open("ab") as handle:
            done = subprocess.run(
                [*manage, *args], env=env, cwd=base_dir, stdout=handle, stderr=subprocess.STDOUT,
                check=False, timeout=300,
            )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{log.read_text()[-3000:]}")


def run_stage(
    results: dict[str, Any], name: str, function: Callable[[], Any], log: Callable[[str], None]
) -> None:
    """Run one stage, storing its result (or its error, so the others still run)."""
    log(f"== {name}")
    before = machine.snapshot()
    try:
        results[name] = function()
    except Exception as exc:  # one stage failing must not lose the others' figures
        results.setdefault("errors", {})[name] = "".join(traceback.format_exception(exc))
        log(f"!! {name} failed: {exc!r}")
    after = machine.snapshot()
    wall = after.wall - before.wall
    foreign = machine.foreign_cpu_seconds(before, after)
    results.setdefault("stages", {})[name] = {
        "wall_s": round(wall, 1),
        "foreign_cpu_s": round(foreign, 2),
        # Share of the machine's CPU time that went to processes not ours.
        "foreign_fraction": round(foreign / (wall * (os.cpu_count() or 1)), 3) if wall else 0.0,
    }


def benchmark(
    config: stages.Config,
    *,
    pin: bool,
    do_profile: bool,
    keep: bool,
    wait_quiet: float,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Start the servers, run every stage (or those in ``only``), stop the servers."""
    selected = set(only) if only else set(STAGES)
    all_cpus = sorted(os.sched_getaffinity(0))  # before the runner is pinned below
    client_cpus, server_cpus = cpu_layout(pin)

    def log(text: str) -> None:
        print(text, flush=True)

    busy = machine.wait_until_quiet(limit=wait_quiet, log=log) if wait_quiet else None
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)  # the runner is a load generator too

    results: dict[str, Any] = {
        "config": asdict(config),
        "meta": {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "revision": source_revision(),
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "load_tool": "wrk"
            if config.use_wrk
            else ("python" if load.have_wrk() else "python (wrk not installed)"),
            "client_cpus": client_cpus or "not pinned",
            "server_cpus": server_cpus or "not pinned",
            "loadavg_start": os.getloadavg(),
            "foreign_fraction_before_start": busy,
        },
    }
    folder = Path(tempfile.mkdtemp(prefix="mathsite-bench-"))
    log(f"bench: temporary folder {folder}")
    ctx = stages.Context(config=config, client_cpus=client_cpus, log=log)
    try:
        with contextlib.ExitStack() as stack:
            ctx.redis = stack.enter_context(RedisServer(folder / "redis", cpus=client_cpus))
            env = mathsite_env(folder / "data", ctx.redis.url(ctx.mathsite_db))
            prepare_mathsite(env, folder / "mathsite.log")
            old_env = base_env() | {
                "SEED_REDIS_URL": ctx.redis.url(ctx.old_db),
                "SEED_KEY_PREFIX": ctx.old_prefix,
            }
            if selected & SHARED_SERVER_STAGES:
                _shared_server_stages(
                    ctx, stack, results, selected, env=env, old_env=old_env, folder=folder,
                    server_cpus=server_cpus, do_profile=do_profile,
                )  # fmt: skip
            if "serving" in selected:
                assert ctx.redis is not None
                envs = {"mathsite": env, "old": old_env, "floor": base_env()}

                def serving_stage() -> dict[str, Any]:
                    return serving.stage_serving(
                        config, envs=envs, folder=folder / "serving", redis=ctx.redis,
                        all_cpus=all_cpus, server_cpus=server_cpus, client_cpus=client_cpus,
                        log=log,
                    )  # fmt: skip

                run_stage(results, "serving", serving_stage, log)
            if "rss" in selected:
                run_stage(
                    results,
                    "rss",
                    lambda: rss.stage_rss(config, env=env, folder=folder / "rss", log=log),
                    log,
                )
            if "million" in selected:
                assert ctx.redis is not None

                def million_stage() -> dict[str, Any]:
                    return million.stage_million(
                        rows=config.million_rows, redis_entries=config.million_redis_entries,
                        repeats=config.million_repeats, redis_url=ctx.redis.url(MILLION_REDIS_DB),
                        env=env, folder=folder / "million", log=log,
                    )  # fmt: skip

                run_stage(results, "million", million_stage, log)
            if "attack" in selected:
                assert ctx.redis is not None
                attack_data = folder / "attack-data"
                attack_env = mathsite_env(attack_data, ctx.redis.url(ATTACK_DB))
                prepare_mathsite(attack_env, folder / "attack-prepare.log")

                def attack_stage() -> dict[str, Any]:
                    return attack.stage_attack(
                        config, env=attack_env, database=paths.sqlite_file(attack_data),
                        folder=folder / "attack", redis=ctx.redis, log=log,
                    )  # fmt: skip

                run_stage(results, "attack", attack_stage, log)
            if "ceiling" in selected:

                def ceiling_stage() -> dict[str, Any]:
                    return ceiling.stage_ceiling(
                        config, env=env, floor_env=base_env(), folder=folder / "ceiling",
                        cpus=all_cpus, log=log,
                    )  # fmt: skip

                run_stage(results, "ceiling", ceiling_stage, log)
    finally:
        if keep:
            log(f"bench: kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    results["meta"]["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    results["meta"]["loadavg_end"] = os.getloadavg()
    return results


def _shared_server_stages(
    ctx: stages.Context,
    stack: contextlib.ExitStack,
    results: dict[str, Any],
    selected: set[str],
    *,
    env: dict[str, str],
    old_env: dict[str, str],
    folder: Path,
    server_cpus: list[int] | None,
    do_profile: bool,
) -> None:
    """Start the three gunicorns, run the selected stages that share them, stop them."""
    config, log = ctx.config, ctx.log

    def want(name: str) -> bool:
        return name in selected

    ctx.mathsite = stack.enter_context(
        Gunicorn(
            "mathsite", "mathsite.wsgi:application", env=env,
            log=folder / "mathsite.log", workers=config.workers, cpus=server_cpus,
        )
    )  # fmt: skip
    ctx.old = stack.enter_context(
        Gunicorn(
            "old service", "bench.seed_service.app:app", env=old_env,
            log=folder / "old.log", workers=config.workers, cpus=server_cpus,
        )
    )  # fmt: skip
    ctx.floor = stack.enter_context(
        Gunicorn(
            "floor", "bench.seed_service.floor:app", env=base_env(),
            log=folder / "floor.log", workers=config.workers, cpus=server_cpus,
        )
    )  # fmt: skip
    if want("inprocess"):
        run_stage(results, "inprocess", lambda: stages.stage_inprocess(ctx), log)
    if want("hits"):
        run_stage(results, "hits", lambda: stages.stage_hits(ctx), log)
    ctx.floor.stop()
    envs = {"mathsite": env, "old": old_env}
    if want("wsgi_cost"):
        run_stage(
            results,
            "wsgi_cost",
            lambda: stages.stage_wsgi_cost(ctx, envs, folder / "wsgi_cost.log", server_cpus),
            log,
        )
    if do_profile and want("profile"):
        run_stage(results, "profile", lambda: profile.profile_hits(ctx, folder), log)
    if want("cold"):
        if config.settle_seconds:
            left, waited = machine.wait_for_time_wait(limit=config.settle_seconds)
            results["meta"]["time_wait_before_cold"] = {"left": left, "waited_s": waited}
            log(f"bench: waited {waited:.0f} s for TIME_WAIT sockets ({left} left)")
        run_stage(results, "cold", lambda: stages.stage_cold(ctx), log)
    # The old service may still be inside a timed-out pi loop: stop it now
    # so it does not take CPU from the stages that follow.
    ctx.old.quick_stop()
    if want("big_hit"):
        run_stage(results, "big_hit", lambda: stages.stage_big_hit(ctx), log)
    if want("fib_mod"):
        run_stage(results, "fib_mod", lambda: fib_mod.stage_fib_mod(ctx), log)
    if want("burst"):

        def granian() -> Granian:
            return Granian(
                "mathsite on granian (burst)", "mathsite.wsgi:application", env=env,
                log=folder / "burst-granian.log", workers=config.workers, cpus=server_cpus,
            )  # fmt: skip

        run_stage(results, "burst", lambda: stages.stage_burst(ctx, granian), log)
    # Only one server serves during the stages that follow (serving).
    ctx.mathsite.stop()


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    """Write results.json, report.md and the plots into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "report.md"]
    for kind, text in results.get("profile", {}).pop("raw", {}).items():
        path = out / f"profile-{kind}.collapsed.txt"
        path.write_text(text)
        paths.append(path)
    paths[0].write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths += report.render_plots(results, out)
    paths[1].write_text(report.render_markdown(results))
    return paths


def _stage_list(text: str) -> set[str]:
    """Parse ``--only``'s comma-separated stage names."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(STAGES)
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"stages: {', '.join(STAGES)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a stage failed (the report is written regardless)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, every stage")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy the hit path (default: on, off with --smoke)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="hit load generator (auto: wrk when installed, else the Python one)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait at most this long for other processes to leave the CPUs idle "
        "(default 300, 0 with --smoke)",
    )
    parser.add_argument(
        "--only",
        type=_stage_list,
        default=None,
        metavar="STAGE[,STAGE]",
        help=f"run only these stages (of {', '.join(STAGES)}), e.g. --only serving",
    )
    parser.add_argument(
        "--granian-blocking-threads",
        type=int,
        default=None,
        metavar="N",
        help="blocking threads per granian worker in the serving stage "
        "(default: mathsite's own default)",
    )
    parser.add_argument(
        "--against",
        default=None,
        metavar="REV",
        help="serve this tree and git revision REV on granian, interleaved, and compare their "
        "cached-hit throughput and p99 (bench.against; writes bench/results/against-<rev>/)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help="rounds of --against (default 3, 1 with --smoke)",
    )
    args = parser.parse_args(argv)
    if args.against is None and args.rounds is not None:
        parser.error("--rounds goes with --against")
    if args.against is not None and args.only:
        parser.error("--against measures the serving figures only; it takes no --only")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    # SIGTERM unwinds like Ctrl-C, so every server started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    given = sys.argv[1:] if argv is None else argv
    wait_quiet = args.wait_quiet if args.wait_quiet is not None else (0 if args.smoke else 300)
    if args.against is not None:
        from . import against  # here, not at the top: bench.against builds on this module

        return against.main(
            rev=args.against, rounds=args.rounds, smoke=args.smoke, out=args.out,
            wait_quiet=wait_quiet, keep=args.keep, blocking_threads=args.granian_blocking_threads,
            command=" ".join(["python -m bench.run", *given]),
        )  # fmt: skip
    config = stages.Config.smoke_config() if args.smoke else stages.Config()
    config.load_tool = args.load
    config.granian_blocking_threads = args.granian_blocking_threads
    out = args.out or (SMOKE_DIR if args.smoke else RESULTS_DIR)
    if args.only and not args.out:  # a partial run never replaces the full run's report
        out = out / ("only-" + "-".join(s for s in STAGES if s in args.only))
    started = time.monotonic()
    do_profile = args.profile if args.profile is not None else not args.smoke
    results = benchmark(
        config,
        pin=not args.no_pin,
        do_profile=do_profile,
        keep=args.keep,
        wait_quiet=wait_quiet,
        only=args.only,
    )
    results["meta"].update(
        {
            "command": " ".join(["python -m bench.run", *given]),
            "profiled": do_profile,
            "mode": "smoke" if args.smoke else "full",
            "stages_selected": [s for s in STAGES if s in (args.only or STAGES)],
            "total_s": round(time.monotonic() - started, 1),
        }
    )
    results["notes"] = report.notes_for(results)
    paths = write_outputs(results, out)
    for verdict in report.evaluate(results):
        print(f"{'MET    ' if verdict['met'] else 'NOT MET'} {verdict['target']}: "
              f"{verdict['figure']}")  # fmt: skip
    for verdict in results.get("attack", {}).get("targets", []):
        print(f"{'MET    ' if verdict['met'] else 'NOT MET'} {verdict['target']}: "
              f"{verdict['figure']}")  # fmt: skip
    for verdict in results.get("serving", {}).get("targets", []):
        goal = "goal met" if verdict["goal_met"] else "goal not met"
        print(f"{'MET    ' if verdict['met'] else 'NOT MET'} {verdict['target']}: "
              f"{verdict['figure']} ({goal})")  # fmt: skip
    print(f"bench: {results['meta']['total_s']} s; wrote " + ", ".join(str(p) for p in paths))
    if results.get("errors"):
        for name, text in results["errors"].items():
            print(f"bench: stage {name} failed:\n{text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
