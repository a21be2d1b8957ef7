"""Management commands: warm_cache, clear_cache, cache_stats, against the run's real Redis.

Mirrors ``compute/management/commands/``. Values are checked against an
independent computation; keys of other namespaces are planted and must
survive; an unreachable Redis is a dead socket of the test's.
"""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from fractions import Fraction
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from redis.connection import AbstractConnection

from compute.cache import result_cache
from compute.domain.query import ResultQuery
from compute.management.commands import cache_stats, clear_cache, warm_cache
from compute.models import ComputedResult
from tests.support.caches import PointedCache, backend_at
from tests.support.entries import unsigned
from tests.support.reference import fib_reference

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_data(redis_client, query: ResultQuery) -> bytes | None:
    """Return the data of ``query``'s entry (its MAC checked against the documented one)."""
    key = result_cache.make_key(query.cache_key)
    entry = redis_client.get(key)
    return None if entry is None else unsigned(key, entry)


def stored_fib(redis_client, n: int) -> bytes | None:
    return stored_data(redis_client, ResultQuery("fib", n))


# --- warm_cache ---------------------------------------------------------------------


def test_warm_cache_computes_logs_and_caches_a_range(redis_client):
    out, err = run("warm_cache", "fib", "0", "50")
    assert "Warmed 51 fib results" in out
    assert "51 computed, 0 already cached or logged" in out
    assert "warming fib" in err and "51/51" in err  # the progress bar
    assert ComputedResult.objects.filter(kind="fib").count() == 51
    for n in (0, 1, 2, 49, 50):
        assert stored_fib(redis_client, n) == b"r" + str(fib_reference(n)).encode()
        assert ComputedResult.objects.get(kind="fib", n=n).value == str(fib_reference(n))

    out, _ = run("warm_cache", "fib", "0", "50", "--no-progress")
    assert "0 computed, 51 already cached or logged" in out


def test_warm_cache_refills_redis_from_the_log(redis_client):
    run("warm_cache", "fib", "10", "19", "--no-progress")
    result_cache.clear_namespace()
    out, _ = run("warm_cache", "fib", "10", "19", "--no-progress")
    assert "0 computed, 10 already cached or logged" in out
    assert stored_fib(redis_client, 15) == b"r610"


def test_warm_cache_pi_with_digits_and_a_step(redis_client):
    out, _ = run("warm_cache", "pi", "2", "20", "--digits", "12", "--step", "9", "--no-progress")
    assert "Warmed 3 pi results" in out
    rows = ComputedResult.objects.filter(kind="pi").order_by("n")
    assert [(r.n, r.precision) for r in rows] == [(2, 12), (11, 12), (20, 12)]
    # sqrt(6 * 1) with 12 significant digits.
    assert rows[0].value == "2.44948974278"
    assert stored_data(redis_client, ResultQuery("pi", 2, digits=12)) == b'r"2.44948974278"'


def test_warm_cache_refuses_a_huge_range_unless_forced():
    with pytest.raises(CommandError, match="--force"):
        run("warm_cache", "fib", "0", "1000000")
    assert ComputedResult.objects.count() == 0
    with pytest.raises(CommandError, match="exceed --max-digits"):
        run("warm_cache", "fib", "0", "100", "--max-digits", "100")
    out, _ = run("warm_cache", "fib", "0", "100", "--max-digits", "100", "--force", "--no-progress")
    assert "Warmed 101 fib results" in out


def test_warm_cache_estimate_of_stored_digits():
    # fib(n) has floor(n * log10(phi)) + 1 digits (n >= 2): the estimate is within 1%.
    exact = sum(len(str(fib_reference(n))) for n in range(1000, 3001, 10))
    estimate = warm_cache.estimated_digits(ResultQuery("fib", 1000), ResultQuery("fib", 3000), 10)
    assert abs(estimate - exact) / exact < 0.01
    pi_range = (ResultQuery("pi", 1, digits=30), ResultQuery("pi", 100, digits=30))
    assert warm_cache.estimated_digits(*pi_range, 1) == 3000  # 30 per result
    huge = warm_cache.estimated_digits(ResultQuery("fib", 0), ResultQuery("fib", 10**6), 1)
    assert huge > 10**11  # constant time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fib", "0", "2000000"), "FIB_MAX_N"),
        (("fib", "-1", "10"), "at least 0"),
        (("fib", "x", "10"), "digits 0-9"),
        (("fib", "0", "10", "--digits", "5"), "pi only"),
        (("pi", "0", "10"), "at least 1"),
        (("pi", "1", "10", "--digits", "5000"), "PI_MAX_DIGITS"),
        (("fib", "10", "5"), "below START"),
        (("fib", "0", "5", "--step", "0"), "--step"),
    ],
)
def test_warm_cache_rejects_bad_ranges(args, message):
    with pytest.raises(CommandError, match=message):
        run("warm_cache", *args)
    assert ComputedResult.objects.count() == 0


# --- clear_cache --------------------------------------------------------------------


def test_clear_cache_deletes_only_this_namespace(redis_client):
    run("warm_cache", "fib", "0", "9", "--no-progress")
    prefix = result_cache.namespace.split(":")[0]
    foreign = {f"elsewhere-{prefix}:1:fib:1": b"r1", f"{prefix}:7:fib:1": b"r1"}
    redis_client.mset(foreign)
    own = set(redis_client.scan_iter(match=result_cache.namespace + "*"))
    results = {result_cache.make_key(ResultQuery("fib", n).cache_key) for n in range(10)}
    assert {key.encode() for key in results} <= own
    kept = {result_cache.make_key("{meta}:generation").encode()}  # bumped, not deleted
    try:
        out, _ = run("clear_cache")
        count = len(own - kept)  # 10 results and the statistics hash
        assert out.strip() == f"Cleared {count} keys from namespace '{result_cache.namespace}'."
        assert [stored_fib(redis_client, n) for n in range(10)] == [None] * 10
        assert all(redis_client.get(k) == v for k, v in foreign.items())
        assert ComputedResult.objects.count() == 10  # the log keeps everything
    finally:
        redis_client.delete(*foreign)


def test_clear_cache_says_when_redis_is_unreachable(tmp_path, monkeypatch):
    dead = PointedCache(backend_at(f"unix://{tmp_path / 'gone.sock'}"))
    monkeypatch.setattr(clear_cache, "result_cache", dead)
    with pytest.raises(CommandError, match="Redis is unreachable"):
        run("clear_cache")


# --- cache_stats --------------------------------------------------------------------


def test_cache_stats_reports_entries_size_and_hit_ratio(redis_client):
    # Each warm_cache run sends its counts before it ends (a command exits
    # before a periodic flush would be due).
    run("warm_cache", "fib", "0", "9", "--no-progress")  # 10 fills
    run("warm_cache", "pi", "1", "2", "--no-progress")  # 2 fills
    run("warm_cache", "fib", "0", "9", "--no-progress")  # 10 hits

    out, _ = run("cache_stats", "--json")
    stats = json.loads(out)
    assert stats["namespace"] == result_cache.namespace
    assert stats["entries"] == 12
    assert stats["entries_by_kind"] == {"fib": 10, "pi": 2}
    queries = [ResultQuery("fib", n) for n in range(10)] + [ResultQuery("pi", n) for n in (1, 2)]
    expected_bytes = sum(redis_client.strlen(result_cache.make_key(q.cache_key)) for q in queries)
    assert stats["stored_bytes"] == expected_bytes
    assert (stats["hits"], stats["fills"]) == (10, 12)
    assert stats["hit_ratio"] == pytest.approx(10 / 22)
    assert stats["since"] is not None
    assert stats["used_memory"] > 0

    text, _ = run("cache_stats")
    assert "Entries:    12 (fib 10, pi 2)" in text
    assert "Hit ratio:  45.5% (10 hits, 12 fills, since " in text
    assert f"Stored:     {expected_bytes:,} bytes" in text


def test_cache_stats_start_empty_after_a_clear():
    run("warm_cache", "fib", "0", "3", "--no-progress")
    result_cache.clear_namespace()
    stats = json.loads(run("cache_stats", "--json")[0])
    assert (stats["entries"], stats["hits"], stats["fills"], stats["hit_ratio"]) == (0, 0, 0, None)
    assert "Hit ratio:  n/a (0 hits, 0 fills, no lookups counted yet)" in run("cache_stats")[0]


def test_cache_stats_says_when_redis_is_unreachable(tmp_path, monkeypatch):
    dead = PointedCache(backend_at(f"unix://{tmp_path / 'gone.sock'}"))
    monkeypatch.setattr(cache_stats, "result_cache", dead)
    with pytest.raises(CommandError, match="Redis is unreachable"):
        run("cache_stats")


class _Terminal(StringIO):
    """A stream that says it is a UTF-8 terminal (where Django would colour stderr)."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_warm_cache_progress_bar_is_plain_blocks_on_a_terminal():
    err = _Terminal()
    call_command("warm_cache", "fib", "0", "20", stdout=StringIO(), stderr=err, force_color=True)
    text = err.getvalue()
    assert "21/21" in text and "\u2588" in text  # a full block: the finished bar
    assert "\x1b[" not in text  # no colour: it is not an error
    assert "#" not in text


def test_warm_cache_progress_bar_without_utf8_is_drawn_with_equals():
    _, err = run("warm_cache", "fib", "0", "20")  # StringIO: no encoding
    assert "|==========|" in err and "#" not in err


def _pi_double(n: int) -> float:
    """pi(n) from the exact partial sum (Fraction) and a 50-digit square root."""
    total = sum(Fraction(1, i * i) for i in range(1, n))
    with localcontext() as context:
        context.prec = 50
        return float((Decimal(6 * total.numerator) / Decimal(total.denominator)).sqrt())


def test_warm_cache_batches_its_round_trips_and_queries(
    redis_client, django_assert_max_num_queries, monkeypatch
):
    # The commands this process sends (the Redis server may be shared: its own
    # command statistics would count other clients' commands too).
    sent = [0]
    pack_command = AbstractConnection.pack_command
    pack_commands = AbstractConnection.pack_commands

    def counting_one(self, *args):
        sent[0] += 1
        return pack_command(self, *args)

    def counting_many(self, commands):
        commands = list(commands)
        sent[0] += len(commands)
        return pack_commands(self, commands)

    monkeypatch.setattr(AbstractConnection, "pack_command", counting_one)
    monkeypatch.setattr(AbstractConnection, "pack_commands", counting_many)

    def redis_calls() -> int:
        return sent[0]

    before = redis_calls()
    # Per batch of 500: one SELECT of the logged values and one bulk INSERT (which
    # SQLite's limit of 999 parameters splits into five); the old loop made three
    # queries per result, 6,000 here.
    with django_assert_max_num_queries(4 * (1 + 5) + 4):
        out, _ = run("warm_cache", "pi", "1", "2000", "--batch", "500", "--no-progress")
    assert "2,000 computed" in out
    # Per batch 500 EXISTS and 500 SETs, in two pipelines; nothing else per result
    # (the old loop sent about five commands per result).
    assert 2000 <= redis_calls() - before < 2 * 2000 + 50
    assert ComputedResult.objects.filter(kind="pi").count() == 2000
    for n in (1, 2, 100, 1999):
        expected = repr(_pi_double(n)) if n > 1 else "0.0"
        assert ComputedResult.objects.get(kind="pi", n=n).value == expected
        assert stored_data(redis_client, ResultQuery("pi", n)) == b"r" + expected.encode()
    out, _ = run("warm_cache", "pi", "1", "2000", "--no-progress")
    assert "0 computed, 2,000 already cached or logged" in out
