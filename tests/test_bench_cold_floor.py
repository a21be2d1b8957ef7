"""bench/cold_floor.py: what the lean client counts as a cold request, without a server.

A connection double answers as mathsite would (hits for the warm-up
result, computed results for fresh n, an earlier run's result cached, a
429 once the budget is spent); the live figures come from ``python -m
bench.cold_floor --port P`` against ``make run`` (docs/design.md).
"""

from __future__ import annotations

import random

import pytest

from bench import cold_floor
from bench.client import Reply


class Answers:
    """A keep-alive connection double: a reply per path, in mathsite's body format."""

    def __init__(self, *, cached: set[str] = frozenset(), refuse_after: int | None = None) -> None:
        self.cached = set(cached)
        self.refuse_after = refuse_after
        self.paths: list[str] = []
        self.computed = 0

    def get(self, path: str) -> Reply:
        self.paths.append(path)
        if path in ("/api/pi/1000/", "/api/fib/10/") or path in self.cached:
            return Reply(200, {}, b'{"cached":true,"result":1,"n":1}', 0, 0.0001)
        if self.refuse_after is not None and self.computed >= self.refuse_after:
            return Reply(429, {}, b'{"detail":"budget spent"}', 0, 0.0001)
        self.computed += 1
        return Reply(200, {}, b'{"cached":false,"result":1,"n":1}', 0, 0.002)


def test_cold_requests_are_fresh_computed_and_timed():
    answers = Answers()
    figures = cold_floor.measure_cold(0, "pi", 25, seed=7, connection=answers)
    assert figures["count"] == 25 and answers.computed == 25
    assert figures["median_ms"] == figures["p90_ms"] == pytest.approx(2.0)
    assert figures["hit_ms"] == pytest.approx(0.1)
    cold = [path for path in answers.paths if path != "/api/pi/1000/"]
    assert len(set(cold)) == len(cold) == 25  # every n asked once
    assert answers.paths[:23] == ["/api/pi/1000/"] * 23  # the front learns before the timing


def test_fib_asks_distinct_n_near_the_limit_and_skips_an_earlier_runs_results():
    seed = 3
    first = cold_floor._candidates("fib", random.Random(seed))[:2]
    answers = Answers(cached={f"/api/fib/{n}/" for n in first})
    figures = cold_floor.measure_cold(0, "fib", 5, seed=seed, connection=answers)
    assert figures["skipped_cached"] == 2 and answers.computed == 5
    ns = [int(path.split("/")[3]) for path in answers.paths if path != "/api/fib/10/"]
    assert all(cold_floor.FIB_FIRST <= n <= cold_floor.FIB_MAX_N for n in ns)


def test_a_refusal_stops_the_run_and_names_the_budget():
    with pytest.raises(cold_floor.NotCold, match="COMPUTE_DIGITS_PER_HOUR=none"):
        cold_floor.measure_cold(0, "fib", 5, connection=Answers(refuse_after=2))


def test_the_gmpy2_floor_is_a_positive_time():
    assert 0 < cold_floor.gmpy2_floor(10_000, repeats=3) < 1_000


def test_the_floor_is_sampled_between_the_timed_requests_only(monkeypatch):
    """One sample after each cold request (none after a skipped one): both measured at once."""
    seed = 5
    first = cold_floor._candidates("fib", random.Random(seed))[:1]
    answers = Answers(cached={f"/api/fib/{n}/" for n in first})
    sampled: list[int] = []
    real = cold_floor.gmpy2_sample

    def sample(n: int) -> float:
        sampled.append(answers.computed)  # how many requests were timed before it
        return real(10_000)

    monkeypatch.setattr(cold_floor, "gmpy2_sample", sample)
    figures = cold_floor.interleaved_floor(0, 4, seed=seed, connection=answers)
    assert sampled == [1, 2, 3, 4] and figures["skipped_cached"] == 1
    assert 0 < figures["gmpy2_fib_digits_ms"] < 1_000
    assert figures["bound_ms"] == pytest.approx(1.5 * figures["gmpy2_fib_digits_ms"] + 3, abs=0.002)


def test_rounds_pool_each_kinds_samples_and_pause_between_rounds(monkeypatch):
    """7 pi and 3 fib over 3 rounds: 3+2+2 and 1+1+1, a floor sample per fib, a pause each."""
    answers = Answers()
    floors = iter([9.0, 11.0, 10.0])
    monkeypatch.setattr(cold_floor, "gmpy2_sample", lambda n: next(floors))
    pauses: list[float] = []
    figures = cold_floor.in_rounds(
        0, pi_count=7, fib_count=3, rounds=3, pause=1.5, connection=answers, sleep=pauses.append
    )
    assert pauses == [1.5, 1.5, 1.5]
    timed = [p for p in answers.paths if p not in ("/api/pi/1000/", "/api/fib/10/")]
    kinds = [p.split("/")[2] for p in timed]
    assert kinds == ["pi"] * 3 + ["fib"] + ["pi"] * 2 + ["fib"] + ["pi"] * 2 + ["fib"]
    assert len(set(timed)) == 10  # no result asked twice
    assert figures["pi"]["count"] == 7 and figures["fib"]["count"] == 3
    assert figures["pi"]["round_medians_ms"] == [2.0, 2.0, 2.0]
    assert figures["pi"]["median_ms"] == pytest.approx(2.0)
    assert figures["gmpy2_fib_ms"] == figures["fib"]["gmpy2_fib_digits_ms"] == 10.0
    assert figures["fib"]["bound_ms"] == pytest.approx(18.0)
    assert figures["rounds"] == 3 and figures["pause_s"] == 1.5


def test_a_round_without_a_fib_share_leaves_the_floor_to_the_others(monkeypatch):
    answers = Answers()
    monkeypatch.setattr(cold_floor, "gmpy2_sample", lambda n: 12.0)
    figures = cold_floor.in_rounds(
        0, pi_count=4, fib_count=1, rounds=2, connection=answers, sleep=lambda s: None
    )
    assert figures["fib"]["count"] == 1 and figures["fib"]["round_medians_ms"] == [2.0]
    assert figures["pi"]["round_medians_ms"] == [2.0, 2.0]
    assert figures["gmpy2_fib_ms"] == 12.0
