"""Where a cached hit's time goes: py-spy on mathsite's workers under hit load.

``profile_hits`` runs the hit load once more per route while ``py-spy
record --gil`` samples the gunicorn master and its workers
(``--subprocesses``), so only samples running Python code count (time
blocked in socket calls, or waiting for the CPU, releases the GIL). Then
``summarize`` turns the collapsed stacks into shares of that Python time:
per part of the request (gunicorn, Django's handler, each middleware, the
hot path, the cache), per package and per function (self time).

    >>> summarize(["a (x/m.py:1);b (y/n.py:2) 3", "a (x/m.py:1) 1"])["inclusive"][0]
    ('a (x/m.py)', 100.0)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import stages

# Parts of a hit, by the frame that marks them ("Qualified.name (package/file.py"):
# a sample counts for a part when that frame is anywhere on its stack.
BUCKETS = {
    "gunicorn: whole request (accept to close)": "SyncWorker.handle (gunicorn/workers/sync.py",
    "  ipaddress parsing (gunicorn's trusted-proxy check)": "(ipaddress.py",
    "  gunicorn: parse the request": "Parser.__next__ (gunicorn/http/parser.py",
    "  gunicorn: environ (create)": "create (gunicorn/http/wsgi.py",
    "  gunicorn: write headers and body": "Response.write (gunicorn/http/wsgi.py",
    "  gunicorn: access log (Logger.access)": "Logger.access (gunicorn/glogging.py",
    "  gunicorn: close_graceful": "close_graceful (gunicorn/util.py",
    "  mathsite WSGI front (ResultFront.__call__)": "ResultFront.__call__ (compute/http/wsgi.py",
    "    ResultFront.answer": "ResultFront.answer (compute/http/wsgi.py",
    "      hit.answer (the hit protocol)": "answer (compute/http/hit.py",
    "        parse_query": "parse_query (compute/domain/query.py",
    "        QueryDict (query string)": "QueryDict.__init__ (django/http/request.py",
    "        ResultCache.get": "ResultCache.get (compute/cache/store.py",
    "        Redis round trip (redis-py)": "(redis/",
    "        result_reply": "result_reply (compute/http/hit.py",
    "  Django: WSGIHandler.__call__ (all of Django)": "WSGIHandler.__call__ (django/core/",
    "    WSGIRequest.__init__": "WSGIRequest.__init__ (django/core/handlers/wsgi.py",
    "    signals (request_started/finished)": "Signal.send (django/dispatch/dispatcher.py",
    "    response.close (close caches and db)": "HttpResponseBase.close (django/http/",
    "    middleware chain (get_response)": "BaseHandler.get_response (django/core/",
    "      mathsite RequestMiddleware: log line": "RequestMiddleware.log (mathsite/logging.py",
    "      metrics (prometheus_client)": "(prometheus_client/",
    "      WhiteNoiseMiddleware.__call__": "WhiteNoiseMiddleware.__call__ (whitenoise/",
    "      SecurityMiddleware.process_response": "SecurityMiddleware.process_response (django/",
    "      GZipMiddleware.process_response": "GZipMiddleware.process_response (django/",
    "      XFrameOptionsMiddleware.process_response": "XFrameOptionsMiddleware.process_response",
    "      ResultViewSet.retrieve (the DRF view)": "ResultViewSet.retrieve (compute/api/views.py",
    "    Python logging (any)": "Logger._log (logging/__init__.py",
}
_LINE = re.compile(r":\d+\)$")


def _package(frame: str) -> str:
    """Return the top-level package of a frame ("x (django/http/response.py)" -> django)."""
    inside = frame[frame.rfind("(") + 1 :]
    return inside.split("/", 1)[0] if "/" in inside else "stdlib/other"


def summarize(lines: Iterable[str], top: int = 25) -> dict[str, Any]:
    """Return inclusive/self shares (% of samples), parts and packages from raw py-spy stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    stacks: list[tuple[list[str], int]] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stack_text, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_LINE.sub(")", f) for f in stack_text.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        stacks.append((frames, count))
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
    share = 100.0 / total if total else 0.0
    buckets = {}
    for label, marker in BUCKETS.items():
        hits = sum(c for frames, c in stacks if any(marker in f for f in frames))
        buckets[label] = hits * share
    return {
        "samples": total,
        "inclusive": [(f, c * share) for f, c in inclusive.most_common(top)],
        "self": [(f, c * share) for f, c in own.most_common(top)],
        "packages": [(p, c * share) for p, c in packages.most_common()],
        "buckets": buckets,
    }


def collapse(lines: Iterable[str]) -> str:
    """Return py-spy's raw stacks without the per-process frames, identical stacks merged.

    The process frames carry each worker's whole command line, which makes
    the file ten times larger and splits one stack per worker.
    """
    merged: Counter[str] = Counter()
    for line in lines:
        stack_text, _, count_text = line.strip().rpartition(" ")
        if not stack_text:
            continue
        frames = [f for f in stack_text.split(";") if not f.startswith("process ")]
        if frames:
            merged[";".join(frames)] += int(count_text)
    return "".join(f"{stack} {count}\n" for stack, count in merged.most_common())


def _py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def profile_hits(ctx: stages.Context, folder: Path, seconds: float = 8.0) -> dict[str, Any]:
    """Sample mathsite's workers while the hit load runs on /pi/ and /fib/; summarize."""
    assert ctx.mathsite is not None and ctx.mathsite.process is not None
    spy = _py_spy()
    if spy is None:
        return {"markdown": ["py-spy is not installed (pip install -r requirements-bench.txt)."]}
    cfg = ctx.config
    markdown: list[str] = []
    summaries = {}
    raws: dict[str, str] = {}
    for kind, path in (("pi", f"/pi/{cfg.pi_hit_n}"), ("fib", f"/fib/{cfg.fib_hit_n}")):
        raw = folder / f"profile-{kind}.txt"
        spy_proc = subprocess.Popen(
            [
                spy, "record", "--pid", str(ctx.mathsite.process.pid), "--subprocesses",
                "--duration", str(int(seconds) + 1), "--rate", "500", "--format", "raw",
                "--function", "--gil", "--nonblocking", "--output", str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            result = stages._load(ctx, ctx.mathsite, path, seconds)
        finally:
            try:
                spy_proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait()
        if not raw.exists():
            markdown.append(f"py-spy produced no profile for {kind} (ptrace not permitted?).")
            continue
        raw_text = raw.read_text()
        raws[kind] = collapse(raw_text.splitlines())
        summary = summarize(raw_text.splitlines())
        summary["requests_per_second_while_sampled"] = result.requests_per_second
        summaries[kind] = summary
        per_request_us = (
            summary["samples"] / 500 / seconds / result.requests_per_second * 1e6
            if result.requests_per_second
            else 0.0
        )
        summary["python_us_per_request"] = per_request_us
        markdown += [
            f"### `{path}`: {summary['samples']:,} samples holding the GIL (500 Hz, "
            f"{cfg.workers} workers, {seconds:g} s, {result.requests_per_second:,.0f} req/s "
            f"while sampled: about {per_request_us:.0f} us of Python per request)",
            "",
            "| part of the request | share of Python time |",
            "| --- | ---: |",
        ]
        markdown += [
            f"| {label.replace('  ', '&nbsp;&nbsp;')} | {pct:.1f}% |"
            for label, pct in summary["buckets"].items()
            if pct >= 0.1
        ]
        markdown += ["", "| package (self time) | share |", "| --- | ---: |"]
        markdown += [f"| {name} | {pct:.1f}% |" for name, pct in summary["packages"][:10]]
        markdown += ["", "| function (self time) | share |", "| --- | ---: |"]
        markdown += [f"| `{name}` | {pct:.1f}% |" for name, pct in summary["self"][:15]]
        markdown.append("")
    # The collapsed stacks themselves go next to the report (flamegraph input).
    return {"summaries": summaries, "markdown": markdown, "raw": raws}
