"""The load of the outage tests: client threads asking for hits and misses, and the checks.

``under_load(live, fault)`` streams requests at a live server from
several client threads (each a client of its own, ``X-Forwarded-For``):
some ask for warmed results (hits), some for results never asked before
(cold fib and pi: misses, which read the log, compute and write their
row). A probe thread asks ``/readyz`` every ``PROBE_EVERY`` seconds, as a load
balancer does. ``BEFORE`` seconds in it runs ``fault`` (which returns once the
database is back), then streams ``AFTER`` seconds more. ``check`` then
asserts what SPEC "Operations" asks of a database outage and records the
figures (printed in the run's summary, and written as JSON with every
request in the test's temporary folder).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from compute.domain.cost import estimated_digits
from compute.domain.query import ResultQuery
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import LiveServer, http_get

WARM = range(60)  # fib(n) cached before the stream
# More miss clients than the 2 workers' 8 blocking threads: without the cap on
# waiters (DATABASE_CONCURRENCY) a stuck database would hold every thread.
HIT_CLIENTS, MISS_CLIENTS = 3, 10
PROBE_EVERY = 0.5  # seconds between two readiness probes (/readyz) of the probe thread
BEFORE, AFTER = 2.0, 8.0  # seconds of load before the fault, and after the database is back
SLACK = 1.5  # a computation of these sizes, and a 2-core machine shared with other runs
HIT_WORST = 1.0  # seconds; at most one DATABASE_QUEUE_WAIT behind waiting threads, plus noise
RECOVER_WITHIN = 5.0  # seconds after the database is back
AFTER_REFUSAL = 0.05  # seconds a client waits after a 503 before its next request
UNAVAILABLE = "5: The result log (database) is unavailable"  # a 503's retry_after: detail


@dataclass
class Sample:
    """One request of the stream and its answer."""

    role: str  # "hit", "miss" or "probe" (/readyz)
    client: str
    kind: str
    n: int
    status: int
    started: float
    ended: float
    cached: bool | None = None
    code: str = ""  # a 503's "retry_after: detail"
    retry_after: str = ""
    error: str = ""
    correct: bool = True

    @property
    def latency(self) -> float:
        return self.ended - self.started


class Stream:
    """Client threads asking ``live`` for hits and misses until ``stop()``."""

    def __init__(self, live: LiveServer, first_n: int, network: int) -> None:
        self.live = live
        self.samples: list[Sample] = []
        self._fresh = itertools.count(first_n)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads = (
            [
                threading.Thread(target=self._run, args=("hit", f"198.51.{network}.{10 + i}"))
                for i in range(HIT_CLIENTS)
            ]
            + [
                threading.Thread(target=self._run, args=("miss", f"198.51.{network}.{20 + i}"))
                for i in range(MISS_CLIENTS)
            ]
            + [threading.Thread(target=self._run, args=("probe", "127.0.0.1"))]
        )

    def start(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.samples

    def _run(self, role: str, client: str) -> None:
        while not self._done.is_set():
            if role == "probe":
                self.samples.append(self._ask(role, client, "readyz", 0))
                self._done.wait(PROBE_EVERY)
                continue
            if role == "hit":
                kind, n = "fib", random.choice(WARM)
            else:
                with self._lock:
                    n = next(self._fresh)
                kind = "fib" if n % 2 else "pi"
            sample = self._ask(role, client, kind, n)
            self.samples.append(sample)
            if sample.status != 200:
                # Real clients honour Retry-After; these are impatient, but do
                # not spin on 503s that take a millisecond (the machine is shared).
                self._done.wait(AFTER_REFUSAL)

    def _ask(self, role: str, client: str, kind: str, n: int) -> Sample:
        path = "/readyz" if role == "probe" else f"/api/{kind}/{n}/"
        reply = http_get(self.live.port, path, headers={"X-Forwarded-For": client}, timeout=20)
        sample = Sample(
            role, client, kind, n, reply.status, reply.started, reply.started + reply.elapsed
        )
        sample.error = reply.error
        sample.retry_after = reply.headers.get("retry-after", "")
        try:
            data = reply.data if reply.body else {}
        except ValueError:
            sample.code = "not json"
            return sample
        if role == "probe":
            sample.code = str(data.get("status", ""))  # ok, degraded or unavailable
        elif reply.status == 200:
            sample.cached = data["cached"]
            if kind == "fib":
                sample.correct = data["result"] == fib_reference(n)
        else:
            # The API's 503 body: {"detail": ..., "retry_after": seconds}.
            sample.code = f"{data.get('retry_after')}: {data.get('detail', '')}"
        return sample


def budget_spent(store: redis.Redis, live: LiveServer, client: str) -> int:
    return sum(int(store.get(key) or 0) for key in store.keys(live.key(f"budget:{client}:*")))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass
class Outage:
    """The requests of one stream and when the database failed and came back."""

    name: str
    samples: list[Sample]
    fault_at: float
    back_at: float
    figures: dict[str, Any] = field(default_factory=dict)


def under_load(live: LiveServer, fault: Callable[[], None], *, name: str, case: int) -> Outage:
    """Stream hits and misses at ``live``, run ``fault`` ``BEFORE`` seconds in, stream on.

    ``case`` picks fresh values and fresh client addresses (budgets) per test.
    """
    for n in WARM:
        assert http_get(live.port, f"/api/fib/{n}/").status == 200
    stream = Stream(live, 1000 + 20000 * case, network=100 + case).start()
    try:
        time.sleep(BEFORE)
        fault_at = time.monotonic()
        fault()
        back_at = time.monotonic()
        time.sleep(AFTER)
    finally:
        samples = stream.stop()
    return Outage(name, samples, fault_at, back_at)


def check(
    outage: Outage,
    *,
    live: LiveServer,
    store: redis.Redis,
    logged: set[tuple[str, int]] | Callable[[], set[tuple[str, int]]],
    bound: float,
    felt: bool,
    request: Any,
    folder: Path,
) -> dict[str, Any]:
    """Assert what SPEC "Operations" asks of an outage; record and return its figures.

    ``bound``: the documented longest wait for a miss's answer (``SLACK`` is
    added); ``felt``: the outage must have refused some request (a restart
    may fall between two misses); ``logged``: the (kind, n) of the log's
    rows, read after the stream.
    """
    samples, back_at = outage.samples, outage.back_at
    hits = [s for s in samples if s.role == "hit"]
    misses = [s for s in samples if s.role == "miss"]
    probes = [s for s in samples if s.role == "probe"]
    during = [s for s in hits if outage.fault_at <= s.started <= back_at]
    ok = [s for s in samples if s.status == 200]
    unavailable = [s for s in samples if s.status == 503 and s.role != "probe"]
    other = [s for s in samples if s.status not in (200, 503)]
    after = [s for s in misses if s.status == 200 and s.started >= back_at]
    last_failure = max((s.ended for s in misses if s.status != 200), default=back_at)
    first_ok = min((s.ended for s in after), default=float("inf"))
    recovered = max(last_failure, first_ok) - back_at
    figures = {
        "requests": len(samples),
        "ok_200": len(ok),
        "unavailable_503": len(unavailable),
        "other_failures": len(other),
        "hits": len(hits),
        "hits_during_outage": len(during),
        "hit_worst_s": round(max(s.latency for s in hits), 3),
        "hit_p99_s": round(percentile([s.latency for s in hits], 0.99), 3),
        "miss_worst_s": round(max(s.latency for s in misses), 3),
        "worst_503_s": round(max((s.latency for s in unavailable), default=0.0), 3),
        "probes_unready": sum(s.status == 503 for s in probes),
        "probe_worst_s": round(max((s.latency for s in probes), default=0.0), 3),
        "outage_s": round(back_at - outage.fault_at, 3),
        "recovered_after_s": round(recovered, 3),
    }
    outage.figures = figures
    (folder / f"outage-{outage.name.replace(' ', '-')}.json").write_text(
        json.dumps({"figures": figures, "samples": [asdict(s) for s in samples]}, indent=1)
    )
    print(f"\n{outage.name}: {json.dumps(figures)}")
    for name, value in figures.items():
        record(request, f"{outage.name}: {name}", value)

    # Every reply a 200 or a JSON 503 saying the database is unavailable, with Retry-After.
    assert not other, [(s.status, s.error, s.code) for s in other[:5]]
    assert all(s.retry_after == "5" and s.code.startswith(UNAVAILABLE) for s in unavailable), {
        (s.code, s.retry_after) for s in unavailable
    }
    assert all(s.correct for s in ok)
    # Hits keep answering, promptly, during the outage too.
    assert during and all(s.status == 200 for s in hits)
    assert figures["hit_worst_s"] < HIT_WORST, figures
    # Every miss answered within the documented bound.
    assert figures["miss_worst_s"] < bound + SLACK, figures
    if felt:
        assert unavailable, "the outage was not felt: no 503"
    # Readiness probes say so, within the same bound (none left hanging on the database).
    assert probes and all(s.status == (200 if s.code == "ok" else 503) for s in probes)
    assert figures["probe_worst_s"] < bound + SLACK, figures
    if felt:
        assert figures["probes_unready"], "no probe said the database was unavailable"
    # Recovery by itself: misses answer again, and keep answering.
    assert recovered < RECOVER_WITHIN, figures
    settled = back_at + recovered
    assert len(after) >= 3 and all(s.status == 200 for s in misses if s.started >= settled)

    # Nothing half-written: every miss Redis holds has its row.
    rows = logged() if callable(logged) else logged
    for sample in misses:
        key = live.key(ResultQuery(sample.kind, sample.n).cache_key)
        if store.exists(key):
            assert (sample.kind, sample.n) in rows, f"{key} cached without its log row"
    # Nothing charged for a 503: each client spent what its computed results cost.
    for address in {s.client for s in hits + misses}:
        computed = [s for s in misses if s.client == address and s.status == 200 and not s.cached]
        expected = sum(estimated_digits(ResultQuery(s.kind, s.n)) for s in computed)
        assert budget_spent(store, live, address) == expected, address
    return figures
