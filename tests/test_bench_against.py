"""``python -m bench.run --against REV`` (bench/against.py): this tree beside another revision.

The pieces without timing: git revision resolution (against git itself),
the export of a revision, the alternating order of the rounds, the medians
and ratios (against arithmetic done here), the report section, the refusal
of a checkout that cannot serve, and the command line's checks. Then, live
(``slow``, about 15 s, needs wrk and git): ``--against HEAD --smoke``, one
round of 1 s runs of both sides and the constant app, its results and
report, and nothing left in the temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import against, load, report, run
from bench.servers import BASE_DIR
from launcher import server as mathsite_server

needs_git = pytest.mark.skipif(
    shutil.which("git") is None or not (BASE_DIR / ".git").exists(), reason="not a git checkout"
)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(BASE_DIR), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@needs_git
def test_revisions_resolve_as_git_resolves_them():
    head = _git("rev-parse", "HEAD")
    commit, short = against.resolve_revision("HEAD")
    assert commit == head and len(commit) == 40
    assert head.startswith(short) and 4 <= len(short) < 40
    assert against.resolve_revision(short)[0] == head
    if _git("rev-list", "--count", "HEAD") != "1":
        assert against.resolve_revision("HEAD~1")[0] == _git("rev-parse", "HEAD^")
    with pytest.raises(against.AgainstError, match="no-such-rev: not a commit"):
        against.resolve_revision("no-such-rev")
    # a tree is not a commit
    with pytest.raises(against.AgainstError, match="not a commit"):
        against.resolve_revision(_git("rev-parse", "HEAD^{tree}"))


@needs_git
def test_export_holds_the_revisions_files_and_is_removed_afterwards(tmp_path):
    folder = tmp_path / "checkout"
    with against.exported(_git("rev-parse", "HEAD"), folder) as checkout:
        assert checkout == folder
        exported_file = checkout / "mathsite" / "settings.py"
        assert _git("hash-object", str(exported_file)) == _git(
            "rev-parse", "HEAD:mathsite/settings.py"
        )
        assert (checkout / "manage.py").exists()
        assert not (checkout / ".git").exists()
        assert not (checkout / "mathsite" / "__pycache__").exists()
        assert {"compute", "mathsite"} <= set(against.byte_compile(checkout))
        assert list((checkout / "mathsite" / "__pycache__").glob("settings.*.pyc"))
    assert not folder.exists()
    with pytest.raises(KeyboardInterrupt), against.exported("HEAD", folder):
        assert (folder / "manage.py").exists()
        raise KeyboardInterrupt  # Ctrl-C in the middle of a run
    assert not folder.exists()


def test_rounds_alternate_which_side_goes_first():
    assert against.round_orders(1) == [("A", "B", "floor")]
    orders = against.round_orders(4)
    assert orders == [
        ("A", "B", "floor"),
        ("B", "A", "floor"),
        ("A", "B", "floor"),
        ("B", "A", "floor"),
    ]
    assert sum(o[0] == "A" for o in orders) == sum(o[0] == "B" for o in orders) == 2
    with pytest.raises(ValueError, match="at least 1"):
        against.round_orders(0)


def _cell(rps: float, p99: float, *, p50: float = 0.5, errors: int = 0) -> dict:
    return {"requests_per_second": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors,
            "non_2xx": 0, "foreign_fraction": 0.04, "check": {"front_answered": True}}  # fmt: skip


A_RPS, A_P99 = [31_200.0, 29_800.0, 30_500.0], [6.1, 7.9, 6.6]
B_RPS, B_P99 = [27_900.0, 28_400.0, 26_100.0], [8.0, 7.2, 9.4]
FLOOR_RPS = [41_000.0, 40_000.0, 42_500.0]


def _rounds() -> list[dict]:
    orders = against.round_orders(3)
    return [
        {"round": i + 1, "order": list(orders[i]),
         "cells": {"A": _cell(A_RPS[i], A_P99[i], errors=i), "B": _cell(B_RPS[i], B_P99[i]),
                   "floor": _cell(FLOOR_RPS[i], 3.0)}}
        for i in range(3)
    ]  # fmt: skip


def test_summary_takes_medians_over_rounds_and_ratios_of_them():
    summary = against.summarize(_rounds())
    a, b, floor = (summary["sides"][k] for k in ("A", "B", "floor"))
    assert a["requests_per_second"] == 30_500.0 and b["requests_per_second"] == 27_900.0
    assert a["p99_ms"] == 6.6 and b["p99_ms"] == 8.0
    assert floor["requests_per_second"] == 41_000.0
    assert a["errors"] == 0 + 1 + 2 and b["errors"] == 0 and a["rounds"] == 3
    assert summary["throughput_ratio"] == pytest.approx(30_500 / 27_900)
    assert summary["p99_ratio"] == pytest.approx(6.6 / 8.0)
    assert summary["round_throughput_ratios"] == pytest.approx(
        [31_200 / 27_900, 29_800 / 28_400, 30_500 / 26_100]
    )
    assert summary["round_p99_ratios"] == pytest.approx([6.1 / 8.0, 7.9 / 7.2, 6.6 / 9.4])
    assert summary["of_floor"]["A"] == pytest.approx(30_500 / 41_000)
    assert summary["of_floor"]["B"] == pytest.approx(27_900 / 41_000)
    # the median of the rounds' ratios need not be the ratio of the medians: both are kept
    assert statistics.median(summary["round_throughput_ratios"]) != pytest.approx(
        summary["throughput_ratio"]
    )
    # a side that served nothing gives no ratio rather than a division error
    broken = _rounds()
    for r in broken:
        r["cells"]["B"]["requests_per_second"] = 0.0
    assert str(against.summarize(broken)["throughput_ratio"]) == "nan"


def _results() -> dict:
    return {
        "meta": {"finished": "now", "command": "python -m bench.run --against HEAD~1",
                 "mode": "full", "total_s": 99.0, "cpu_count": 2, "cpu_model": "x",
                 "python": "3.11", "load_tool": "wrk"},
        "against": {"rev": "HEAD~1", "commit": "def5678" + "0" * 33, "short": "def5678",
                    "labels": {"A": "abc1234+dirty", "B": "HEAD~1 (def5678)",
                               "floor": "constant WSGI app"},
                    "path": "/fib/90", "connections": 32, "threads": 2, "seconds": 6.0,
                    "warmup_seconds": 2.0, "workers": 2, "rounds": _rounds(),
                    "summary": against.summarize(_rounds()),
                    "granian_settings": {"A": {"GRANIAN_WORKERS": "2"},
                                         "B": {"GRANIAN_WORKERS": "2"}, "floor": {}}},
    }  # fmt: skip


def test_report_names_both_revisions_and_gives_the_figures():
    text = report.render_against_markdown(_results())
    assert "## Side by side: abc1234+dirty against HEAD~1 (def5678)" in text
    assert "Before the first round" not in text  # no --wait-quiet: nothing measured
    assert "+dirty: with uncommitted changes" in text
    assert "`wrk -t2 -c32 -d6s --latency`" in text
    assert "| A | abc1234+dirty | 30,500 | 0.50 | 6.60 | 0.744x | 3, 0 |" in text
    assert "| B | HEAD~1 (def5678) | 27,900 | 0.50 | 8.00 | 0.680x | 0, 0 |" in text
    assert "| floor | constant WSGI app | 41,000 | 0.50 | 3.00 | 1.000x | 0, 0 |" in text
    assert "A / B: throughput **1.093x** (rounds: 1.118x, 1.049x, 1.169x)" in text
    assert "p99 **0.825x**" in text
    assert "| 2 | B A floor | 29,800 | 28,400 | 1.049x | 7.90 | 7.20 | 40,000 | up to 4% |" in text
    assert "granian settings, the same for A and B: `GRANIAN_WORKERS=2`." in text
    assert "Django still answered" not in text
    results = _results()
    results["against"]["rounds"][1]["cells"]["B"]["check"] = {
        "front_answered": False, "logged_by_django": 2
    }  # fmt: skip
    results["meta"]["foreign_fraction_before_start"] = 0.128
    text = report.render_against_markdown(results)
    assert "before the measured run): round 2 B (2)." in text
    assert "Before the first round other processes used 13% of the CPUs" in text


def test_default_output_folders():
    assert against.output_folder("def5678", smoke=False) == run.RESULTS_DIR / "against-def5678"
    assert against.output_folder("def5678", smoke=True) == (
        run.RESULTS_DIR / "tmp" / "against-def5678"
    )


def test_a_checkout_answers_with_its_own_mathsite_server():
    launcher = against.CheckoutLauncher(BASE_DIR, env=run.base_env(), label="this tree")
    env = {"PATH": "/usr/bin", "GRANIAN_WORKERS": "2"}
    assert launcher.server_environment(env) == mathsite_server.server_environment(env)
    assert launcher.command("x.wsgi:app") == mathsite_server.command("x.wsgi:app")
    answer = launcher.ask(env)
    assert Path(answer["mathsite"]).resolve().parent == (BASE_DIR / "mathsite").resolve()
    assert answer["wsgi"] is True


def test_a_checkout_without_mathsite_server_is_refused_with_a_reason(tmp_path):
    (tmp_path / "mathsite").mkdir()
    (tmp_path / "mathsite" / "__init__.py").write_text("")
    launcher = against.CheckoutLauncher(tmp_path, env=run.base_env(), label="--against old")
    with pytest.raises(against.AgainstError, match=r"--against old cannot be served.*server"):
        launcher.ask({})
    empty = tmp_path / "empty"
    empty.mkdir()
    launcher = against.CheckoutLauncher(empty, env=run.base_env(), label="--against none")
    with pytest.raises(against.AgainstError, match="No module named 'mathsite'"):
        launcher.ask({})


def test_command_line_checks(capsys):
    for argv in (["--rounds", "2"], ["--against", "HEAD", "--rounds", "0"],
                 ["--against", "HEAD", "--only", "serving"]):  # fmt: skip
        with pytest.raises(SystemExit) as stopped:
            run.main(argv)
        assert stopped.value.code == 2
    assert "--rounds goes with --against" in capsys.readouterr().err


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("mathsite-bench-against-*")}


@pytest.mark.slow
@needs_git
@pytest.mark.skipif(not load.have_wrk(), reason="wrk is not installed")
def test_against_head_smoke_serves_both_sides_and_reports(tmp_path):
    before = _leftovers()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--against", "HEAD", "--smoke",
         "--out", str(tmp_path)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    side_by_side = results["against"]
    assert side_by_side["commit"] == _git("rev-parse", "HEAD")
    assert side_by_side["labels"]["A"].startswith(_git("rev-parse", "--short", "HEAD"))
    (only,) = side_by_side["rounds"]
    assert only["order"] == ["A", "B", "floor"]
    for key in ("A", "B", "floor"):
        cell = only["cells"][key]
        assert cell["requests_per_second"] > 100, (key, cell)
        assert cell["errors"] == 0 and cell["non_2xx"] == 0
        assert cell["check"]["status"] == 200 and cell["check"]["cached"] is True
    # the WSGI front's check ran for both mathsites (whether it had learned after the
    # smoke's tiny warm-up depends on which worker took which request), not for the constant app
    assert isinstance(only["cells"]["A"]["check"]["front_answered"], bool)
    assert isinstance(only["cells"]["B"]["check"]["front_answered"], bool)
    assert "front_answered" not in only["cells"]["floor"]["check"]
    summary = side_by_side["summary"]
    assert summary["throughput_ratio"] == pytest.approx(
        only["cells"]["A"]["requests_per_second"] / only["cells"]["B"]["requests_per_second"]
    )
    text = (tmp_path / "report.md").read_text()
    assert f"## Side by side: {side_by_side['labels']['A']} against HEAD (" in text
    assert "A/B throughput" in done.stdout
    assert _leftovers() <= before  # the checkout and the temporary folder are gone


def test_without_wrk_the_mode_says_so_before_starting_anything(monkeypatch):
    monkeypatch.setattr(load, "have_wrk", lambda: False)
    with pytest.raises(against.AgainstError, match="needs wrk"):
        against.benchmark_against(
            against.Config.smoke_config(), rev="HEAD", rounds=1, wait_quiet=0, keep=False
        )
