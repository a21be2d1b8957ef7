"""A cold request end to end, as a lean client sees it, beside what its maths alone costs.

``measure_cold(port, kind, count)`` sends ``count`` requests for results no
one asked for before to a running server (``make run``, or any server of
the benchmark), on one keep-alive connection with a raw socket (no client
library between the clock and the wire: ``bench.client``), and returns the
median, quartiles and extremes of their times in milliseconds. Each reply
must be a 200 with ``"cached":false`` (computed by that request), so what
is timed is the whole cold path: the hand-over to Django, the lookups, the
throttle, the stampede lock, the digit budget, the computation, the log's
insert and commit, the sealed store and the reply.

- pi: n from a random base near 10**15 (``PI_MAX_N`` is 10**18), plus k;
  a double, the default form, so the maths costs some microseconds and the
  figure is the service's own cost;
- fib: distinct n drawn at random from ``[FIB_FIRST, FIB_MAX_N]``, the most
  expensive results there are (about 209,000 digits each). A reply that is
  already cached (an earlier run asked for that n) is skipped, not timed.

``gmpy2_sample(n)`` is the floor a fib(n) request cannot go under: GMP's
fib(n) and its decimal digits, in this process (the issue's bound for
fib(10**6) cold is 1.5 x that + 3 ms). ``interleaved_floor`` takes one
sample after each cold fib request, so the two are measured on the same
machine at the same time, and gives the median of each.

``in_rounds`` takes both kinds in a few rounds, each after a pause of a
couple of seconds (pi, then fib with its floor, in each), and pools each kind's samples: on
a shared virtual machine a spell of disturbance lasts about as long as
200 cold pi requests (a third of a second), and one window then moved the
whole distribution (a run's quartiles 1.22-2.11 ms where the same code,
minutes later, gave 0.99-1.12). Spread over rounds, such a spell falls on
a fraction of the samples instead of all of them.

Before timing, one result is asked for three times, so the server's WSGI
front has learnt the site's headers (``compute.http.wsgi``) and answers
hits itself, as it does once a server has seen traffic: a cold request
then passes through the front's lookup first, as in production. That
hit's time on the same connection is reported too (``hit_ms``).

The budget: every fib(n) near 10**6 is charged about 209,000 digits to
the client (127.0.0.1 here), and ``COMPUTE_DIGITS_PER_HOUR`` is 20,000,000
by default, so one client gets about 95 of them an hour. ``--count`` for
fib defaults to 30 (about 6.3 million digits); a 429 stops the run with a
message saying so. A server started for repeated runs may switch the
budget off (``COMPUTE_DIGITS_PER_HOUR=none``; bench/rss.py does). pi's
charge is 17 digits a request, and the compute rate (``THROTTLE_COMPUTE_RATE``,
20,000 an hour) is far away.

    python -m bench.cold_floor --port 8123 [--kind pi|fib|both] [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.client import HOST, Reply, read_reply, request_bytes

FIB_MAX_N = 1_000_000  # mathsite's default FIB_MAX_N
FIB_FIRST = 999_000
PI_BASE = (10**14, 10**15)  # the random base of pi's n
DEFAULT_COUNTS = {"pi": 300, "fib": 30}


class NotCold(RuntimeError):
    """A reply that a cold measurement cannot use (an error, a refusal)."""


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port``, timed per request."""

    def __init__(self, port: int, *, timeout: float = 60.0) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, path: str) -> Reply:
        """Send a GET for ``path`` and return its reply, timed from the send to the last byte."""
        data = request_bytes(path, self.port)
        started = time.perf_counter()
        self.sock.sendall(data)
        return read_reply(self.sock, started)

    def close(self) -> None:
        self.sock.close()


def _candidates(kind: str, rng: random.Random) -> list[int]:
    if kind == "pi":
        base = rng.randrange(*PI_BASE)
        return [base + k for k in range(100_000)]
    if kind == "fib":
        ns = list(range(FIB_FIRST, FIB_MAX_N + 1))
        rng.shuffle(ns)
        return ns
    raise ValueError(f"unknown kind {kind!r}: pi or fib")


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    deciles = statistics.quantiles(ordered, n=20) if len(ordered) > 1 else ordered * 19
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p25_ms": round(deciles[4], 3),
        "p75_ms": round(deciles[14], 3),
        "p90_ms": round(deciles[17], 3),
        "min_ms": round(ordered[0], 3),
        "max_ms": round(ordered[-1], 3),
    }


def measure_cold(
    port: int,
    kind: str,
    count: int,
    *,
    seed: int | None = None,
    connection: Any = None,
    between: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Time ``count`` cold requests of ``kind`` on one keep-alive connection; return the figures.

    Return ``{"kind", "count", "median_ms", "p25_ms", "p75_ms", "p90_ms",
    "min_ms", "max_ms", "hit_ms", "skipped_cached"}``: the times of the cold requests
    (each checked to be a 200 with ``"cached":false``), the median of 20
    cached hits of one result on the same connection, and how many
    candidates were skipped because an earlier run had computed them. Raise
    NotCold on any other reply (a 429 names the budget). ``between`` runs
    after each timed request (``interleaved_floor``: the floor's samples, so
    both see the same machine: on a shared virtual machine the CPU's speed
    drifts by a third within minutes).
    """
    rng = random.Random(seed)
    conn = connection or Connection(port)
    try:
        warm = f"/api/{kind}/{10 if kind == 'fib' else 1000}/"
        hits = [conn.get(warm) for _ in range(23)][3:]  # the front learns from the first ones
        times: list[float] = []
        skipped = 0
        for n in _candidates(kind, rng):
            if len(times) >= count:
                break
            reply = conn.get(f"/api/{kind}/{n}/")
            if reply.status != 200:
                detail = reply.body[:300].decode("utf-8", "replace")
                hint = ""
                if reply.status == 429:
                    hint = (
                        " (the client's digit budget or compute rate: wait for the hour to "
                        "end, or start the server with COMPUTE_DIGITS_PER_HOUR=none)"
                    )
                raise NotCold(f"{kind}({n}): HTTP {reply.status}{hint}: {detail}")
            if reply.cached:
                skipped += 1  # computed by an earlier run: not a cold request
                continue
            if reply.cached is None:
                raise NotCold(f"{kind}({n}): a 200 without a cached flag: {reply.body[:80]!r}")
            times.append(reply.seconds * 1000)
            if between is not None:
                between()
        if len(times) < count:
            raise NotCold(f"only {len(times)} uncomputed {kind} results were left")
    finally:
        if connection is None:
            conn.close()
    return {
        "kind": kind,
        "count": count,
        **_summary(times),
        "hit_ms": round(statistics.median(r.seconds * 1000 for r in hits), 3),
        "skipped_cached": skipped,
        "times_ms": [round(t, 4) for t in times],
    }


def gmpy2_sample(n: int = FIB_MAX_N) -> float:
    """Return the milliseconds of one ``gmpy2.fib(n)`` and its decimal digits, here.

    What a fib(n) request cannot avoid (GMP computes it, the digits are its
    JSON body); the issue's bound for fib(10**6) cold is 1.5 x this + 3 ms.
    """
    import gmpy2

    started = time.perf_counter()
    digits = gmpy2.fib(n).digits()
    elapsed = (time.perf_counter() - started) * 1000
    del digits
    return elapsed


def gmpy2_floor(n: int = FIB_MAX_N, repeats: int = 15) -> float:
    """Return the median of ``repeats`` samples of the floor (``gmpy2_sample``)."""
    return round(statistics.median(gmpy2_sample(n) for _ in range(repeats)), 3)


def interleaved_floor(
    port: int,
    count: int,
    *,
    n: int = FIB_MAX_N,
    seed: int | None = None,
    connection: Any = None,
) -> dict[str, Any]:
    """Measure cold fib on ``port`` with one floor sample after each request; return both.

    The fib figures (``measure_cold``) with ``gmpy2_fib_digits_ms``, the
    median of the floor's samples taken between the requests, and
    ``bound_ms``, the issue's bound from it.
    """
    samples: list[float] = []
    figures = measure_cold(
        port,
        "fib",
        count,
        seed=seed,
        connection=connection,
        between=lambda: samples.append(gmpy2_sample(n)),
    )
    floor = round(statistics.median(samples), 3)
    return {
        **figures,
        "gmpy2_fib_digits_ms": floor,
        "bound_ms": _bound(floor),
        "floor_samples_ms": [round(t, 4) for t in samples],
    }


def in_rounds(
    port: int,
    *,
    pi_count: int,
    fib_count: int,
    rounds: int,
    pause: float = 2.0,
    n: int = FIB_MAX_N,
    connection: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Measure cold pi and cold fib (with its floor) in ``rounds`` rounds ``pause`` s apart.

    Each round starts after a pause, the first too, so that no round starts
    the moment a server is ready (the first window right after a start was
    the slowest in trial runs). Each round sends its share of ``pi_count``
    cold pi requests, then its share of ``fib_count`` cold fib requests
    with a floor sample after each
    (``interleaved_floor``), all on one keep-alive connection. Return
    ``{"pi", "fib", "gmpy2_fib_ms", "rounds"}``: each kind's figures over
    the pooled samples of every round (``measure_cold``'s keys, plus each
    round's median in ``round_medians_ms``), and the floor's median over
    all its samples.
    """
    conn = connection or Connection(port)
    taken: dict[str, list[dict[str, Any]]] = {"pi": [], "fib": []}  # each round's figures
    try:
        for index in range(rounds):
            sleep(pause)  # the first too: not the moment a server is ready
            if share := _share(pi_count, rounds, index):
                taken["pi"].append(measure_cold(port, "pi", share, connection=conn))
            if share := _share(fib_count, rounds, index):
                taken["fib"].append(interleaved_floor(port, share, n=n, connection=conn))
    finally:
        if connection is None:
            conn.close()
    out: dict[str, Any] = {"rounds": rounds, "pause_s": pause}
    for kind, figures in taken.items():
        times = [t for each in figures for t in each["times_ms"]]
        out[kind] = {
            "kind": kind,
            "count": len(times),
            **_summary(times),
            "hit_ms": figures[-1]["hit_ms"],
            "skipped_cached": sum(each["skipped_cached"] for each in figures),
            "round_medians_ms": [each["median_ms"] for each in figures],
        }
    floor = round(
        statistics.median(t for each in taken["fib"] for t in each["floor_samples_ms"]), 3
    )
    out["fib"] |= {"gmpy2_fib_digits_ms": floor, "bound_ms": _bound(floor)}
    out["gmpy2_fib_ms"] = floor
    return out


def _bound(floor_ms: float) -> float:
    """Return the issue's bound for fib(10**6) cold from the floor: 1.5 x floor + 3 ms."""
    return round(1.5 * floor_ms + 3, 3)


def _share(total: int, rounds: int, index: int) -> int:
    """Return round ``index``'s part of ``total`` requests spread evenly over ``rounds``."""
    return total // rounds + (1 if index < total % rounds else 0)


def main(argv: list[str] | None = None) -> int:
    """Measure against a running server and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.cold_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=["pi", "fib", "both"], default="both")
    parser.add_argument("--count", type=int, default=None, help="cold requests per kind")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--rounds", type=int, default=None,
        help="both kinds in this many rounds, each after a 2 s pause, samples pooled",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds:
        counts = {kind: args.count or DEFAULT_COUNTS[kind] for kind in ("pi", "fib")}
        figures = in_rounds(
            args.port, pi_count=counts["pi"], fib_count=counts["fib"], rounds=args.rounds
        )
        print(json.dumps(figures, indent=2))
        return 0
    kinds = ["pi", "fib"] if args.kind == "both" else [args.kind]
    out: dict[str, Any] = {}
    for kind in kinds:
        count = args.count or DEFAULT_COUNTS[kind]
        if kind == "fib":
            out[kind] = interleaved_floor(args.port, count, seed=args.seed)
        else:
            out[kind] = measure_cold(args.port, kind, count, seed=args.seed)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
