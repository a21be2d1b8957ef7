"""The ``rss`` stage: worker memory over a million mixed requests on granian.

A leak shows only over many requests, so this stage sends at least
``Config.rss_requests`` (a million in the full run) to mathsite on granian
(its production settings, 2 workers, throttles off) and reads each
worker's resident set size (``VmRSS`` in ``/proc/<pid>/status``) after
every segment of load. The mix, per 100 requests (``MIX``): 86 cached hits
over a few URLs and both route styles, 10 conditional requests answered
304, 2 list pages (``/api/pi/``, ``/api/fib/``) and 2 misses, each a new
pi(n) that is computed, stored in Redis and logged (so the result log and
the in-process tier grow during the run, as they do in service).

wrk drives it with a Lua script (``MIX_SCRIPT``) in segments of
``rss_segment_seconds`` until the total reaches the target. The bound
(issue 10): after the first tenth of the requests, no worker's RSS grows
by 10 % or more by the end beyond what its in-process tier grew, and no
request fails (socket errors, or a status other than 2xx/3xx). A worker
that was replaced during the run (another pid) fails the stage too: its
memory was not followed.

The tier is a cache that fills up to its budget (``LOCAL_CACHE_MAX_BYTES``)
by design, and the misses of the mix fill it all run long: each
checkpoint also reads every worker's ``mathsite_local_cache_bytes`` from
``/metrics`` (what the budget counts, at least the bytes the entries hold:
``tests/cache/test_store.py``), and the bound is taken on the growth
beyond it, which is what a leak would be. The plain RSS growth is
reported beside it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from . import client, load
from .servers import Granian
from .stages import Config

# What one thread of wrk sends, per 100 requests.
MIX = {"hit": 86, "not_modified": 10, "list": 2, "miss": 2}
HITS = ("/fib/90", "/api/fib/1000/", "/api/pi/1000/", "/api/pi/77/?digits=50", "/pi?n=500")
NOT_MODIFIED = ("/api/fib/1000/", 'W/"fib-1000-v1"')
LISTS = ("/api/pi/", "/api/fib/")
GROWTH_BOUND = 0.10
TIER_GAUGE = "mathsite_local_cache_bytes"
# Misses are pi(n) for n from here up: far from the n any other stage uses.
MISS_BASE = 10**12

MIX_SCRIPT = """
-- mathsite rss stage: a fixed mix of hits, 304s, list pages and misses.
local hits = {%(hits)s}
local lists = {%(lists)s}
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  segment = tonumber(args[1])
end
function request()
  counter = counter + 1
  local slot = counter %% 100
  if slot < %(miss)d then
    local n = %(base)d + segment * 100000000 + tid * 10000000 + counter
    return wrk.format("GET", "/api/pi/" .. n .. "/")
  elseif slot < %(miss)d + %(list)d then
    return wrk.format("GET", lists[counter %% #lists + 1])
  elseif slot < %(miss)d + %(list)d + %(not_modified)d then
    return wrk.format("GET", "%(nm_path)s", {["If-None-Match"] = '%(nm_etag)s'})
  end
  return wrk.format("GET", hits[counter %% #hits + 1])
end
"""


def mix_script() -> str:
    """Return the wrk Lua script that sends ``MIX``."""

    def lua_list(items: tuple[str, ...]) -> str:
        return ", ".join(f'"{item}"' for item in items)

    return MIX_SCRIPT % {
        "hits": lua_list(HITS),
        "lists": lua_list(LISTS),
        "miss": MIX["miss"],
        "list": MIX["list"],
        "not_modified": MIX["not_modified"],
        "nm_path": NOT_MODIFIED[0],
        "nm_etag": NOT_MODIFIED[1],
        "base": MISS_BASE,
    }


def rss_kib(pid: int) -> int | None:
    """Return the resident set size of process ``pid`` in KiB, or None if it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _warm(web: Granian, workers: int) -> None:
    """Compute every hit URL and let each worker's front learn the site's headers."""
    for path in (*HITS, NOT_MODIFIED[0]):
        for _ in range(10):
            if client.fetch(web.port, path).cached:
                break
        for _ in range(5 * workers):  # new connections spread over the workers
            client.fetch(web.port, path)


def growth(checkpoints: list[dict[str, Any]], target: int) -> dict[str, Any]:
    """Return each worker's RSS after the first tenth of ``target`` and at the end, and growth.

    ``growth_by_worker``: RSS at the end over RSS after the first tenth,
    minus one; ``beyond_tier_by_worker``: the same with what the worker's
    in-process tier grew in between taken off (when the checkpoints carry
    ``tier_kib``); ``max_growth`` and ``max_beyond_tier``: the largest.

    >>> points = [{"requests": 50, "rss_kib": {"1": 90}, "tier_kib": {"1": 1}},
    ...           {"requests": 120, "rss_kib": {"1": 100}, "tier_kib": {"1": 2}},
    ...           {"requests": 1000, "rss_kib": {"1": 110}, "tier_kib": {"1": 8}}]
    >>> found = growth(points, 1000)
    >>> found["max_growth"], found["max_beyond_tier"]
    (0.1, 0.04)
    """
    tenth = next((p for p in checkpoints if p["requests"] >= target / 10), None)
    if tenth is None or not checkpoints:
        return {"after_tenth": None, "final": None, "max_growth": None, "max_beyond_tier": None}
    final = checkpoints[-1]
    ratios, beyond = {}, {}
    for pid, base in tenth["rss_kib"].items():
        end = final["rss_kib"].get(pid)
        if not base or end is None:
            continue
        ratios[pid] = round(end / base - 1, 4)
        tier_then = tenth.get("tier_kib", {}).get(pid)
        tier_now = final.get("tier_kib", {}).get(pid)
        if tier_then is not None and tier_now is not None:
            beyond[pid] = round((end - base - (tier_now - tier_then)) / base, 4)
    return {
        "after_tenth": tenth,
        "final": final,
        "growth_by_worker": ratios,
        "beyond_tier_by_worker": beyond,
        "max_growth": max(ratios.values()) if ratios else None,
        "max_beyond_tier": max(beyond.values()) if len(beyond) == len(ratios) and beyond else None,
    }


def tier_kib(port: int) -> dict[str, float]:
    """Return each worker's in-process tier size (KiB, as its budget counts it), by pid."""
    reply = client.fetch(port, "/metrics")
    if reply.status != 200:
        return {}
    return {
        sample.labels["pid"]: round(sample.value / 1024, 1)
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
        if sample.name == TIER_GAUGE and "pid" in sample.labels
    }


def stage_rss(
    cfg: Config, *, env: dict[str, str], folder: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Serve ``cfg.rss_requests`` mixed requests from granian; return RSS checkpoints, verdict."""
    result: dict[str, Any] = {
        "target_requests": cfg.rss_requests,
        "segment_seconds": cfg.rss_segment_seconds,
        "connections": cfg.connections,
        "workers": cfg.workers,
        "mix_per_100": MIX,
        "hits": list(HITS),
        "bound": (
            f"RSS growth after the first tenth, beyond the in-process tier's, "
            f"< {GROWTH_BOUND:.0%}, zero errors"
        ),
    }
    if not cfg.use_wrk:
        result["skipped"] = "wrk is not installed (apt-get install -y wrk)"
        return result
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "rss-mix.lua"
    script.write_text(mix_script())
    quiet = {
        "THROTTLE_COMPUTE_RATE": "none",
        "THROTTLE_ANON_RATE": "none",
        "COMPUTE_DIGITS_PER_HOUR": "none",  # the cost budget, off for this stage
        # wrk is one client address: its misses must not meet the per-client cap.
        "COMPUTE_CONCURRENCY_PER_CLIENT": "8",
        "COMPUTE_CONCURRENCY": "8",
        "REQUEST_LOG": "false",
    }
    web = Granian(
        "mathsite on granian (rss)", "mathsite.wsgi:application", env={**env, **quiet},
        log=folder / "rss-granian.log", workers=cfg.workers, metrics_dir=folder / "metrics-rss",
    )  # fmt: skip
    checkpoints: list[dict[str, Any]] = []
    totals = {"requests": 0, "errors": 0, "non_2xx": 0}
    deadline = time.monotonic() + cfg.rss_max_seconds
    with web:
        _warm(web, cfg.workers)
        pids = web.worker_pids()
        result["worker_pids"] = pids
        checkpoints.append(_checkpoint(0, pids, 0.0, web.port))
        segment = 0
        while totals["requests"] < cfg.rss_requests and time.monotonic() < deadline:
            run = load.run_wrk(
                f"{web.base}/", connections=cfg.connections, seconds=cfg.rss_segment_seconds,
                threads=cfg.serving_threads, script=script, script_args=[str(segment)],
            )  # fmt: skip
            segment += 1
            for key in totals:
                totals[key] += getattr(run, key)
            checkpoints.append(
                _checkpoint(totals["requests"], pids, run.requests_per_second, web.port)
            )
            log(
                f"  rss: {totals['requests']:>9,} requests, {run.requests_per_second:,.0f} req/s, "
                f"RSS {checkpoints[-1]['rss_kib']} KiB"
            )
        replaced = sorted(set(web.worker_pids()) ^ set(pids))
    result.update(totals)
    result["segments"] = segment
    result["checkpoints"] = checkpoints
    result["replaced_workers"] = replaced
    result.update(growth(checkpoints, cfg.rss_requests))
    grew = result.get("max_beyond_tier")
    result["met"] = bool(
        totals["requests"] >= cfg.rss_requests
        and grew is not None
        and grew < GROWTH_BOUND
        and totals["errors"] == 0
        and totals["non_2xx"] == 0
        and not replaced
    )
    return result


def _checkpoint(requests: int, pids: list[int], rate: float, port: int) -> dict[str, Any]:
    tiers = tier_kib(port)
    return {
        "requests": requests,
        "requests_per_second": round(rate),
        "rss_kib": {str(pid): rss_kib(pid) for pid in pids},
        "tier_kib": {str(pid): tiers[str(pid)] for pid in pids if str(pid) in tiers},
    }


def markdown(rss: dict[str, Any]) -> list[str]:
    """Return the stage's section of the report."""
    out = ["## 6. Worker memory over a million mixed requests (granian)", ""]
    if rss.get("skipped"):
        return [*out, f"Not run: {rss['skipped']}.", ""]
    mix = ", ".join(
        f"{count} {name.replace('_', ' ')}" for name, count in rss["mix_per_100"].items()
    )
    out += [
        f"{rss['requests']:,} requests (target {rss['target_requests']:,}) in {rss['segments']} "
        f"wrk segments of {rss['segment_seconds']:g} s, {rss['connections']} keep-alive "
        f"connections, {rss['workers']} workers, throttles and the cost budget off. Mix per 100 "
        f"requests: {mix}. Errors: {rss['errors']}, non-2xx/3xx: {rss['non_2xx']}, "
        f"workers replaced: {len(rss['replaced_workers'])}.",
        "",
        "| requests so far | req/s (segment) | RSS per worker (MiB) | in-process tier per "
        "worker (MiB) |",
        "| ---: | ---: | --- | --- |",
    ]
    for point in rss["checkpoints"]:
        sizes = ", ".join(
            "gone" if kib is None else f"{kib / 1024:.1f}" for kib in point["rss_kib"].values()
        )
        tiers = ", ".join(
            "n/a" if point.get("tier_kib", {}).get(pid) is None
            else f"{point['tier_kib'][pid] / 1024:.1f}"
            for pid in point["rss_kib"]
        )  # fmt: skip
        out.append(
            f"| {point['requests']:,} | {point['requests_per_second']:,} | {sizes} | {tiers} |"
        )
    beyond, grew = rss.get("max_beyond_tier"), rss.get("max_growth")
    verdict = "met" if rss.get("met") else "NOT met"
    out += [
        "",
        f"Largest growth from the first tenth to the end, beyond what the worker's in-process "
        f"tier grew: {_percent(beyond)} (bound < {GROWTH_BOUND:.0%}, zero errors): "
        f"**{verdict}**. The RSS alone grew by {_percent(grew)} at most: the tier fills with "
        "the mix's new results up to its budget (`LOCAL_CACHE_MAX_BYTES`), as a cache does.",
        "",
        "![rss](rss.png)",
        "",
    ]
    return out


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def plot(rss: dict[str, Any], folder: Path, plt: Any) -> Path | None:
    """Draw rss.png: each worker's RSS against the requests served so far."""
    points = rss.get("checkpoints") or []
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for pid in points[0]["rss_kib"]:
        series = [
            (p["requests"], p["rss_kib"][pid] / 1024) for p in points if p["rss_kib"].get(pid)
        ]
        if series:
            (line,) = ax.plot(*zip(*series, strict=True), "o-", label=f"worker {pid}")
            tier = [
                (p["requests"], p["tier_kib"][pid] / 1024)
                for p in points
                if p.get("tier_kib", {}).get(pid) is not None
            ]
            if tier:
                ax.plot(
                    *zip(*tier, strict=True), "--", color=line.get_color(),
                    label=f"worker {pid}: its in-process tier",
                )  # fmt: skip
    tenth = rss["target_requests"] / 10
    ax.axvline(tenth, color="grey", linestyle=":", label="first tenth")
    ax.set_xlabel("requests served")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("mathsite on granian: worker RSS over mixed requests")
    ax.legend()
    path = folder / "rss.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
