"""The ``fib_mod`` stage: fib(n) mod M at n = M = 10**18, cold and cached (issue 12).

fib(n) itself stops at ``FIB_MAX_N`` (10**6) because it has 0.21 n digits;
``?mod=M`` costs O(log n) and goes to n = 10**18. This stage measures, on
the run's mathsite gunicorn:

- ``inprocess``: ``compute.domain.maths.fib_mod(10**18, 10**18)`` alone, the
  cold computation without HTTP (median of ``batches`` batches, microseconds);
- ``cold``: a GET of ``/api/fib/{n}/?mod=10**18`` for n = 10**18, 10**18 - 1,
  ... (each never requested before: computed, logged and cached), end to end,
  after each worker has computed a few other residues (its one-time costs);
- ``hit``: the same URL for n = 10**18 once cached in every worker, end to end.

Every body is checked against a pure-Python matrix power mod M written here
(not the service's fast doubling).

    python -m bench.run --only fib_mod      # writes bench/results/only-fib_mod/
"""

from __future__ import annotations

import time
from typing import Any

from compute.domain import maths as algorithms

from . import client
from .stats import median, percentile

N = 10**18
M = 10**18


def fib_mod_matrix(n: int, m: int) -> int:
    """Return fib(n) mod m as the off-diagonal entry of [[1, 1], [1, 0]]**n mod m."""
    result, base = (1 % m, 0, 0, 1 % m), (1, 1, 1, 0)
    while n:
        if n & 1:
            a, b, c, d = result
            e, f, g, h = base
            result = ((a * e + b * g) % m, (a * f + b * h) % m, (c * e + d * g) % m,
                      (c * f + d * h) % m)  # fmt: skip
        a, b, c, d = base
        base = ((a * a + b * c) % m, (a * b + b * d) % m, (c * a + d * c) % m,
                (c * b + d * d) % m)  # fmt: skip
        n >>= 1
    return result[1]


def _inprocess_us(batch: int, batches: int) -> dict[str, Any]:
    per_call = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            algorithms.fib_mod(N, M)
        per_call.append((time.perf_counter() - started) / batch * 1e6)
    return {"median_us": median(per_call), "best_us": min(per_call), "batches_us": per_call}


def _expected_body(n: int, *, cached: bool) -> bytes:
    flag = b"true" if cached else b"false"
    return b'{"cached":%s,"result":%d,"n":%d,"mod":%d}' % (flag, fib_mod_matrix(n, M), n, M)


def stage_fib_mod(ctx: Any) -> dict[str, Any]:
    """Measure fib(10**18) mod 10**18: in-process, cold end to end, cached hit end to end."""
    cfg = ctx.config
    assert ctx.mathsite is not None
    port = ctx.mathsite.port
    inprocess = _inprocess_us(cfg.wsgi_batch, cfg.wsgi_batches)
    # Each worker's first computing request pays one-time costs (database
    # connection, first INSERT, lock script): pay them on other n first.
    for k in range(2 * cfg.workers):
        client.fetch(port, f"/api/fib/{N // 10 - k}/?mod={M}", timeout=60)
    cold_ms, cold_ns, anomalies = [], [], []
    for k in range(cfg.cold_repeats):
        n = N - k
        reply = client.fetch(port, f"/api/fib/{n}/?mod={M}", timeout=60)
        if reply.status != 200 or reply.body != _expected_body(n, cached=False):
            anomalies.append({"n": n, "status": reply.status, "body": reply.body[:200].decode()})
            continue
        cold_ms.append(reply.seconds * 1000)
        cold_ns.append(n)
    path = f"/api/fib/{N}/?mod={M}"
    for _ in range(4 * cfg.workers):  # every worker's in-process tier holds it
        client.fetch(port, path)
    hits = [client.fetch(port, path) for _ in range(cfg.big_samples)]
    expected_hit = _expected_body(N, cached=True)
    hit_ms = [r.seconds * 1000 for r in hits]
    checks = {
        "cold bodies equal the matrix-power reference": not anomalies and bool(cold_ms),
        "hit bodies equal the reference, cached": all(
            r.status == 200 and r.body == expected_hit for r in hits
        ),
        "ETag names n and M": hits[-1].headers.get("etag") == f'W/"fib-{N}-m{M}-v1"',
    }
    result = {
        "n": N,
        "mod": M,
        "result": fib_mod_matrix(N, M),
        "inprocess": inprocess,
        "cold": {"median_ms": median(cold_ms), "samples_ms": cold_ms, "ns": cold_ns},
        "hit": {"median_ms": median(hit_ms), "p90_ms": percentile(hit_ms, 90)},
        "anomalies": anomalies,
        "checks": checks,
        "correct": all(checks.values()),
    }
    ctx.log(
        f"  fib(10**18) mod 10**18: in-process {inprocess['median_us']:.1f} us, cold "
        f"{result['cold']['median_ms']:.2f} ms, hit {result['hit']['median_ms']:.2f} ms "
        f"(correct: {result['correct']})"
    )
    return result
