"""The measurements of issue 4, one function per stage, each returning plain data.

Stages (run in this order by ``bench.run``):

- ``inprocess``: the limit, no HTTP: gmpy2 fib + decimal digits, mpmath's
  closed form pi**2/6 - psi(1, n) at double precision, and mathsite's own
  ``compute.algorithms`` functions.
- ``hits``: cached-hit throughput and latency, mathsite vs the old service,
  same gunicorn settings, wrk (or the Python fallback), fixed connections.
- ``cold``: one request that has to compute, against n, for both services.
  mathsite gets a fresh n for every sample (n, n+1, ... never requested
  before in the run); the old service gets its hashes deleted before each.
- ``big_hit``: fib(1,000,000) served from the cache, with and without gzip,
  against a raw Redis GET of the stored value and of a value the size of the
  plain body.
- ``burst``: 32 concurrent cold requests for one fresh large value against
  one cold request.

Every request goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import math
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gmpy2
import mpmath

from compute import algorithms

from . import client, load
from .servers import BASE_DIR, Gunicorn, RedisServer, pinned
from .stats import median, percentile, timed_ms


@dataclass
class Config:
    """Sizes and durations of one run (``full`` or ``smoke``)."""

    connections: int = 32
    workers: int = 2
    hit_seconds: float = 10.0
    hit_warmup_seconds: float = 2.0
    hit_repeats: int = 3
    pi_hit_n: int = 100
    fib_hit_n: int = 90
    pi_ns: tuple[int, ...] = tuple(10**k for k in range(3, 19))
    fib_ns: tuple[int, ...] = (
        10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000,
    )  # fmt: skip
    cold_repeats: int = 5
    old_timeout: float = 10.0
    old_slow_seconds: float = 1.0
    big_n: int = 1_000_000
    big_samples: int = 40
    redis_samples: int = 200
    burst_size: int = 32
    burst_repeats: int = 3
    inprocess_repeats: int = 7
    alone_samples: int = 200
    settle_seconds: float = 75.0
    wsgi_batch: int = 500
    wsgi_batches: int = 9
    smoke: bool = False

    @classmethod
    def smoke_config(cls) -> Config:
        """Return the tiny configuration: every stage, minimal sizes (well under a minute)."""
        return cls(
            hit_seconds=1.0,
            hit_warmup_seconds=0.0,
            hit_repeats=1,
            pi_ns=(10**3, 10**6, 10**18),
            fib_ns=(10, 1_000, 100_000),
            cold_repeats=2,
            old_timeout=1.0,
            old_slow_seconds=0.5,
            big_n=100_000,
            big_samples=5,
            redis_samples=20,
            burst_repeats=1,
            inprocess_repeats=3,
            alone_samples=30,
            settle_seconds=0.0,
            wsgi_batch=100,
            wsgi_batches=3,
            smoke=True,
        )


@dataclass
class Context:
    """What the stages share: config, servers, CPU layout and the n already used."""

    config: Config
    redis: RedisServer | None = None
    mathsite: Gunicorn | None = None
    old: Gunicorn | None = None
    floor: Gunicorn | None = None
    client_cpus: Sequence[int] | None = None
    mathsite_db: int = 1
    old_db: int = 2
    raw_db: int = 3
    old_prefix: str = "seed-bench"
    used: dict[str, set[int]] = field(default_factory=lambda: {"pi": set(), "fib": set()})
    log: Callable[[str], None] = print

    def fresh(self, kind: str, base: int, maximum: int) -> int:
        """Return an n near ``base`` not requested before in this run (upwards, else down)."""
        used = self.used[kind]
        for step in range(0, 10_000):
            for n in (base + step, base - step):
                if 0 <= n <= maximum and n not in used:
                    used.add(n)
                    return n
        raise RuntimeError(f"no fresh n near {base}")


PI_MAX = 10**18
FIB_MAX = 1_000_000


# --- in-process limit ---------------------------------------------------------------


def mpmath_pi_double(n: int) -> float:
    """Return sqrt(6 * (pi**2/6 - psi(1, n))) evaluated by mpmath at double precision."""
    with mpmath.workprec(53):
        return float(mpmath.sqrt(6 * (mpmath.pi**2 / 6 - mpmath.psi(1, n))))


def gmpy2_fib_digits(n: int) -> str:
    """Return fib(n) in decimal by GMP (the limit for a fib request)."""
    return gmpy2.fib(n).digits(10)


def stage_inprocess(ctx: Context) -> dict[str, Any]:
    """Time the in-process limit and mathsite's own algorithms, per n (ms, medians)."""
    cfg = ctx.config
    repeats = cfg.inprocess_repeats
    pi_rows = []
    for n in cfg.pi_ns:
        pi_rows.append(
            {
                "n": n,
                "mpmath_ms": timed_ms(lambda n=n: mpmath_pi_double(n), repeats, min_seconds=0.02),
                "mathsite_ms": timed_ms(
                    lambda n=n: algorithms.pi_double(n), repeats, min_seconds=0.02
                ),
            }
        )
    fib_rows = []
    big = sorted(set(cfg.fib_ns) | {cfg.big_n})
    for n in big:
        fib_rows.append(
            {
                "n": n,
                "gmpy2_ms": timed_ms(lambda n=n: gmpy2_fib_digits(n), repeats, min_seconds=0.02),
                "gmpy2_fib_only_ms": timed_ms(lambda n=n: gmpy2.fib(n), repeats, min_seconds=0.02),
            }
        )
    # Agreement of the two pi evaluations (a sanity check, not a target).
    worst = max(
        abs(mpmath_pi_double(n) - algorithms.pi_double(n)) / math.ulp(math.pi) for n in cfg.pi_ns
    )
    return {"pi": pi_rows, "fib": fib_rows, "pi_mpmath_vs_mathsite_max_ulps": worst}


# --- cached-hit throughput ------------------------------------------------------------


def _check_hit(server: Gunicorn, path: str) -> dict[str, Any]:
    """Request ``path`` until it is a hit; return the hit's status, size and body head."""
    reply = client.fetch(server.port, path)
    for _ in range(5):
        reply = client.fetch(server.port, path)
        if reply.cached:
            break
    return {
        "status": reply.status,
        "cached": reply.cached,
        "body": reply.body.decode("latin-1")[:120],
        "wire_bytes": reply.wire_bytes,
    }


def _load(ctx: Context, server: Gunicorn, path: str, seconds: float) -> load.LoadResult:
    cfg = ctx.config
    if load.have_wrk():
        return load.run_wrk(
            server.base + path,
            connections=cfg.connections,
            seconds=seconds,
            cpus=ctx.client_cpus,
        )
    return load.run_python(
        server.port, path, connections=cfg.connections, seconds=seconds, cpus=ctx.client_cpus
    )


def stage_hits(ctx: Context) -> dict[str, Any]:
    """Measure cached-hit throughput and latency on the seed routes (and mathsite's /api/)."""
    cfg = ctx.config
    assert ctx.mathsite is not None and ctx.old is not None
    ctx.used["pi"].add(cfg.pi_hit_n)
    ctx.used["fib"].add(cfg.fib_hit_n)
    targets = [
        ("pi", "floor", ctx.floor, f"/pi/{cfg.pi_hit_n}"),
        ("pi", "old", ctx.old, f"/pi/{cfg.pi_hit_n}"),
        ("pi", "mathsite", ctx.mathsite, f"/pi/{cfg.pi_hit_n}"),
        ("pi", "mathsite /api", ctx.mathsite, f"/api/pi/{cfg.pi_hit_n}/"),
        ("fib", "floor", ctx.floor, f"/fib/{cfg.fib_hit_n}"),
        ("fib", "old", ctx.old, f"/fib/{cfg.fib_hit_n}"),
        ("fib", "mathsite", ctx.mathsite, f"/fib/{cfg.fib_hit_n}"),
        ("fib", "mathsite /api", ctx.mathsite, f"/api/fib/{cfg.fib_hit_n}/"),
    ]
    targets = [t for t in targets if t[2] is not None]  # the floor is optional
    checks = {}
    for kind, name, server, path in targets:
        checks[f"{kind} {name}"] = _check_hit(server, path)
        if cfg.hit_warmup_seconds:
            ctx.log(f"  warm-up {kind:3} {name:14} {path}")
            _load(ctx, server, path, cfg.hit_warmup_seconds)
    runs: dict[str, list[dict[str, Any]]] = {f"{k} {n}": [] for k, n, _s, _p in targets}
    for repeat in range(cfg.hit_repeats):
        # Interleave the services so drift (thermal, noise) hits both alike.
        for kind, name, server, path in targets:
            result = _load(ctx, server, path, cfg.hit_seconds)
            runs[f"{kind} {name}"].append(result.as_dict())
            ctx.log(
                f"  run {repeat + 1}/{cfg.hit_repeats} {kind:3} {name:14} "
                f"{result.requests_per_second:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  errors {result.errors} non-2xx {result.non_2xx}"
            )
    summary = {}
    for key, samples in runs.items():
        summary[key] = {
            "requests_per_second": median([s["requests_per_second"] for s in samples]),
            "p50_ms": median([s["p50_ms"] for s in samples]),
            "p99_ms": median([s["p99_ms"] for s in samples]),
            "errors": sum(s["errors"] for s in samples),
            "non_2xx": sum(s["non_2xx"] for s in samples),
            "runs": samples,
        }
    # Latency of one client alone (no queueing behind 31 others): 200 sequential hits.
    alone = {}
    for kind, name, server, path in targets:
        samples = [client.fetch(server.port, path).seconds * 1000 for _ in range(cfg.alone_samples)]
        alone[f"{kind} {name}"] = {
            "p50_ms": percentile(samples, 50),
            "p99_ms": percentile(samples, 99),
        }
    tool = runs[next(iter(runs))][0]["tool"]
    return {"tool": tool, "summary": summary, "single_client": alone, "checks": checks}


def stage_wsgi_cost(
    ctx: Context, envs: dict[str, dict[str, str]], log_file: Path, cpus: Sequence[int] | None
) -> dict[str, Any]:
    """CPU microseconds per cached hit inside each WSGI app (no gunicorn, no sockets)."""
    cfg = ctx.config
    paths = {
        "mathsite": [f"/pi/{cfg.pi_hit_n}", f"/fib/{cfg.fib_hit_n}", f"/api/pi/{cfg.pi_hit_n}/"],
        "old": [f"/pi/{cfg.pi_hit_n}", f"/fib/{cfg.fib_hit_n}"],
    }
    result = {}
    for app, app_paths in paths.items():
        sizes = [f"--batch={cfg.wsgi_batch}", f"--batches={cfg.wsgi_batches}"]
        command = pinned([sys.executable, "-m", "bench.wsgi_cost", *sizes, app, *app_paths], cpus)
        with log_file.open("ab") as handle:
            done = subprocess.run(
                command, cwd=BASE_DIR, env=envs[app], stdout=subprocess.PIPE, stderr=handle,
                timeout=300, check=True,
            )  # fmt: skip
        result[app] = json.loads(done.stdout)
        for path, cost in result[app].items():
            ctx.log(f"  {app:8} {path:14} best {cost['best_us']:7.1f} us per hit")
    return result


# --- cold computation ---------------------------------------------------------------


def _cold_mathsite(ctx: Context, kind: str, n: int, maximum: int) -> dict[str, Any]:
    assert ctx.mathsite is not None
    samples, ns, anomalies = [], [], []
    for _ in range(ctx.config.cold_repeats):
        fresh = ctx.fresh(kind, n, maximum)
        reply = client.fetch(ctx.mathsite.port, f"/api/{kind}/{fresh}/", timeout=60)
        if reply.status != 200 or reply.cached is not False:
            anomalies.append({"n": fresh, "status": reply.status, "cached": reply.cached})
            continue
        samples.append(reply.seconds * 1000)
        ns.append(fresh)
    return {"n": n, "median_ms": median(samples), "samples_ms": samples, "ns": ns,
            "anomalies": anomalies}  # fmt: skip


def _old_fetch(ctx: Context, kind: str, n: int, timeout: float) -> client.Reply | None:
    """Cold request to the old service (its hashes emptied first); None on timeout."""
    assert ctx.old is not None and ctx.redis is not None
    ctx.redis.client(ctx.old_db).delete(f"{ctx.old_prefix}:pi", f"{ctx.old_prefix}:fib")
    try:
        return client.fetch(ctx.old.port, f"/{kind}/{n}", timeout=timeout)
    except TimeoutError:
        return None


def _cold_old_series(ctx: Context, kind: str, ns: Sequence[int]) -> dict[str, Any]:
    """Measure the old service cold up to where it stops answering (error or timeout)."""
    cfg = ctx.config
    rows: list[dict[str, Any]] = []
    stop: dict[str, Any] | None = None
    last_ok: tuple[int, float] | None = None
    for n in ns:
        projected = last_ok[1] * n / last_ok[0] if last_ok is not None else 0.0
        reply = _old_fetch(ctx, kind, n, cfg.old_timeout)
        if reply is None or reply.status != 200:
            stop = {
                "n": n,
                "reason": "timeout" if reply is None else f"HTTP {reply.status}",
                "timeout_s": cfg.old_timeout,
                "projected_s": projected / 1000 if projected else None,
                "last_answered_n": last_ok[0] if last_ok else None,
            }
            break
        samples = [reply.seconds * 1000]
        if reply.seconds < cfg.old_slow_seconds:
            for _ in range(cfg.cold_repeats - 1):
                again = _old_fetch(ctx, kind, n, cfg.old_timeout)
                if again is not None and again.status == 200:
                    samples.append(again.seconds * 1000)
        rows.append({"n": n, "median_ms": median(samples), "samples_ms": samples})
        last_ok = (n, median(samples))
        ctx.log(f"  old {kind:3} n={n:<20} {median(samples):10.2f} ms")
    return {"rows": rows, "stop": stop}


def _old_fib_boundary(ctx: Context, low: int, high: int) -> int:
    """Return the largest n in [low, high) the old fib still answers (bisection, cold each)."""
    for _ in range(20):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        reply = _old_fetch(ctx, "fib", middle, ctx.config.old_timeout)
        if reply is not None and reply.status == 200:
            low = middle
        else:
            high = middle
    return low


def stage_cold(ctx: Context) -> dict[str, Any]:
    """Cold end-to-end time against n: mathsite, then the old service (which it may leave busy)."""
    cfg = ctx.config
    result: dict[str, Any] = {"mathsite": {"pi": [], "fib": []}}
    for n in cfg.pi_ns:
        row = _cold_mathsite(ctx, "pi", n, PI_MAX)
        result["mathsite"]["pi"].append(row)
        ctx.log(f"  mathsite pi  n={n:<20} {row['median_ms']:8.2f} ms")
    for n in cfg.fib_ns:
        row = _cold_mathsite(ctx, "fib", n, FIB_MAX)
        result["mathsite"]["fib"].append(row)
        ctx.log(f"  mathsite fib n={n:<20} {row['median_ms']:8.2f} ms")
    # The old service last: its pi loop may still be running after a timeout.
    old_fib = _cold_old_series(ctx, "fib", cfg.fib_ns)
    if old_fib["stop"] is not None and old_fib["stop"]["last_answered_n"] is not None:
        old_fib["stop"]["largest_answered_n"] = _old_fib_boundary(
            ctx, old_fib["stop"]["last_answered_n"], old_fib["stop"]["n"]
        )
    old_pi = _cold_old_series(ctx, "pi", cfg.pi_ns)
    result["old"] = {"pi": old_pi, "fib": old_fib}
    return result


# --- fib(1,000,000) cached hit -------------------------------------------------------


def stage_big_hit(ctx: Context) -> dict[str, Any]:
    """fib(big_n) from the cache: latency and bytes, plain and gzip, vs raw Redis GETs."""
    cfg = ctx.config
    assert ctx.mathsite is not None and ctx.redis is not None
    n = cfg.big_n
    ctx.used["fib"].add(n)
    port = ctx.mathsite.port
    path = f"/api/fib/{n}/"
    first = client.fetch(port, path, timeout=60)
    gz = {"Accept-Encoding": "gzip"}
    for _ in range(4 * cfg.workers):  # fill every worker's in-process tier
        client.fetch(port, path)
        client.fetch(port, path, headers=gz)
    plain, packed = [], []
    for _ in range(cfg.big_samples):
        plain.append(client.fetch(port, path))
        packed.append(client.fetch(port, path, headers=gz))
    expected = gmpy2_fib_digits(n).encode()
    body = plain[-1].body
    checks = {
        "all 200 and cached": all(r.status == 200 and r.cached for r in plain + packed),
        "digits equal gmpy2's": body.startswith(b'{"cached":true,"result":' + expected + b","),
        "gzip body inflates to the plain body": gzip_module.decompress(packed[-1].body) == body,
        "Content-Encoding: gzip": packed[-1].headers.get("content-encoding") == "gzip",
    }
    correct = all(checks.values())

    # The stored value, found by its key's suffix in mathsite's database.
    rclient = ctx.redis.client(ctx.mathsite_db)
    keys = list(rclient.scan_iter(match=f"*:fib:{n}", count=1000))
    stored_key = keys[0] if keys else None
    stored_len = len(rclient.get(stored_key) or b"") if stored_key else 0

    def redis_loop(conn: Any, key: Any) -> list[float]:
        samples = []
        for _ in range(cfg.redis_samples):
            started = time.perf_counter()
            conn.get(key)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    stored_samples = redis_loop(rclient, stored_key) if stored_key else []
    raw = ctx.redis.client(ctx.raw_db)
    raw_key = "bench:raw:plain-body"
    raw.set(raw_key, b"7" * len(body))
    raw_samples = redis_loop(raw, raw_key)
    # A fresh connection per GET, as each HTTP request above opens one.
    fresh_conn = []
    for _ in range(min(cfg.redis_samples, 50)):
        started = time.perf_counter()
        conn = ctx.redis.client(ctx.mathsite_db)
        conn.get(stored_key)
        fresh_conn.append((time.perf_counter() - started) * 1000)
        conn.close()
    raw.delete(raw_key)

    def summary(replies: list[client.Reply]) -> dict[str, Any]:
        ms = [r.seconds * 1000 for r in replies]
        return {
            "median_ms": median(ms),
            "p90_ms": percentile(ms, 90),
            "wire_bytes": replies[-1].wire_bytes,
            "header_bytes": replies[-1].header_bytes,
            "body_bytes": len(replies[-1].body),
        }

    return {
        "n": n,
        "first_request": {"cached": first.cached, "ms": first.seconds * 1000},
        "plain": summary(plain),
        "gzip": summary(packed),
        "correct": correct,
        "checks": checks,
        "digits": len(expected),
        "redis_stored": {
            "key": stored_key.decode() if stored_key else None,
            "bytes": stored_len,
            "median_ms": median(stored_samples),
            "p90_ms": percentile(stored_samples, 90),
            "new_connection_median_ms": median(fresh_conn),
        },
        "redis_plain_size": {
            "bytes": len(body),
            "median_ms": median(raw_samples),
            "p90_ms": percentile(raw_samples, 90),
        },
    }


# --- burst ---------------------------------------------------------------------------


def _burst(port: int, path: str, size: int, timeout: float) -> dict[str, Any]:
    """Send ``size`` requests for ``path`` at once on pre-opened connections.

    One thread drives every connection through a selector: with a thread
    per connection the client's own scheduling (32 threads on one core,
    reading 200 KB bodies under the GIL) would be part of the measurement.
    Each connection is closed as soon as its response is complete, as a real
    client does (gunicorn's sync worker lingers for the client's FIN).
    """
    data = client.request_bytes(path, port)
    sockets = []
    for _ in range(size):
        sock = socket.create_connection((client.HOST, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
    buffers = {sock: bytearray() for sock in sockets}
    replies: list[client.Reply] = []
    errors: list[str] = []
    selector = selectors.DefaultSelector()
    started = time.perf_counter()
    for sock in sockets:
        sock.sendall(data)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = started + timeout
    while selector.get_map() and time.perf_counter() < deadline:
        for key, _events in selector.select(timeout=1.0):
            sock = key.fileobj
            failure = "connection closed before a full response"
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError as exc:
                chunk, failure = b"", repr(exc)
            if chunk:
                buffers[sock] += chunk
                reply = client.parse_complete(bytes(buffers[sock]), started)
                if reply is None:
                    continue
                replies.append(reply)
            else:
                errors.append(failure)
            selector.unregister(sock)
            sock.close()
    for sock in list(selector.get_map()):
        selector.unregister(sock)
        errors.append("no response before the timeout")
    selector.close()
    for sock in sockets:
        sock.close()
    return {
        "wall_ms": max((r.seconds for r in replies), default=math.nan) * 1000,
        "answered": len(replies),
        "status_200": sum(1 for r in replies if r.status == 200),
        "cached_false": sum(1 for r in replies if r.cached is False),
        "cached_true": sum(1 for r in replies if r.cached is True),
        "errors": errors,
    }


def stage_burst(ctx: Context) -> dict[str, Any]:
    """``burst_size`` concurrent cold requests for a fresh large fib vs one cold request."""
    cfg = ctx.config
    assert ctx.mathsite is not None
    port = ctx.mathsite.port
    singles, bursts = [], []
    for _ in range(cfg.burst_repeats):
        n_single = ctx.fresh("fib", cfg.big_n, FIB_MAX)
        reply = client.fetch(port, f"/api/fib/{n_single}/", timeout=60)
        singles.append({"n": n_single, "ms": reply.seconds * 1000, "cached": reply.cached})
        n_burst = ctx.fresh("fib", cfg.big_n, FIB_MAX)
        outcome = _burst(port, f"/api/fib/{n_burst}/", cfg.burst_size, timeout=60)
        outcome["n"] = n_burst
        bursts.append(outcome)
        ctx.log(
            f"  single cold {reply.seconds * 1000:8.2f} ms; burst of {cfg.burst_size}: "
            f"{outcome['wall_ms']:8.2f} ms, cached:false x{outcome['cached_false']}"
        )
    return {
        "size": cfg.burst_size,
        "single_median_ms": median([s["ms"] for s in singles if s["cached"] is False]),
        "burst_median_ms": median([b["wall_ms"] for b in bursts]),
        "max_cached_false": max(b["cached_false"] for b in bursts),
        "min_cached_false": min(b["cached_false"] for b in bursts),
        "all_answered": all(b["status_200"] == cfg.burst_size for b in bursts),
        "singles": singles,
        "bursts": bursts,
    }
