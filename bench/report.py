"""Turning a run's results into verdicts, a Markdown report and PNG plots.

``evaluate`` states each target of issue 4 as met or not with its figure;
``render_markdown`` writes the tables; ``render_plots`` draws the PNGs with
matplotlib's Agg backend (imported only there, so the rest runs without
matplotlib installed).

    >>> verdicts = evaluate(results)                  # doctest: +SKIP
    >>> [(v["target"], v["met"]) for v in verdicts]   # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import ceiling, rss

HIT_RATIO_TARGET = 1.5
HIT_P99_MS = 10.0
PI_COLD_MS = 5.0
PI_INPROCESS_MS = 0.1
FIB_COLD_FACTOR = 1.5
FIB_COLD_SLACK_MS = 5.0
FIB_HIT_MS = 10.0
BURST_FACTOR = 1.2


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 0.01:
        return f"{value:.4f}"
    return f"{value:.{digits}f}"


def _n(n: int) -> str:
    if n >= 10_000 and n == 10 ** (len(str(n)) - 1):
        return f"10^{len(str(n)) - 1}"
    return f"{n:,}"


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one verdict per target: target text, measured figure text, met (bool)."""
    verdicts: list[dict[str, Any]] = million_verdicts(results.get("million") or {})
    hits = results.get("hits")
    if hits:
        summary = hits["summary"]
        for kind in ("pi", "fib"):
            new, old = summary[f"{kind} mathsite"], summary[f"{kind} old"]
            alone = hits["single_client"][f"{kind} mathsite"]
            ratio = new["requests_per_second"] / old["requests_per_second"]
            verdicts.append(
                {
                    "target": f"{kind} cached-hit throughput >= {HIT_RATIO_TARGET}x "
                    "the old service",
                    "figure": f"{ratio:.2f}x ({new['requests_per_second']:,.0f} vs "
                    f"{old['requests_per_second']:,.0f} req/s)",
                    "met": ratio >= HIT_RATIO_TARGET and new["non_2xx"] == 0,
                }
            )
            verdicts.append(
                {
                    "target": f"{kind} cached-hit p99 < {HIT_P99_MS:g} ms "
                    f"({results['config']['connections']} connections)",
                    "figure": f"{new['p99_ms']:.2f} ms (p50 {new['p50_ms']:.2f} ms; "
                    f"one client alone: p99 {alone['p99_ms']:.2f} ms)",
                    "met": new["p99_ms"] < HIT_P99_MS,
                }
            )
    cold = results.get("cold")
    inproc = results.get("inprocess")
    if cold:
        rows = cold["mathsite"]["pi"]
        worst = max(rows, key=lambda r: r["median_ms"])
        verdicts.append(
            {
                "target": f"pi cold end-to-end median < {PI_COLD_MS:g} ms at every n up to 10^18",
                "figure": f"worst {worst['median_ms']:.2f} ms (n = {_n(worst['n'])}); "
                f"{len(rows)} values of n",
                "met": all(r["median_ms"] < PI_COLD_MS for r in rows),
            }
        )
    if inproc:
        worst_in = max(inproc["pi"], key=lambda r: r["mathsite_ms"])
        worst_mp = max(r["mpmath_ms"] for r in inproc["pi"])
        verdicts.append(
            {
                "target": f"pi in-process at double precision < {PI_INPROCESS_MS:g} ms",
                "figure": f"mathsite pi_double worst {worst_in['mathsite_ms'] * 1000:.1f} us "
                f"(n = {_n(worst_in['n'])}); mpmath closed form worst {worst_mp * 1000:.1f} us",
                "met": worst_in["mathsite_ms"] < PI_INPROCESS_MS,
            }
        )
    big_n = results["config"]["big_n"]
    if cold and inproc:
        row = next((r for r in cold["mathsite"]["fib"] if r["n"] == big_n), None)
        limit = next((r for r in inproc["fib"] if r["n"] == big_n), None)
        if row and limit:
            bound = FIB_COLD_FACTOR * limit["gmpy2_ms"] + FIB_COLD_SLACK_MS
            verdicts.append(
                {
                    "target": f"fib({big_n:,}) cold end-to-end <= {FIB_COLD_FACTOR:g} x "
                    f"(gmpy2 fib + digits) + {FIB_COLD_SLACK_MS:g} ms",
                    "figure": f"{row['median_ms']:.2f} ms vs bound {bound:.2f} ms "
                    f"(gmpy2 {limit['gmpy2_ms']:.2f} ms)",
                    "met": row["median_ms"] <= bound,
                }
            )
    big = results.get("big_hit")
    if big:
        plain, packed = big["plain"]["median_ms"], big["gzip"]["median_ms"]
        verdicts.append(
            {
                "target": f"fib({big_n:,}) cached hit median < {FIB_HIT_MS:g} ms",
                "figure": f"{plain:.2f} ms plain, {packed:.2f} ms gzip",
                "met": max(plain, packed) < FIB_HIT_MS and big["correct"],
            }
        )
    burst = results.get("burst")
    if burst and big:
        workers = results["config"]["workers"]
        size = burst["size"]
        hit_ms = big["plain"]["median_ms"]
        bound = BURST_FACTOR * (burst["single_median_ms"] + (size - 1) * hit_ms / workers)
        # The workers share the server's cores: with fewer cores than workers the
        # hits cannot be served in parallel; say what the bound is then.
        cores = results["meta"].get("server_cpus")
        parallel = min(workers, len(cores)) if isinstance(cores, list) else workers
        core_bound = BURST_FACTOR * (burst["single_median_ms"] + (size - 1) * hit_ms / parallel)
        core_text = (
            f" (with the hits spread over the {parallel} server core(s): {core_bound:.2f} ms)"
            if parallel != workers
            else ""
        )
        verdicts.append(
            {
                "target": f"burst of {size} cold requests <= {BURST_FACTOR:g} x (one cold + "
                f"{size - 1} hits / {workers} workers), one computation",
                "figure": f"{burst['burst_median_ms']:.2f} ms vs bound {bound:.2f} ms{core_text}; "
                f"cached:false per burst {burst['min_cached_false']}..{burst['max_cached_false']}",
                "met": burst["burst_median_ms"] <= bound
                and burst["max_cached_false"] == 1
                and burst["min_cached_false"] == 1
                and burst["all_answered"],
            }
        )
    return verdicts


def _settle_text(meta: dict[str, Any]) -> str:
    settle = meta.get("time_wait_before_cold")
    if not settle:
        return ""
    return (
        f" Measured after waiting {settle['waited_s']:.0f} s for the sockets the hit stage "
        f"closed to leave TIME_WAIT ({settle['left']:,} left): tens of thousands of them slow "
        "down every new loopback connection."
    )


def _old_stop_text(stop: dict[str, Any] | None, kind: str) -> str:
    if stop is None:
        return f"answered every n measured for {kind}"
    if stop["reason"] == "timeout":
        text = f"no answer within {stop['timeout_s']:g} s at n = {_n(stop['n'])}"
        if stop.get("projected_s"):
            text += f" (projected from the last answer: {stop['projected_s']:.0f} s)"
        return text
    text = f"{stop['reason']} at n = {_n(stop['n'])}"
    if stop.get("largest_answered_n") is not None:
        text += f"; largest n it answers: {stop['largest_answered_n']:,}"
    return text


def render_markdown(results: dict[str, Any]) -> str:
    """Return the report as Markdown: verdicts first, then each stage's table."""
    meta, cfg = results["meta"], results["config"]
    out = ["# mathsite benchmark report", ""]
    out.append(
        f"Generated {meta['finished']} by `{meta['command']}` ({meta['mode']} mode) on "
        f"revision {meta.get('revision', 'unknown')}, in {meta.get('total_s', '?')} s."
    )
    out.append("")
    machine_line = (
        f"Machine: {meta['cpu_count']} CPUs ({meta['cpu_model']}), Python {meta['python']}, "
        f"load generator: {meta['load_tool']}. "
    )
    shared = {"inprocess", "hits", "wsgi_cost", "profile", "cold", "big_hit", "fib_mod", "burst"}
    if shared & set(results) or not (results.get("serving") or results.get("attack")):
        machine_line += (
            f"Server cores: {meta['server_cpus']}, "
            f"load generator and Redis cores: {meta['client_cpus']}. Both services run under "
            f"`gunicorn --config gunicorn.conf.py --workers {cfg['workers']} --worker-class sync "
            "--timeout 60` (mathsite's shipped gunicorn configuration for both) "
            f"against one dedicated Redis (unix socket, each service its own database index); "
            f"mathsite with its shipped settings (`DEBUG` off, SQLite in WAL mode in a temporary "
            f"data folder). All traffic on 127.0.0.1. Figures are medians over repeated runs; "
            f"ratios compare figures from this same run."
        )
    else:
        machine_line += (
            "Only the serving or attack stage ran (their sections say how their servers ran). "
            "All traffic on "
            "127.0.0.1; ratios compare figures from this same run."
        )
    out += [machine_line, ""]
    verdicts = evaluate(results)
    if verdicts:  # none in a run of the serving stage alone (its targets are in its section)
        out += ["## Targets (issue 4)", "", "| target | measured | verdict |"]
        out.append("| --- | --- | --- |")
        for v in verdicts:
            out.append(f"| {v['target']} | {v['figure']} | {_verdict(v['met'])} |")
        out.append("")

    hits = results.get("hits")
    if hits:
        out += [
            "## 1. Cached-hit throughput and latency",
            "",
            f"{cfg['connections']} connections, {cfg['hit_seconds']:g} s per run, "
            f"{cfg['hit_repeats']} runs per row (medians), {hits['tool']}. Routes: the old "
            f"service's `/pi/{cfg['pi_hit_n']}` and `/fib/{cfg['fib_hit_n']}` on both services, "
            "and mathsite's canonical `/api/` routes. Sync gunicorn workers close each "
            "connection after one response, so every request includes a TCP connect. "
            '"floor" is a constant WSGI app under the same gunicorn settings: the most any '
            "Python service can reach on this layout.",
            "",
            "| route | service | req/s | vs old | p50 ms | p99 ms | alone p50 ms | "
            "alone p99 ms | non-2xx |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, row in hits["summary"].items():
            kind, name = key.split(" ", 1)
            old = hits["summary"][f"{kind} old"]["requests_per_second"]
            alone = hits["single_client"][key]
            out.append(
                f"| {kind} | {name} | {row['requests_per_second']:,.0f} | "
                f"{row['requests_per_second'] / old:.2f}x | {_fmt(row['p50_ms'])} | "
                f"{_fmt(row['p99_ms'])} | {_fmt(alone['p50_ms'])} | {_fmt(alone['p99_ms'])} | "
                f"{row['non_2xx']} |"
            )
        out += [
            "",
            '"alone": one client, sequential requests, no queueing. Under 32 connections '
            "latency is mostly queueing: by Little's law the mean is about "
            "connections / throughput.",
            "",
            "![cached hits](hits.png)",
            "",
        ]

    cost = results.get("wsgi_cost")
    if cost:
        out += [
            "### Application CPU per cached hit (WSGI call in-process, no gunicorn, no socket)",
            "",
            "The WSGI application called directly with a prebuilt environ, pinned to a server "
            "core, batches of 500; best batch (least disturbed by other processes) and median. "
            "What gunicorn adds per request (parse, environ, write, close) is the same for "
            "both services.",
            "",
            "| path | mathsite best us | mathsite median us | old best us | old median us |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for path, new_cost in cost.get("mathsite", {}).items():
            old_cost = cost.get("old", {}).get(path)
            out.append(
                f"| `{path}` | {new_cost['best_us']:.0f} | {new_cost['median_us']:.0f} | "
                f"{_fmt(old_cost['best_us'], 0) if old_cost else '-'} | "
                f"{_fmt(old_cost['median_us'], 0) if old_cost else '-'} |"
            )
        out.append("")

    cold, inproc = results.get("cold"), results.get("inprocess")
    if cold and inproc:
        out += [
            "## 2. Cold computation time against n",
            "",
            f"mathsite: `GET /api/pi/{{n}}/` for an n never requested before in the run "
            f"(n, n+1, ...), median of {cfg['cold_repeats']} taken in rounds over every n; "
            "the log write included; "
            "after 3 throw-away computations per worker (a worker's first computation "
            "also pays one-off set-up). Old "
            "service: its hashes deleted before each request, median of up to "
            f"{cfg['cold_repeats']} (one when slower than {cfg['old_slow_seconds']:g} s), "
            f"timeout {cfg['old_timeout']:g} s. In-process: no HTTP, median of "
            f"{cfg['inprocess_repeats']} batches. Times in ms.{_settle_text(meta)}",
            "",
            "### pi",
            "",
            "| n | mathsite end-to-end | old service | mathsite in-process (pi_double) | "
            "mpmath closed form, 53 bits |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        old_pi = {r["n"]: r for r in cold["old"]["pi"]["rows"]}
        in_pi = {r["n"]: r for r in inproc["pi"]}
        for row in cold["mathsite"]["pi"]:
            n = row["n"]
            old = old_pi.get(n)
            out.append(
                f"| {_n(n)} | {_fmt(row['median_ms'])} | "
                f"{_fmt(old['median_ms']) if old else '-'} | "
                f"{_fmt(in_pi[n]['mathsite_ms'], 4)} | {_fmt(in_pi[n]['mpmath_ms'], 4)} |"
            )
        out += [
            "",
            f"Old service, pi: {_old_stop_text(cold['old']['pi']['stop'], 'pi')}.",
            "",
            "### fib",
            "",
            "| n | mathsite end-to-end | old service | gmpy2 fib + digits | gmpy2 fib only |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        old_fib = {r["n"]: r for r in cold["old"]["fib"]["rows"]}
        in_fib = {r["n"]: r for r in inproc["fib"]}
        for row in cold["mathsite"]["fib"]:
            n = row["n"]
            old = old_fib.get(n)
            limit = in_fib.get(n)
            out.append(
                f"| {_n(n)} | {_fmt(row['median_ms'])} | "
                f"{_fmt(old['median_ms']) if old else '-'} | "
                f"{_fmt(limit['gmpy2_ms'], 4) if limit else '-'} | "
                f"{_fmt(limit['gmpy2_fib_only_ms'], 4) if limit else '-'} |"
            )
        out += [
            "",
            f"Old service, fib: {_old_stop_text(cold['old']['fib']['stop'], 'fib')} "
            "(the recursive fib exceeds Python's recursion limit).",
            "",
            "![cold pi](cold_pi.png)",
            "",
            "![cold fib](cold_fib.png)",
            "",
        ]
        anomalies = [
            (kind, a)
            for kind in ("pi", "fib")
            for r in cold["mathsite"][kind]
            for a in r["anomalies"]
        ]
        if anomalies:
            out.append(f"Cold requests that did not answer `cached: false` (excluded): {anomalies}")
            out.append("")

    big = results.get("big_hit")
    if big:
        out += [
            f"## 3. fib({big['n']:,}) cached hit",
            "",
            f"{big['digits']:,} digits. {cfg['big_samples']} requests each way, one "
            f"connection per request; Redis GETs by a redis-py (hiredis) client loop of "
            f"{cfg['redis_samples']} on one connection. Body checked against gmpy2's digits "
            f"and the gzip body against the plain one: {'ok' if big['correct'] else 'FAILED'}.",
            "",
            "| what | median ms | p90 ms | bytes on the wire | of which body |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| mathsite, no Accept-Encoding | {_fmt(big['plain']['median_ms'])} | "
            f"{_fmt(big['plain']['p90_ms'])} | {big['plain']['wire_bytes']:,} | "
            f"{big['plain']['body_bytes']:,} |",
            f"| mathsite, Accept-Encoding: gzip | {_fmt(big['gzip']['median_ms'])} | "
            f"{_fmt(big['gzip']['p90_ms'])} | {big['gzip']['wire_bytes']:,} | "
            f"{big['gzip']['body_bytes']:,} |",
            f"| Redis GET of the stored value (`{big['redis_stored']['key']}`) | "
            f"{_fmt(big['redis_stored']['median_ms'], 3)} | "
            f"{_fmt(big['redis_stored']['p90_ms'], 3)} | {big['redis_stored']['bytes']:,} | "
            f"{big['redis_stored']['bytes']:,} |",
            f"| same, new connection per GET | "
            f"{_fmt(big['redis_stored']['new_connection_median_ms'], 3)} | | | |",
            f"| Redis GET of a value the size of the plain body | "
            f"{_fmt(big['redis_plain_size']['median_ms'], 3)} | "
            f"{_fmt(big['redis_plain_size']['p90_ms'], 3)} | "
            f"{big['redis_plain_size']['bytes']:,} | {big['redis_plain_size']['bytes']:,} |",
            "",
            f"The old service cannot serve fib({big['n']:,}) at all (see section 2).",
            "",
        ]
    burst = results.get("burst")
    if burst:
        out += [
            f"## 4. Burst of {burst['size']} concurrent cold requests",
            "",
            f"Each burst asks for a fresh fib(n) near {cfg['big_n']:,} on {burst['size']} "
            "pre-opened connections released together; wall time until the last full "
            "response. The single cold request (another fresh n) is measured just before "
            "each burst.",
            "",
            "| server | repeat | n | burst wall ms | answered | cached:false | single cold n | "
            "single cold ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        servers = [("gunicorn", burst)]
        if burst.get("granian"):
            servers.append(("granian", burst["granian"]))
        for server, series in servers:
            pairs = zip(series["bursts"], series["singles"], strict=True)
            for i, (b, s) in enumerate(pairs, 1):
                out.append(
                    f"| {server} | {i} | {b['n']:,} | {_fmt(b['wall_ms'])} | {b['status_200']} | "
                    f"{b['cached_false']} | {s['n']:,} | {_fmt(s['ms'])} |"
                )
        out.append("")
        if burst.get("granian"):
            g = burst["granian"]
            out += [
                "The bound of issue 4 is taken on gunicorn (sync workers: one request per "
                "worker at a time). On granian, mathsite's default server, the medians are "
                f"{_fmt(g['burst_median_ms'])} ms per burst and {_fmt(g['single_median_ms'])} ms "
                f"for the single cold request, cached:false {g['min_cached_false']}.."
                f"{g['max_cached_false']} per burst (reported, no bound).",
                "",
            ]
    if results.get("fib_mod"):
        out += _fib_mod_markdown(results["fib_mod"])
    serving = results.get("serving")
    if serving:
        out += _serving_markdown(serving)
    if results.get("rss"):
        out += rss.markdown(results["rss"])
    big_log = results.get("million")
    if big_log:
        out += _million_markdown(big_log)
    attack = results.get("attack")
    if attack:
        out += _attack_markdown(attack)
    if results.get("ceiling"):
        out += ceiling.markdown(results["ceiling"])
    stage_load = results.get("stages")
    if stage_load:
        out += [
            "## Machine load during the run",
            "",
            "CPU time used by processes outside the benchmark while each stage ran (the "
            "machine is shared; a stage with a large share measured a busy machine).",
            "",
            "| stage | wall s | foreign CPU s | share of all CPUs |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, row in stage_load.items():
            out.append(
                f"| {name} | {row['wall_s']:.1f} | {row['foreign_cpu_s']:.1f} | "
                f"{row['foreign_fraction']:.0%} |"
            )
        out.append("")
    notes = results.get("notes")
    if notes:
        out += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    profile = results.get("profile")
    if profile:
        out += [
            "## Profile of the cached-hit path (py-spy)",
            "",
            "py-spy `record --gil --subprocesses` on mathsite's gunicorn during one more hit "
            "load run per route; shares of the samples in which a worker ran Python code. "
            "The collapsed stacks are in `profile-pi.collapsed.txt` and "
            "`profile-fib.collapsed.txt` (flamegraph input).",
            "",
        ]
        out += profile.get("markdown", [])
        out.append("")
    return "\n".join(out)


def _fib_mod_markdown(stage: dict[str, Any]) -> list[str]:
    """Return the section of the ``fib_mod`` stage (``bench.fib_mod``)."""
    inproc, cold, hit = stage["inprocess"], stage["cold"], stage["hit"]
    return [
        "## fib(n) mod M at n = M = 10**18 (issue 12)",
        "",
        f"`GET /api/fib/{stage['n']}/?mod={stage['mod']}` (result {stage['result']}); "
        "bodies checked against a pure-Python matrix power mod M: "
        f"{'all correct' if stage['correct'] else 'NOT CORRECT: ' + str(stage['checks'])}.",
        "",
        "| measure | median | |",
        "| --- | ---: | --- |",
        f"| `maths.fib_mod(10**18, 10**18)` in-process | {inproc['median_us']:.1f} us | "
        f"best batch {inproc['best_us']:.1f} us |",
        f"| cold request (computed, logged, cached) | {cold['median_ms']:.2f} ms | "
        f"{len(cold['samples_ms'])} samples, n = 10**18 - k |",
        f"| cached hit | {hit['median_ms']:.2f} ms | p90 {hit['p90_ms']:.2f} ms |",
        "",
    ]


SERVING_LAYOUT_TITLES = {
    "keep-alive": "32 keep-alive connections, unpinned (the targets' layout)",
    "pinned": "32 keep-alive connections, pinned (server upper half, wrk and Redis lower half)",
    "close": "32 connections closed after each response (Connection: close), unpinned",
}
SERVING_PLOT_TITLES = {
    "keep-alive": "keep-alive, unpinned (targets)",
    "pinned": "keep-alive, pinned",
    "close": "Connection: close, unpinned",
}
SERVING_APPS = (("mathsite", "mathsite"), ("old", "old service"), ("floor", "constant WSGI app"))
SERVING_SERVERS = ("granian", "gunicorn")


def million_verdicts(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one verdict per timed page of the million stage (issue 11: each < 300 ms)."""
    if stage.get("status") != "run":
        return []
    return [
        {
            "target": f"(11) {row['name']} < {stage['bound_ms']:g} ms "
            f"with {stage['rows']:,} logged results",
            "figure": f"{row['median_ms']:.1f} ms median (max {row['max_ms']:.1f} ms)",
            "met": row["met"],
        }
        for row in stage["timings"]
    ]


def _million_markdown(stage: dict[str, Any]) -> list[str]:
    out = ["## 7. A million logged results on PostgreSQL (issue 11)", ""]
    if stage.get("status") != "run":
        return [*out, f"Not run: {stage.get('reason', 'no PostgreSQL')}.", ""]
    out += [
        f"{stage['rows']:,} real results (pi doubles, and {stage['rows'] // 1000:,} each of "
        f"fib(n) and pi(n) to 30 digits) computed in {stage['compute_s']} s, loaded with one "
        f"COPY plus VACUUM ANALYZE in {stage['load_s']} s into `{stage['database']}` (created "
        f"and dropped by the stage); {stage['redis_entries']:,} of them stored in Redis in "
        f"{stage['redis_fill_s']} s. Each page timed in-process through Django's test client "
        "after one warm-up; medians of the samples listed.",
        "",
        "| page | median ms | max ms | samples ms | < 300 ms |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for row in stage["timings"]:
        samples = ", ".join(f"{v:.1f}" for v in row["samples_ms"])
        out.append(
            f"| {row['name']} | {row['median_ms']:.1f} | {row['max_ms']:.1f} | {samples} | "
            f"{_verdict(row['met'])} |"
        )
    out += ["", "| check | got | expected | |", "| --- | --- | --- | --- |"]
    for check in stage["checks"]:
        out.append(
            f"| {check['what']} | {check['got']} | {check['expected']} | "
            f"{'ok' if check['ok'] else '**wrong**'} |"
        )
    out += ["", f"`cache_stats` said: {stage['cache_stats_method']}.", ""]
    return out


def _attack_markdown(attack: dict[str, Any]) -> list[str]:
    """Return the attack stage's section: its two verdicts and what the attack caused."""
    a, during, base = attack["attack"], attack["hits_during"], attack["hits_baseline"]
    out = [
        "## 8. One client trying to exhaust the service (issue 11)",
        "",
        f"mathsite on granian ({attack['workers']} workers, its production settings; digit "
        f"budget {attack['budget']}). The attacker (one address, a process of its own at nice "
        f"5) asks for {a['requests']} distinct fib(n), n in {a['n_range'][0]:,}.."
        f"{a['n_range'][1]:,} ({a['digits_each']:,} digits each), {a['concurrency']} at a time, "
        "asking again 50 ms after a refusal for its concurrent share, giving up an n on a "
        f"budget refusal. Another client reads the cached `/api/fib/90/` on "
        f"{attack['hit_connections']} keep-alive connections throughout "
        f"({attack['baseline_seconds']:g} s alone first); a bystander computes small results.",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
    ]
    for v in attack.get("targets", []):
        out.append(f"| {v['target']} | {v['figure']} | {_verdict(v['met'])} |")
    out += [
        "",
        "| | requests | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| cached hits alone | {base['requests']} | {_fmt(base['p50_ms'])} | "
        f"{_fmt(base['p99_ms'])} | {_fmt(base['max_ms'], 1)} |",
        f"| cached hits during the attack | {during['requests']} | {_fmt(during['p50_ms'])} | "
        f"{_fmt(during['p99_ms'])} | {_fmt(during['max_ms'], 1)} |",
        "",
        f"The attack lasted {a['duration_s']:.1f} s: {a['requests_sent']} requests, statuses "
        f"{a['statuses']}, refusals by reason {a['refusals']}; budget 429s carried "
        f"Retry-After {', '.join(a['retry_after_budget']) or '-'} s. Computations took "
        f"{_fmt(a['computed_ms_p50'], 0)} ms (median, at nice 10). The bystander's "
        f"{attack['bystander']['requests']} requests: {attack['bystander']['statuses']}. "
        f"Storage the attack added: SQLite {attack['storage']['sqlite_growth_bytes']:,} bytes, "
        f"Redis {attack['storage']['redis_growth_bytes']:,} bytes.",
        "",
    ]
    return out


def _serving_markdown(serving: dict[str, Any]) -> list[str]:
    """Return the serving stage's section: targets, one server x app table per layout."""
    out = ["## 5. Serving: granian and gunicorn, mathsite, the old service and a constant app", ""]
    if serving.get("skipped", {}).get("all"):
        return [*out, f"Not measured: {serving['skipped']['all']}.", ""]
    settings = ", ".join(f"`{k}={v}`" for k, v in serving.get("granian_settings", {}).items())
    out += [
        f"`GET {serving['path']}` answered from the cache, `wrk -t{serving['threads']} "
        f"-c{serving['connections']} -d{serving['seconds']:g}s --latency`, "
        f"{serving['repeats']} runs per cell (medians of requests/s and of p99), after a "
        f"warm-up ({serving['warmup_seconds']:g} s of wrk and a few requests per worker). "
        f"One server at a time, {serving['workers']} workers each, the dedicated Redis. "
        "granian runs with mathsite's production settings (`launcher.server`) for every "
        f"application: {settings}. gunicorn runs as in the other sections (sync workers, "
        "mathsite's `gunicorn.conf.py`): it closes every connection after one response, so "
        "even keep-alive clients reconnect for each request. Layouts are measured one after "
        "another, every combination in each.",
        "",
    ]
    targets = serving.get("targets", [])
    if targets:
        out += ["| target | measured | bound | goal |", "| --- | --- | --- | --- |"]
        for v in targets:
            out.append(
                f"| {v['target']} | {v['figure']} | {_verdict(v['met'])} | "
                f"{'met' if v['goal_met'] else 'not met'} |"
            )
        out.append("")
    for layout, cells in serving.get("cells", {}).items():
        where = serving["layouts"][layout]
        out += [
            f"### {SERVING_LAYOUT_TITLES.get(layout, layout)}",
            "",
            f"Server cores {where['server_cpus']}, wrk and Redis cores {where['wrk_cpus']}. "
            "Cells: requests/s, p50 / p99 ms."
            + ("" if layout == "keep-alive" else " Reported without a bound."),
            "",
            "| server | " + " | ".join(label for _app, label in SERVING_APPS) + " |",
            "| --- |" + " ---: |" * len(SERVING_APPS),
        ]
        for server in SERVING_SERVERS:
            row = []
            for app, _label in SERVING_APPS:
                c = cells.get(f"{server} {app}")
                if c is None:
                    row.append("-")
                    continue
                flaws = ""
                if c["non_2xx"] or c["errors"]:
                    flaws = f" (non-2xx {c['non_2xx']}, errors {c['errors']})"
                row.append(
                    f"{c['requests_per_second']:,.0f} req/s, {_fmt(c['p50_ms'])} / "
                    f"{_fmt(c['p99_ms'])} ms{flaws}"
                )
            out.append(f"| {server} | " + " | ".join(row) + " |")
        out.append("")
    waiting = [
        c["time_wait_at_start"]
        for cells in serving.get("cells", {}).values()
        for c in cells.values()
        if "time_wait_at_start" in c
    ]
    if waiting:
        out += [
            f"Sockets in TIME_WAIT when a combination started: {min(waiting):,} to "
            f"{max(waiting):,} (gunicorn and `Connection: close` runs leave one per request "
            "for 60 s; they make every new loopback connection a little slower to set up).",
            "",
        ]
    for layout, reason in serving.get("skipped", {}).items():
        out += [f"Layout {layout} not measured: {reason}.", ""]
    unlearned = [
        k for k, c in serving.get("checks", {}).items() if c.get("front_answered") is False
    ]
    uncached = [k for k, c in serving.get("checks", {}).items() if c.get("cached") is not True]
    if unlearned:
        out += [f"mathsite's WSGI front had not learned after the warm-up in: {unlearned}.", ""]
    if uncached:
        out += [f"Not a cached hit after the warm-up: {uncached}.", ""]
    out += ["![serving](serving.png)", ""]
    return out


def _serving_plot(serving: dict[str, Any], folder: Path, plt: Any) -> Path | None:
    """Draw serving.png: req/s (top) and p99 (bottom), server groups x app bars, per layout."""
    layouts = list(serving.get("cells", {}))
    if not layouts:
        return None
    fig, axes = plt.subplots(2, len(layouts), figsize=(4.2 * len(layouts), 7), squeeze=False)
    colors = {"mathsite": "tab:blue", "old": "tab:grey", "floor": "tab:green"}
    width = 0.8 / len(SERVING_APPS)
    for column, layout in enumerate(layouts):
        cells = serving["cells"][layout]
        top, bottom = axes[0][column], axes[1][column]
        for index, (app, label) in enumerate(SERVING_APPS):
            xs, rps, p99 = [], [], []
            for position, server in enumerate(SERVING_SERVERS):
                c = cells.get(f"{server} {app}")
                if c is not None:
                    xs.append(position + (index - 1) * width)
                    rps.append(c["requests_per_second"])
                    p99.append(c["p99_ms"])
            top.bar(xs, rps, width, label=label, color=colors[app])
            bottom.bar(xs, p99, width, label=label, color=colors[app])
            for x, value in zip(xs, rps, strict=True):
                top.text(x, value, f"{value / 1000:.1f}k", ha="center", va="bottom", fontsize=7)
            for x, value in zip(xs, p99, strict=True):
                bottom.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
        for axis in (top, bottom):
            axis.set_xticks(range(len(SERVING_SERVERS)), SERVING_SERVERS)
            axis.grid(True, axis="y", alpha=0.3)
            axis.set_ylim(0, axis.get_ylim()[1] * 1.3)  # room for the legend and labels
        top.set_title(SERVING_PLOT_TITLES.get(layout, layout), fontsize=10)
        p99_target = next((v for v in serving.get("targets", []) if v["key"] == "p99"), None)
        if layout == "keep-alive" and p99_target:
            bottom.axhline(p99_target["bound"], color="red", linestyle=":", label="p99 bound")
            bottom.axhline(p99_target["goal"], color="orange", linestyle=":", label="p99 goal")
        if column == 0:
            top.set_ylabel("cached hits per second (median)")
            bottom.set_ylabel("p99 latency, ms (median)")
            top.legend(fontsize=8)
        if layout == "keep-alive" and p99_target:
            lines = [line for line in bottom.get_lines() if line.get_label().startswith("p99")]
            bottom.legend(handles=lines, fontsize=8, loc="upper left")
    fig.suptitle(
        f"GET {serving['path']}, {serving['connections']} connections, "
        f"{serving['workers']} workers: granian vs gunicorn"
    )
    fig.tight_layout()
    path = folder / "serving.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_plots(results: dict[str, Any], folder: Path) -> list[Path]:
    """Draw the PNG plots into ``folder``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    cold, inproc = results.get("cold"), results.get("inprocess")
    if cold and inproc:
        series = {
            "pi": [
                ("mathsite end-to-end", cold["mathsite"]["pi"], "median_ms", "o-"),
                ("old service end-to-end", cold["old"]["pi"]["rows"], "median_ms", "s-"),
                ("mathsite pi_double in-process", inproc["pi"], "mathsite_ms", "^--"),
                ("mpmath closed form, 53 bits", inproc["pi"], "mpmath_ms", "v--"),
            ],
            "fib": [
                ("mathsite end-to-end", cold["mathsite"]["fib"], "median_ms", "o-"),
                ("old service end-to-end", cold["old"]["fib"]["rows"], "median_ms", "s-"),
                ("gmpy2 fib + digits in-process", inproc["fib"], "gmpy2_ms", "^--"),
            ],
        }
        for kind, lines in series.items():
            fig, ax = plt.subplots(figsize=(8, 5))
            for label, rows, key, style in lines:
                points = [(r["n"], r[key]) for r in rows if not math.isnan(r[key])]
                if points:
                    ax.plot(*zip(*points, strict=True), style, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.set_ylabel("time (ms, median)")
            ax.set_title(f"{kind}(n): cold computation time")
            ax.grid(True, which="both", alpha=0.3)
            if kind == "pi":
                ax.axhline(PI_COLD_MS, color="grey", linestyle=":", label="5 ms target")
            ax.legend()
            path = folder / f"cold_{kind}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    hits = results.get("hits")
    if hits:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
        keys = list(hits["summary"])
        rps = [hits["summary"][k]["requests_per_second"] for k in keys]
        p99 = [hits["summary"][k]["p99_ms"] for k in keys]
        palette = {"old": "tab:grey", "floor": "tab:green"}
        colors = [palette.get(k.split(" ", 1)[1], "tab:blue") for k in keys]
        left.barh(keys, rps, color=colors)
        for index, key in enumerate(keys):
            old = hits["summary"].get(key.split(" ", 1)[0] + " old")
            if old and old["requests_per_second"]:
                ratio = rps[index] / old["requests_per_second"]
                left.text(rps[index], index, f" {ratio:.2f}x", va="center", fontsize=8)
        left.set_xlim(0, max(rps) * 1.18)
        left.set_xlabel("cached hits per second (median; label: vs old)")
        left.invert_yaxis()
        right.barh(keys, p99, color=colors)
        right.axvline(HIT_P99_MS, color="red", linestyle=":")
        right.set_xlabel("p99 latency, ms (32 connections)")
        right.invert_yaxis()
        right.set_yticklabels([])
        fig.suptitle("Cached hits: mathsite vs the old service (2 sync workers)")
        fig.tight_layout()
        path = folder / "hits.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    serving = results.get("serving")
    if serving:
        serving_path = _serving_plot(serving, folder, plt)
        if serving_path is not None:
            written.append(serving_path)
    if results.get("rss"):
        rss_path = rss.plot(results["rss"], folder, plt)
        if rss_path is not None:
            written.append(rss_path)
    if results.get("ceiling"):
        written.append(ceiling.plot(results["ceiling"], folder, plt))
    return written


def notes_for(results: dict[str, Any]) -> list[str]:
    """Return the run's observations worth a line in the report (checks, caveats)."""
    notes = []
    hits = results.get("hits")
    if hits:
        for key, check in hits["checks"].items():
            notes.append(f"{key}: hit body `{check['body']}` ({check['wire_bytes']} bytes)")
        errors = {k: v["errors"] for k, v in hits["summary"].items() if v["errors"]}
        if errors:
            notes.append(f"load generator connect errors/timeouts: {errors}")
    inproc = results.get("inprocess")
    if inproc:
        notes.append(
            "mpmath's closed form at 53 bits and mathsite's correctly rounded pi_double "
            f"differ by at most {inproc['pi_mpmath_vs_mathsite_max_ulps']:.0f} ulp over the "
            "n measured."
        )
    for name, text in results.get("errors", {}).items():
        last = text.strip().splitlines()[-1] if text.strip() else text
        notes.append(f"stage {name} FAILED: {last}")
    return notes


def _times(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}x"


def render_against_markdown(results: dict[str, Any]) -> str:
    """Return the report of ``--against`` (``bench.against``): one side-by-side section."""
    meta, against = results["meta"], results["against"]
    summary, labels = against["summary"], against["labels"]
    sides = summary["sides"]
    rounds = against["rounds"]
    dirty = "; +dirty: with uncommitted changes" if labels["A"].endswith("+dirty") else ""
    out = [
        "# mathsite benchmark report",
        "",
        f"Generated {meta['finished']} by `{meta['command']}` ({meta['mode']} mode) in "
        f"{meta.get('total_s', '?')} s. Machine: {meta['cpu_count']} CPUs ({meta['cpu_model']}), "
        f"Python {meta['python']}, load generator: {meta['load_tool']}."
        + (
            f" Before the first round other processes used {quiet:.0%} of the CPUs "
            "(`--wait-quiet` waits for them to go below 15 %)."
            if (quiet := meta.get("foreign_fraction_before_start")) is not None
            else ""
        ),
        "",
        f"## Side by side: {labels['A']} against {labels['B']}",
        "",
        f"A is this tree ({labels['A']}{dirty}); B is `{against['rev']}` = "
        f"{against['commit'][:12]}, exported with `git archive` and served "
        "from its own folder by the same Python, with its own granian settings "
        "(`launcher.server`) and `make run` defaults. Each side has its own data folder and "
        "its own database on one dedicated Redis. "
        f"`GET {against['path']}` answered from the cache on granian ({against['workers']} "
        f"workers, unpinned), `wrk -t{against['threads']} -c{against['connections']} "
        f"-d{against['seconds']:g}s --latency` once per side per round after a warm-up "
        f"({against['warmup_seconds']:g} s of wrk and a few requests per worker); "
        f"{len(rounds)} round(s), the order alternating (A B, then B A) to cancel drift, the "
        "constant WSGI app on this tree's granian settings last in each round as the ceiling. "
        "Figures are medians over the rounds.",
        "",
        "| side | revision | req/s | p50 ms | p99 ms | of the constant app | errors, non-2xx |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in ("A", "B", "floor"):
        side = sides[key]
        share = summary["of_floor"].get(key, 1.0)
        out.append(
            f"| {key} | {labels[key]} | {side['requests_per_second']:,.0f} | "
            f"{_fmt(side['p50_ms'])} | {_fmt(side['p99_ms'])} | {_times(share)} | "
            f"{side['errors']}, {side['non_2xx']} |"
        )
    per_round = ", ".join(_times(r) for r in summary["round_throughput_ratios"])
    per_round_p99 = ", ".join(_times(r) for r in summary["round_p99_ratios"])
    out += [
        "",
        f"A / B: throughput **{_times(summary['throughput_ratio'])}** (rounds: {per_round}), "
        f"p99 **{_times(summary['p99_ratio'])}** (rounds: {per_round_p99}). Throughput above "
        "1x and p99 below 1x mean A is the faster; the spread of the rounds' ratios is the "
        "noise to read a difference against.",
        "",
        "| round | order | A req/s | B req/s | A/B | A p99 ms | B p99 ms | constant app req/s "
        "| others' CPU |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, r in enumerate(rounds):
        cells = r["cells"]
        ratio = summary["round_throughput_ratios"][number]
        foreign = max(c.get("foreign_fraction", 0.0) for c in cells.values())
        out.append(
            f"| {r['round']} | {' '.join(r['order'])} | "
            f"{cells['A']['requests_per_second']:,.0f} | {cells['B']['requests_per_second']:,.0f} "
            f"| {_times(ratio)} | {_fmt(cells['A']['p99_ms'])} | {_fmt(cells['B']['p99_ms'])} | "
            f"{cells['floor']['requests_per_second']:,.0f} | up to {foreign:.0%} |"
        )
    out += [
        "",
        "Others' CPU: the largest share of the machine's CPU time that processes outside the "
        "benchmark used during one of the round's measurements.",
        "",
    ]
    settings = against.get("granian_settings", {})
    if settings:
        if settings.get("A") == settings.get("B"):
            text = ", ".join(f"`{k}={v}`" for k, v in settings["A"].items())
            out += [f"granian settings, the same for A and B: {text}.", ""]
        else:
            for key in ("A", "B"):
                text = ", ".join(f"`{k}={v}`" for k, v in settings.get(key, {}).items())
                out += [f"granian settings of {key}: {text}.", ""]
    unlearned = [
        f"round {r['round']} {key} ({c['check']['logged_by_django']})"
        for r in rounds
        for key, c in r["cells"].items()
        if c.get("check", {}).get("front_answered") is False
    ]
    if unlearned:
        out += [
            "After the warm-up, Django still answered some of the check's requests (a worker "
            "whose WSGI front had not yet seen two hits; those requests teach it, before the "
            f"measured run): {', '.join(unlearned)}.",
            "",
        ]
    return "\n".join(out)
