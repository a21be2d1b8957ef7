"""Microseconds inside the WSGI call per cached hit, on granian under load, against in process.

``python -m bench.call_time`` (about a minute): serves mathsite, the
constant app sending mathsite's reply and the constant app, each wrapped by
``bench.seed_service.timed``, with the shipped layout and one blocking
thread per worker (no other thread of the worker waits for the GIL, so a
call's time is its own), loads each with wrk in alternating rounds, and
prints JSON: per application, the microseconds per call over all workers.
Beside it, ``python -m bench.wsgi_cost mathsite /fib/90`` times the same
call in a loop in one process, with and without ``--pollute``.

Why both: in a loop, everything a kept hit touches stays in the CPU's
caches; in a server, the HTTP thread, the other worker and the load
generator run on the same cores between two hits and evict it, so each hit
reads its objects from memory again. The call's time in the server is what
a hit costs a worker.

The wrapper has no ``kept_reply``, so mathsite's kept hits go through its
``__call__`` here; the project's server sends them from ``kept_reply``
without the WSGI call (``launcher/shared_listener/kept_hits.py``), so
these figures are the call as any WSGI server makes it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import load, serving
from .ceiling import APPS, capture
from .run import base_env, mathsite_env, prepare_mathsite
from .servers import Granian, RedisServer
from .stats import median

PATH = "/fib/90"
# The workers write their totals every 0.5 s (``seed_service.timed``).
WRITE_LAG = 1.2


def read_totals(folder: Path) -> tuple[int, float]:
    """Return (calls, seconds) summed over the workers' files in ``folder``."""
    calls, seconds = 0, 0.0
    for path in folder.glob("*.txt"):
        text = path.read_text().split()
        if len(text) == 2:
            calls += int(text[0])
            seconds += float(text[1])
    return calls, seconds


def measure(rounds: int, seconds: float, workers: int, folder: Path) -> dict[str, Any]:
    """Serve the three applications timed; return microseconds per call and req/s medians."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer(folder / "redis", cpus=None))
        envs = {"mathsite": mathsite_env(folder / "data", redis.url(0))}
        prepare_mathsite(envs["mathsite"], folder / "prepare.log")
        replay_file = folder / "replay.json"
        envs["replay"] = base_env() | {"REPLAY_RESPONSE_FILE": str(replay_file)}
        envs["floor"] = base_env()
        webs: dict[str, tuple[Callable[[float], load.LoadResult], Path]] = {}
        for app in APPS:  # mathsite first: the replay app sends its captured reply
            timed = folder / f"timed-{app}"
            timed.mkdir()
            env = envs[app] | {"TIMED_APP": APPS[app], "TIMED_DIR": str(timed)}
            web = stack.enter_context(
                Granian(
                    f"{app} timed", "bench.seed_service.timed:app", env=env,
                    log=folder / f"{app}.log", workers=workers, blocking_threads=1,
                    metrics_dir=folder / f"metrics-{app}",
                )
            )  # fmt: skip

            def run(length: float, web: Granian = web) -> load.LoadResult:
                return load.run_wrk(web.base + PATH, connections=32, seconds=length, threads=2)

            serving.warm(web, app, PATH, requests=200, seconds=1.0, load_run=run)
            if app == "mathsite":
                capture(web.port, PATH, replay_file)
            webs[app] = (run, timed)
        figures: dict[str, dict[str, list[float]]] = {app: {"us": [], "rps": []} for app in webs}
        for number in range(rounds):
            for app in webs if number % 2 == 0 else reversed(list(webs)):
                run, timed = webs[app]
                before = read_totals(timed)
                result = run(seconds)
                time.sleep(WRITE_LAG)  # every worker has written what the round added
                after = read_totals(timed)
                calls = after[0] - before[0]
                figures[app]["us"].append((after[1] - before[1]) / max(calls, 1) * 1e6)
                figures[app]["rps"].append(result.requests_per_second)
    return {
        app: {
            "us_per_call": round(median(values["us"]), 3),
            "requests_per_second": round(median(values["rps"])),
            "rounds_us": [round(us, 3) for us in values["us"]],
        }
        for app, values in figures.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Print the JSON figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.call_time", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mathsite-call-time-") as folder:
        print(json.dumps(measure(args.rounds, args.seconds, args.workers, Path(folder)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
