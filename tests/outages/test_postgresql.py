"""PostgreSQL stopped, paused and restarted under load: hits answer, misses get a fast 503.

granian (2 workers, 4 blocking threads each) on a PostgreSQL of the
test's own and a Redis of its own serves a stream from several client
threads, each a client of its own (``X-Forwarded-For``): some ask for
warmed results (hits), some for results never asked before (cold fib and
pi: misses, which read the log, compute and write their row). Two seconds
in, the database fails:

- **stopped**: ``pg_ctl stop -m fast`` for 5 s, then started again;
- **paused**: SIGSTOP of the postmaster and every backend for 5 s, then
  SIGCONT. The kernel still acknowledges every packet, so only the
  client's deadline notices (``DATABASE_QUERY_DEADLINE``);
- **restarted**: ``pg_ctl restart -m fast``.

Then (SPEC "Operations", database down):

- every reply is a 200 or a JSON 503 with ``Retry-After`` (never a 500,
  never a reset or a timeout);
- hits keep answering during the outage, each within ``HIT_WORST``;
- every miss is answered within the bound docs/operations.md states:
  ``DATABASE_QUEUE_WAIT + DATABASE_QUERY_DEADLINE + DATABASE_CONNECT_TIMEOUT``
  (plus ``SLACK`` for the computation and a shared machine);
- nothing half-written: no Redis entry of a miss without its log row;
- nothing charged: each client's digit budget spent equals the estimated
  digits of the results it got computed (200, not cached), so a 503 cost
  nothing; the hit clients spent nothing;
- the service recovers by itself: after the database is back, misses
  answer 200 again within ``RECOVER_WITHIN`` and keep doing so.

Figures (requests, 200s, 503s, other failures, worst latencies, time to
recover) are printed in the run's summary and written as JSON beside the
test's server folder. Reference values: fast doubling on Python integers.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from dataclasses import asdict, dataclass

import psycopg
import pytest
import redis

from compute.domain.cost import estimated_digits
from compute.domain.query import ResultQuery
from tests.support.figures import record
from tests.support.reference import fib_reference
from tests.support.servers import LiveServer, http_get

pytestmark = [pytest.mark.outages, pytest.mark.slow]

WARM = range(60)  # fib(n) cached before the stream
# More miss clients than the 2 workers' 8 blocking threads: without the cap on
# waiters (DATABASE_CONCURRENCY) a paused database would hold every thread.
HIT_CLIENTS, MISS_CLIENTS = 3, 10
BEFORE, OUTAGE, AFTER = 2.0, 5.0, 8.0  # seconds
# The defaults the live server runs with (mathsite/settings.py, .env.example).
QUEUE_WAIT, QUERY_DEADLINE, CONNECT_TIMEOUT = 0.25, 2.0, 3.0
DOCUMENTED_BOUND = QUEUE_WAIT + QUERY_DEADLINE + CONNECT_TIMEOUT
SLACK = 1.5  # a computation of these sizes, and a 2-core machine shared with other runs
HIT_WORST = 1.0  # seconds; at most one DATABASE_QUEUE_WAIT behind waiting threads, plus noise
RECOVER_WITHIN = 5.0  # seconds after the database is back
AFTER_REFUSAL = 0.05  # seconds a client waits after a 503 before its next request


@dataclass
class Sample:
    """One request of the stream and its answer."""

    role: str  # "hit" or "miss"
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
        self._threads = [
            threading.Thread(target=self._run, args=("hit", f"198.51.{network}.{10 + i}"))
            for i in range(HIT_CLIENTS)
        ] + [
            threading.Thread(target=self._run, args=("miss", f"198.51.{network}.{20 + i}"))
            for i in range(MISS_CLIENTS)
        ]

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
        reply = http_get(
            self.live.port, f"/api/{kind}/{n}/", headers={"X-Forwarded-For": client}, timeout=20
        )
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
        if reply.status == 200:
            sample.cached = data["cached"]
            if kind == "fib":
                sample.correct = data["result"] == fib_reference(n)
        else:
            # The API's 503 body: {"detail": ..., "retry_after": seconds}.
            sample.code = f"{data.get('retry_after')}: {data.get('detail', '')}"
        return sample


def budget_spent(store: redis.Redis, live: LiveServer, client: str) -> int:
    return sum(int(store.get(key) or 0) for key in store.keys(live.key(f"budget:{client}:*")))


def logged(dsn: str) -> set[tuple[str, int]]:
    with psycopg.connect(dsn) as connection:
        return set(connection.execute("SELECT kind, n FROM compute_computedresult").fetchall())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def stopped(postgres) -> None:
    postgres.halt()
    time.sleep(OUTAGE)
    postgres.start()


def paused(postgres) -> None:
    postgres.pause()
    try:
        time.sleep(OUTAGE)
    finally:
        postgres.resume()


def restarted(postgres) -> None:
    postgres.restart()


FAULTS = {"stopped": stopped, "paused": paused, "restarted": restarted}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_database_outage_under_load(fault, live, postgres, store, request, tmp_path):
    case = list(FAULTS).index(fault)  # fresh values and fresh clients (budgets) per case
    first_n = 1000 + 20000 * case
    client = store.client()
    for n in WARM:
        assert http_get(live.port, f"/api/fib/{n}/").status == 200
    stream = Stream(live, first_n, network=100 + case).start()
    try:
        time.sleep(BEFORE)
        fault_at = time.monotonic()
        try:
            FAULTS[fault](postgres)
        finally:
            if postgres.postmaster() is None:  # the fault failed half-way: bring it back
                postgres.start()
            postgres.resume()
        back_at = time.monotonic()
        time.sleep(AFTER)
    finally:
        samples = stream.stop()

    hits = [s for s in samples if s.role == "hit"]
    misses = [s for s in samples if s.role == "miss"]
    during = [s for s in hits if fault_at <= s.started <= back_at]
    ok = [s for s in samples if s.status == 200]
    unavailable = [s for s in samples if s.status == 503]
    other = [s for s in samples if s.status not in (200, 503)]
    failed_misses = [s for s in misses if s.status != 200]
    after = [s for s in misses if s.status == 200 and s.started >= back_at]
    last_failure = max((s.ended for s in failed_misses), default=back_at)
    first_ok = min((s.ended for s in after), default=float("inf"))
    recovered = max(last_failure, first_ok) - back_at
    figures = {
        "fault": fault,
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
        "outage_s": round(back_at - fault_at, 3),
        "recovered_after_s": round(recovered, 3),
    }
    (tmp_path / f"outage-{fault}.json").write_text(
        json.dumps({"figures": figures, "samples": [asdict(s) for s in samples]}, indent=1)
    )
    print(f"\n{fault}: {json.dumps(figures)}")
    for name, value in figures.items():
        if name != "fault":
            record(request, f"PostgreSQL {fault}: {name}", value)

    # Every reply a 200 or a JSON 503 saying the database is unavailable, with Retry-After.
    assert not other, [(s.status, s.error, s.code) for s in other[:5]]
    assert all(
        s.retry_after == "5" and s.code.startswith("5: The result log (database) is unavailable")
        for s in unavailable
    ), {(s.code, s.retry_after) for s in unavailable}
    assert all(s.correct for s in ok)
    # Hits keep answering, promptly, during the outage too.
    assert during and all(s.status == 200 for s in hits)
    assert figures["hit_worst_s"] < HIT_WORST, figures
    # Every miss answered within the documented bound.
    assert figures["miss_worst_s"] < DOCUMENTED_BOUND + SLACK, figures
    if fault != "restarted":  # a restart may fall between two misses
        assert unavailable, "the outage was not felt: no 503"
    # Recovery by itself: misses answer again, and keep answering.
    assert recovered < RECOVER_WITHIN, figures
    assert len(after) >= 3 and all(
        s.status == 200 for s in misses if s.started >= back_at + recovered
    )

    # Nothing half-written: every miss Redis holds has its row.
    rows = logged(postgres.dsn("mathsite"))
    for sample in misses:
        key = live.key(ResultQuery(sample.kind, sample.n).cache_key)
        if client.exists(key):
            assert (sample.kind, sample.n) in rows, f"{key} cached without its log row"
    # Nothing charged for a 503: each client spent what its computed results cost.
    for address in {s.client for s in samples}:
        computed = [s for s in samples if s.client == address and s.status == 200 and not s.cached]
        expected = sum(estimated_digits(ResultQuery(s.kind, s.n)) for s in computed)
        assert budget_spent(client, live, address) == expected, address
