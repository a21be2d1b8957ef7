"""Load generation for the cached-hit throughput stage: wrk, or a Python fallback.

``wrk`` (Debian package ``wrk``) is the load generator of record: one
thread, a fixed number of connections, a fixed duration, latency
percentiles from its ``--latency`` report. Where wrk is missing, a Python
generator (asyncio, several processes, raw sockets) gives the same figures
at a lower ceiling; the report names which one ran.

    >>> parse_wrk(SAMPLE_WRK)["requests_per_second"]
    5132.4
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .client import HOST, request_bytes
from .servers import pinned
from .stats import percentile

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = re.compile(r"([0-9.]+)(us|ms|s|m)\b")

SAMPLE_WRK = """\
Running 10s test @ http://127.0.0.1:8000/pi/100
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.21ms    1.02ms  19.50ms   90.12%
    Req/Sec     5.16k   210.33     5.50k    70.00%
  Latency Distribution
     50%    6.10ms
     75%    6.50ms
     90%    7.01ms
     99%    9.87ms
  51324 requests in 10.00s, 12.34MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
  Non-2xx or 3xx responses: 2
Requests/sec:   5132.40
Transfer/sec:      1.23MB
"""


@dataclass
class LoadResult:
    """Throughput and latency of one load run (latencies in milliseconds)."""

    tool: str
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int

    def as_dict(self) -> dict[str, object]:
        """Return the fields as a plain dict (for the results file)."""
        return asdict(self)


def _ms(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, float]:
    """Return requests/s, latency percentiles (ms), request and error counts from wrk output.

    Raise ValueError if the output lacks the throughput line (wrk failed).
    """
    found = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if found is None:
        raise ValueError("wrk output has no Requests/sec line:\n" + output)
    result: dict[str, float] = {"requests_per_second": float(found[1])}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE):
        result[f"p{pct}_ms"] = _ms(value)
    total = re.search(r"(\d+) requests in", output)
    result["requests"] = float(total[1]) if total else 0.0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    # Sync gunicorn closes every connection after its response; wrk can count
    # such a close as a read error although the response arrived. Timeouts
    # and connect errors are the real failures.
    result["errors"] = float(int(errors[1]) + int(errors[4])) if errors else 0.0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = float(non_2xx[1]) if non_2xx else 0.0
    return result


def have_wrk() -> bool:
    """Return True if the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    cpus: Sequence[int] | None = None,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> LoadResult:
    """Run wrk against ``url`` (on 127.0.0.1) and return its figures.

    ``headers`` are added to every request (``{"Connection": "close"}``: a
    client that closes each connection after its response). ``script`` is a
    wrk Lua script choosing each request (``bench.rss``), given
    ``script_args``.
    """
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError("the benchmark only sends traffic to 127.0.0.1")
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    command = pinned(
        [
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "5s", "--latency", *extra,
            *(["--script", str(script)] if script else []), url,
            *(["--", *script_args] if script_args else []),
        ],
        cpus,
    )  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    figures = parse_wrk(done.stdout)
    return LoadResult(
        tool="wrk",
        requests_per_second=figures["requests_per_second"],
        p50_ms=figures.get("p50_ms", float("nan")),
        p90_ms=figures.get("p90_ms", float("nan")),
        p99_ms=figures.get("p99_ms", float("nan")),
        requests=int(figures["requests"]),
        errors=int(figures["errors"]),
        non_2xx=int(figures["non_2xx"]),
    )


# --- Python fallback ------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (head and ``Content-Length`` body); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _one_connection(
    port: int, data: bytes, deadline: float, latencies: list[float], counts: dict[str, int]
) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(data)
            await writer.drain()
            status = await read_response(reader)
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        if not 200 <= status < 400:
            counts["non_2xx"] += 1


def _load_process(port: int, path: str, connections: int, seconds: float, queue) -> None:  # noqa: ANN001
    data = request_bytes(path, port)
    latencies: list[float] = []
    counts = {"errors": 0, "non_2xx": 0}

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_one_connection(port, data, deadline, latencies, counts) for _ in range(connections))
        )

    asyncio.run(main())
    queue.put((latencies, counts))


def run_python(
    port: int,
    path: str,
    *,
    connections: int,
    seconds: float,
    processes: int = 2,
    cpus: Sequence[int] | None = None,
) -> LoadResult:
    """Load ``path`` with ``connections`` connections spread over ``processes`` processes."""
    import os

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    share = [connections // processes + (i < connections % processes) for i in range(processes)]
    workers = [
        context.Process(target=_load_process, args=(port, path, c, seconds, queue))
        for c in share
        if c
    ]
    for worker in workers:
        worker.start()
        if cpus:
            os.sched_setaffinity(worker.pid, set(cpus))
    latencies: list[float] = []
    errors = non_2xx = 0
    for _ in workers:
        lat, counts = queue.get(timeout=seconds + 60)
        latencies.extend(lat)
        errors += counts["errors"]
        non_2xx += counts["non_2xx"]
    for worker in workers:
        worker.join(timeout=10)
    return LoadResult(
        tool=f"python ({processes} processes)",
        requests_per_second=len(latencies) / seconds,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        requests=len(latencies),
        errors=errors,
        non_2xx=non_2xx,
    )
