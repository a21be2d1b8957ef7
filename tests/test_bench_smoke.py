"""Smoke test of the benchmark's pure-Python parts (bench/): no servers, no wrk, < 1 s.

The full benchmark (``make bench``, ``python -m bench.run --smoke`` for a
tiny run of every stage) needs gunicorn, wrk and Flask; this test covers
what its figures rest on: parsing wrk's report, the raw HTTP client's byte
counting, the in-process limit (checked against independent arithmetic),
the verdicts against the issue's targets and the report rendering, the
serving stage's verdicts and tables, and (live, a few seconds) the granian
server class serving the constant WSGI app.
"""

from __future__ import annotations

import math
import socket
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from bench import ceiling, client, load, profile, report, run, servers, serving, stages, thread_cpu
from launcher import server as mathsite_server
from tests.support.servers import wait_until


def test_parse_wrk_reads_throughput_percentiles_and_errors():
    figures = load.parse_wrk(load.SAMPLE_WRK)
    assert figures["requests_per_second"] == 5132.40
    assert figures["p50_ms"] == 6.10
    assert figures["p99_ms"] == 9.87
    assert figures["requests"] == 51324
    assert figures["non_2xx"] == 2
    # read errors are closes by sync gunicorn, not failures; timeouts are
    assert figures["errors"] == 0
    other = load.SAMPLE_WRK.replace("9.87ms", "1.20s").replace("6.10ms", "850.00us")
    other = other.replace("timeout 0", "timeout 4")
    figures = load.parse_wrk(other)
    assert figures["p99_ms"] == 1200.0
    assert math.isclose(figures["p50_ms"], 0.85)
    assert figures["errors"] == 4


def test_read_reply_counts_bytes_and_reads_cached_flag():
    body = b'{"cached":true,"result":55,"n":10}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    head %= len(body)
    server, peer = socket.socketpair()
    writer = threading.Thread(target=lambda: server.sendall(head + body))
    writer.start()
    reply = client.read_reply(peer, started=0.0)
    writer.join()
    server.close()
    peer.close()
    assert reply.status == 200
    assert reply.body == body
    assert reply.wire_bytes == len(head) + len(body)
    assert reply.header_bytes == len(head)
    assert reply.cached is True
    assert reply.headers["content-type"] == "application/json"
    # the burst client's completeness check: headers + Content-Length, once the headers are in
    assert client.response_size((head + body)[:10]) is None
    assert client.response_size(bytearray(head + body[:3])) == len(head) + len(body)
    assert client.parse_complete(head + body[:3], 0.0) is None
    assert client.parse_complete(head + body, 0.0).body == body


def test_inprocess_limit_matches_independent_arithmetic():
    config = stages.Config(
        pi_ns=(10**3, 10**18), fib_ns=(10, 1000), big_n=1000, inprocess_repeats=1
    )
    result = stages.stage_inprocess(stages.Context(config=config, log=lambda _text: None))
    assert [row["n"] for row in result["pi"]] == [10**3, 10**18]
    assert [row["n"] for row in result["fib"]] == [10, 1000]
    assert all(row["mpmath_ms"] > 0 and row["mathsite_ms"] > 0 for row in result["pi"])
    assert result["pi_mpmath_vs_mathsite_max_ulps"] <= 1
    # fib by plain integer iteration, pi(1000) from the exact rational partial sum
    a, b = 0, 1
    for _ in range(1000):
        a, b = b, a + b
    assert stages.gmpy2_fib_digits(1000) == str(a)
    exact = sum(Fraction(1, i * i) for i in range(1, 1000))
    assert abs(stages.mpmath_pi_double(1000) - math.sqrt(6 * exact)) <= 2 * math.ulp(math.pi)


def _results(*, ratio: float, cached_false: int, pi_cold_ms: float) -> dict:
    hit = {"requests_per_second": 1000.0 * ratio, "p50_ms": 3.0, "p99_ms": 8.0, "non_2xx": 0}
    old = {"requests_per_second": 1000.0, "p50_ms": 9.0, "p99_ms": 20.0, "non_2xx": 0}
    summary = {}
    for kind in ("pi", "fib"):
        summary[f"{kind} old"] = dict(old, errors=0, runs=[])
        summary[f"{kind} mathsite"] = dict(hit, errors=0, runs=[])
    alone = {key: {"p50_ms": 0.5, "p99_ms": 1.0} for key in summary}
    cold_row = {"median_ms": pi_cold_ms, "samples_ms": [], "ns": [], "anomalies": []}
    return {
        "config": {
            "connections": 32,
            "workers": 2,
            "big_n": 1000,
            "hit_seconds": 1,
            "hit_repeats": 1,
            "pi_hit_n": 100,
            "fib_hit_n": 90,
            "cold_repeats": 1,
            "old_slow_seconds": 1,
            "old_timeout": 1,
            "inprocess_repeats": 1,
            "big_samples": 1,
            "redis_samples": 1,
        },
        "meta": {
            "finished": "now",
            "command": "test",
            "mode": "smoke",
            "cpu_count": 2,
            "cpu_model": "x",
            "python": "3",
            "load_tool": "wrk",
            "server_cpus": [1],
            "client_cpus": [0],
        },
        "hits": {"tool": "wrk", "summary": summary, "single_client": alone, "checks": {}},
        "inprocess": {
            "pi": [{"n": 1000, "mpmath_ms": 0.04, "mathsite_ms": 0.02}],
            "fib": [{"n": 1000, "gmpy2_ms": 10.0, "gmpy2_fib_only_ms": 1.0}],
            "pi_mpmath_vs_mathsite_max_ulps": 0,
        },
        "cold": {
            "mathsite": {"pi": [dict(cold_row, n=1000)], "fib": [dict(cold_row, n=1000)]},
            "old": {
                "pi": {"rows": [{"n": 1000, "median_ms": 1.0}], "stop": None},
                "fib": {"rows": [], "stop": {"n": 1000, "reason": "HTTP 500"}},
            },
        },
        "big_hit": {
            "n": 1000,
            "digits": 209,
            "correct": True,
            "checks": {},
            "plain": {
                "median_ms": 2.0,
                "p90_ms": 2.0,
                "wire_bytes": 1,
                "header_bytes": 1,
                "body_bytes": 1,
            },
            "gzip": {
                "median_ms": 2.0,
                "p90_ms": 2.0,
                "wire_bytes": 1,
                "header_bytes": 1,
                "body_bytes": 1,
            },
            "redis_stored": {
                "key": "k",
                "bytes": 1,
                "median_ms": 0.1,
                "p90_ms": 0.1,
                "new_connection_median_ms": 0.2,
            },
            "redis_plain_size": {"bytes": 1, "median_ms": 0.1, "p90_ms": 0.1},
        },
        "burst": {
            "size": 32,
            "single_median_ms": 20.0,
            "burst_median_ms": 40.0,
            "max_cached_false": cached_false,
            "min_cached_false": cached_false,
            "all_answered": True,
            "singles": [],
            "bursts": [],
        },
    }


def test_verdicts_follow_the_issue_targets():
    verdicts = report.evaluate(_results(ratio=1.6, cached_false=1, pi_cold_ms=4.0))
    good = {v["target"]: v["met"] for v in verdicts}
    assert len(good) == 9
    assert all(good.values())
    bad = report.evaluate(_results(ratio=1.4, cached_false=2, pi_cold_ms=5.5))
    missed = [v["target"] for v in bad if not v["met"]]
    assert any(t.startswith("pi cached-hit throughput") for t in missed)
    assert any(t.startswith("fib cached-hit throughput") for t in missed)
    assert any(t.startswith("pi cold end-to-end") for t in missed)
    assert any(t.startswith("burst of 32") for t in missed)  # two computations
    assert len(missed) == 4
    # bound: 1.2 * (20 + 31 * 2 / 2) = 61.2 ms; 40 ms is within it
    text = report.render_markdown(_results(ratio=1.6, cached_false=1, pi_cold_ms=4.0))
    assert "| pi cached-hit throughput >= 1.5x the old service | 1.60x" in text
    assert "61.20 ms" in text
    # with one server core the 31 hits are served one after another: 1.2 * (20 + 31 * 2)
    assert "98.40 ms" in text


def test_profile_summary_shares():
    stacks = [
        "process 1:x;SyncWorker.handle (gunicorn/workers/sync.py:10);"
        "ResultFront.answer (compute/http/wsgi.py:5) 3",
        "SyncWorker.handle (gunicorn/workers/sync.py:10) 1",
    ]
    summary = profile.summarize(stacks)
    assert summary["samples"] == 4
    assert summary["buckets"]["gunicorn: whole request (accept to close)"] == 100.0
    assert summary["buckets"]["    ResultFront.answer"] == 75.0
    assert dict(summary["packages"]) == {"compute": 75.0, "gunicorn": 25.0}
    # the saved stacks lose the per-worker process frames; equal stacks merge
    collapsed = profile.collapse(
        [*stacks, "process 2:y;SyncWorker.handle (gunicorn/workers/sync.py:10) 2"]
    )
    assert sorted(collapsed.splitlines()) == [
        "SyncWorker.handle (gunicorn/workers/sync.py:10) 3",
        "SyncWorker.handle (gunicorn/workers/sync.py:10);"
        "ResultFront.answer (compute/http/wsgi.py:5) 3",
    ]


def test_granian_runs_mathsites_settings_for_any_app(tmp_path):
    web = servers.Granian(
        "floor", "bench.seed_service.floor:app", env={"PATH": "/usr/bin"}, log=tmp_path / "log"
    )
    web.port = 12345
    env = web.environment()
    assert env["GRANIAN_INTERFACE"] == "wsgi"
    assert env["GRANIAN_WORKERS"] == "2"
    assert env["GRANIAN_BLOCKING_THREADS"] == str(mathsite_server.BLOCKING_THREADS)
    assert (env["GRANIAN_HOST"], env["GRANIAN_PORT"]) == ("127.0.0.1", "12345")
    assert env["GRANIAN_WORKERS_KILL_TIMEOUT"] == "10"  # filled by launcher.server
    assert web.command()[-3:] == ["-m", "launcher.shared_listener", "bench.seed_service.floor:app"]
    more = servers.Granian(
        "floor", "bench.seed_service.floor:app", env={"GRANIAN_WORKERS": "7"},
        log=tmp_path / "log", workers=3, blocking_threads=9, cpus=[0],
    )  # fmt: skip
    assert more.environment()["GRANIAN_WORKERS"] == "3"  # the comparison's count wins
    assert more.environment()["GRANIAN_BLOCKING_THREADS"] == "9"
    assert more.command() == servers.pinned(mathsite_server.command(more.app), [0])


def _floor_server(tmp_path: Path) -> servers.Granian:
    """Return granian serving the constant app with mathsite's settings (not started)."""
    return servers.Granian(
        "floor", "bench.seed_service.floor:app", env=run.base_env(), log=tmp_path / "granian.log",
        metrics_dir=tmp_path / "metrics",
    )  # fmt: skip


@pytest.mark.slow
def test_granian_serves_the_constant_app_and_stops(tmp_path):
    web = _floor_server(tmp_path)
    with web:
        reply = client.fetch(web.port, "/fib/90")
        assert reply.status == 200
        assert reply.cached is True
        assert reply.headers["server"] == "granian"
        assert len(web.worker_pids()) == 2
    assert web.process.poll() is not None


@pytest.mark.slow
def test_thread_cpu_finds_each_workers_http_thread_and_counts_per_request(tmp_path):
    web = _floor_server(tmp_path)
    with web:  # up once one worker answers: the other may still be starting its runtime

        def every_worker_running() -> dict | None:
            snapshot = thread_cpu.snapshot(web.pid)
            io = sum(role == "io" for role, _ran, _slices in snapshot.values())
            return snapshot if io == len(web.worker_pids()) == 2 else None

        before = wait_until(every_worker_running, 30, interval=0.05)
        assert before, "both workers' HTTP threads within 30 s"
        io = [tid for tid, (role, _ran, _slices) in before.items() if role == "io"]
        workers = web.worker_pids()
        assert len(io) == len(workers) == 2  # one HTTP thread per worker, in that worker
        assert all(any(Path(f"/proc/{pid}/task/{tid}").exists() for pid in workers) for tid in io)
        assert before[web.pid][0] == "other"  # granian's main process
        for _ in range(200):
            assert client.fetch(web.port, "/fib/90").status == 200
        figures = thread_cpu.per_request(before, thread_cpu.snapshot(web.pid), 200)
    # Every request was read and written by an HTTP thread and answered by an app thread.
    assert figures["io_us"] > 0 and figures["app_us"] > 0
    assert figures["io_switches"] >= 0.5 and figures["app_switches"] >= 0.5
    parts = figures["io_us"] + figures["app_us"] + figures["other_us"]
    assert figures["total_us"] == pytest.approx(parts, abs=0.01)


def test_thread_cpu_per_request_counts_new_threads_from_zero_and_leaves_gone_ones_out():
    before = {1: ("io", 5_000, 4), 2: ("app", 1_000, 1), 3: ("app", 90_000, 9)}
    after = {1: ("io", 9_000, 8), 2: ("app", 3_000, 3), 4: ("app", 6_000, 2), 5: ("other", 500, 1)}
    figures = thread_cpu.per_request(before, after, 4)  # thread 3 ended, 4 and 5 are new
    assert figures["io_us"] == (9_000 - 5_000) / 1000 / 4
    assert figures["app_us"] == ((3_000 - 1_000) + 6_000) / 1000 / 4
    assert figures["app_switches"] == ((3 - 1) + 2) / 4
    assert figures["other_us"] == 500 / 1000 / 4
    assert figures["total_us"] == pytest.approx((4_000 + 8_000 + 500) / 1000 / 4)


def _serving(rps: dict[str, float], p99: float = 4.0) -> dict:
    def summary(value: float) -> dict:
        return {"requests_per_second": value, "p50_ms": 1.0, "p99_ms": p99, "errors": 0,
                "non_2xx": 0, "runs": []}  # fmt: skip

    cells = {key: summary(value) for key, value in rps.items()}
    where = {"server_cpus": [0, 1], "wrk_cpus": [0, 1], "redis_cpus": [0, 1], "headers": {}}
    result = {
        "path": "/fib/90", "connections": 32, "threads": 2, "seconds": 6.0, "repeats": 3,
        "warmup_seconds": 2.0, "workers": 2, "granian_settings": {"GRANIAN_WORKERS": "2"},
        "layouts": {"keep-alive": where, "close": dict(where, headers={"Connection": "close"})},
        "cells": {"keep-alive": cells, "close": cells},
        "checks": {"keep-alive granian mathsite": {"cached": True, "front_answered": True}},
        "skipped": {"pinned": "not pinned"},
    }  # fmt: skip
    result["targets"] = serving.evaluate(result)
    return result


def test_serving_verdicts_and_table():
    good = _serving(
        {"granian mathsite": 30_000, "gunicorn old": 2_000, "granian old": 3_750,
         "granian floor": 40_000, "gunicorn mathsite": 4_000, "gunicorn floor": 8_000},
    )  # fmt: skip
    verdicts = {v["key"]: v for v in good["targets"]}
    assert list(verdicts) == ["vs old gunicorn", "vs old granian", "vs floor granian", "p99"]
    assert verdicts["vs old gunicorn"]["value"] == 15.0
    assert verdicts["vs old gunicorn"]["met"] and verdicts["vs old gunicorn"]["goal_met"]
    assert verdicts["vs old granian"]["met"] and verdicts["vs old granian"]["goal_met"]  # 8x
    assert verdicts["vs floor granian"]["met"] and verdicts["vs floor granian"]["goal_met"]
    assert verdicts["p99"]["met"] and verdicts["p99"]["goal_met"]
    bad = _serving(
        {"granian mathsite": 16_000, "gunicorn old": 2_000, "granian old": 4_000,
         "granian floor": 40_000},
        p99=6.0,
    )  # fmt: skip
    verdicts = {v["key"]: v for v in bad["targets"]}
    assert not verdicts["vs old gunicorn"]["met"]  # 8x < 10x
    assert not verdicts["vs old granian"]["met"]  # 4x < 5x
    assert not verdicts["vs floor granian"]["met"]  # 0.4x < 0.6x
    assert verdicts["p99"]["met"] and not verdicts["p99"]["goal_met"]  # 6 ms: < 10, not < 5
    results = {
        "config": {"workers": 2, "big_n": 1000},
        "meta": {"finished": "now", "command": "test", "mode": "smoke", "cpu_count": 2,
                 "cpu_model": "x", "python": "3", "load_tool": "wrk"},
        "serving": good,
    }  # fmt: skip
    text = report.render_markdown(results)
    assert "## Targets (issue 4)" not in text  # only the serving stage ran
    assert "| server | mathsite | old service | constant WSGI app |" in text
    assert "| granian | 30,000 req/s, 1.00 / 4.00 ms | 3,750 req/s" in text
    assert "| gunicorn | 4,000 req/s, 1.00 / 4.00 ms | 2,000 req/s" in text
    assert "| 15.00x (30,000 vs 2,000 req/s) | **met** | met |" in text
    assert "Layout pinned not measured: not pinned." in text
    assert "![serving](serving.png)" in text


def test_only_takes_known_stage_names():
    assert run._stage_list("serving") == {"serving"}
    assert run._stage_list("hits, serving") == {"hits", "serving"}
    with pytest.raises(Exception, match="unknown stage"):
        run._stage_list("servin")


def test_fib_mod_stage_reference_and_report_section():
    # The stage checks bodies against its own matrix power: check that against
    # plain iteration and the test suite's reference first.
    from bench import fib_mod
    from tests.support.reference import fib_iterative, fib_mod_reference

    for n in range(200):
        for m in (1, 10, 97, 10**18):
            assert fib_mod.fib_mod_matrix(n, m) == fib_iterative(n) % m
    assert fib_mod.fib_mod_matrix(10**18, 10**18) == fib_mod_reference(10**18, 10**18)
    stage = {
        "n": 10**18, "mod": 10**18, "result": 5, "correct": True, "checks": {},
        "inprocess": {"median_us": 21.5, "best_us": 20.0},
        "cold": {"median_ms": 3.25, "samples_ms": [3.0, 3.5]},
        "hit": {"median_ms": 0.41, "p90_ms": 0.5},
    }  # fmt: skip
    results = {
        "config": {"workers": 2, "big_n": 1000},
        "meta": {"finished": "now", "command": "test", "mode": "smoke", "cpu_count": 2,
                 "cpu_model": "x", "python": "3", "load_tool": "wrk", "server_cpus": [1],
                 "client_cpus": [0]},
        "fib_mod": stage,
    }  # fmt: skip
    text = report.render_markdown(results)
    assert "## fib(n) mod M at n = M = 10**18 (issue 12)" in text
    assert "| `maths.fib_mod(10**18, 10**18)` in-process | 21.5 us |" in text
    assert "| cold request (computed, logged, cached) | 3.25 ms |" in text
    assert "| cached hit | 0.41 ms | p90 0.50 ms |" in text
    assert "fib_mod" in run.STAGES and run._stage_list("fib_mod") == {"fib_mod"}


def test_attack_summaries_and_refusal_reasons():
    import gzip

    from bench import attack

    samples = [(10.0 + i / 100, float(i % 10), 200) for i in range(300)]
    during = attack.summarize_hits(samples, 11.0, 12.0)
    assert during["requests"] == 100 and during["max_ms"] == 9.0 and during["non_200"] == 0
    budget = b'{"detail":"This client\'s compute budget of 1000 digits per hour is spent"}'
    assert attack.refusal_reason(429, budget) == "budget"
    assert attack.refusal_reason(429, gzip.compress(budget), "gzip") == "budget"
    busy = b'{"detail":"... (COMPUTE_CONCURRENCY_PER_CLIENT); retry"}'
    assert attack.refusal_reason(429, busy) == "client_busy"
    assert attack.refusal_reason(429, b'{"detail":"Request was throttled."}') == "rate"
    assert attack.refusal_reason(503, b"") == "busy"
    assert attack.refusal_reason(200, b"{}") is None


def _ceiling_row(
    workers: int,
    threads: int,
    mathsite: float,
    replay: float,
    floor: float,
    p99: tuple[float, float, float] = (4.0, 3.5, 3.0),
) -> dict:
    sides = {
        app: {"requests_per_second": rps, "p50_ms": 0.5, "p99_ms": ms, "errors": 0,
              "non_2xx": 0, "runs": []}
        for app, rps, ms in zip(("mathsite", "replay", "floor"), (mathsite, replay, floor), p99,
                                strict=True)
    }  # fmt: skip
    return {
        "workers": workers, "threads": threads, "label": f"{workers} workers x {threads} threads",
        "sides": sides, "checks": {}, "ratio": mathsite / floor, "ratio_per_round": [],
        "p99_ratio": p99[0] / p99[2], "ratio_to_replay": mathsite / replay,
        "replay_to_floor": replay / floor, "p99_ratio_to_replay": p99[0] / p99[1],
    }  # fmt: skip


def test_ceiling_layouts_verdicts_and_section():
    shipped = ceiling.shipped_layout(2)
    assert shipped == ceiling.Layout(2, mathsite_server.BLOCKING_THREADS)
    found = ceiling.layouts(shipped, smoke=False)
    assert found[0] == shipped and len(found) == len(set(found))
    assert {layout.threads for layout in found if layout.workers == 2} == {1, 2, 4, 8}
    assert {layout.workers for layout in found if layout.threads == shipped.threads} == {1, 2, 4}
    assert ceiling.layouts(shipped, smoke=True) == [shipped]
    stage = {
        "shipped": {"workers": 2, "threads": shipped.threads},
        "layouts": [_ceiling_row(2, shipped.threads, 45_000, 47_000, 50_000)]
        + [_ceiling_row(2, t, 30_000, 40_000, 50_000, (9.0, 3.0, 3.0)) for t in (1, 8)]
        + [_ceiling_row(w, shipped.threads, 20_000, 25_000, 30_000) for w in (1, 4)],
        "cold": {
            "pi": {"median_ms": 1.4, "p90_ms": 1.6, "count": 200},
            "fib": {"median_ms": 14.0, "p90_ms": 15.0, "count": 15},
            "gmpy2_fib_ms": 8.0,
        },
        "rounds": 3, "seconds": 6.0, "connections": 32, "path": "/fib/90",
        "replay_headers": ["Content-Type", "ETag"],
    }  # fmt: skip
    verdicts = ceiling.verdicts(stage)
    assert [v["met"] for v in verdicts] == [True, True, True, True]  # 0.9, 1.33x, 14 <= 15, 1.4
    stage["layouts"][0] = _ceiling_row(2, shipped.threads, 44_000, 47_000, 50_000, (5.0, 4, 3.0))
    stage["cold"]["fib"]["median_ms"] = 15.01  # bound 1.5 * 8 + 3 = 15
    stage["cold"]["pi"]["median_ms"] = 1.51
    assert [v["met"] for v in ceiling.verdicts(stage)] == [False, False, False, False]
    text = "\n".join(ceiling.markdown(stage))
    assert "| 2 workers x 4 threads | 44,000 | 47,000 | 50,000 | 0.880 | 0.936 |" in text
    assert "15.01 ms vs bound 15.00 ms" in text
    assert "NOT MET" in text
    assert "Server CPU per hit" not in text  # no layout measured it
    for app, total in (("mathsite", 36.0), ("replay", 32.5), ("floor", 27.25)):
        cpu = {"total_us": total, "io_us": 16.0, "app_us": total - 18.0, "other_us": 2.0,
               "io_switches": 0.8, "app_switches": 1.25, "other_switches": 0.1}  # fmt: skip
        stage["layouts"][0]["sides"][app]["cpu"] = cpu
    text = "\n".join(ceiling.markdown(stage))
    row = "| 2 workers x 4 threads | 36.0 / 32.5 / 27.2 | 16.0 / 16.0 / 16.0 | 18.0 / 14.5 / 9.2 |"
    assert row + " 1.25 / 1.25 / 1.25 |" in text
    assert text.count("| 1 workers x 4 threads |") == 1  # not measured: not in the CPU table
