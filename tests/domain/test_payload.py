"""Stored and served bytes of results (compute.domain.payload)."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc

import pytest

from compute.domain.payload import (
    MALFORMED,
    MISMATCH,
    OVERSIZED,
    STORE_GZIP_MIN_BYTES,
    Payload,
    UnfitEntry,
    gunzip_bytes,
    max_entry_bytes,
)
from compute.domain.query import Limits, ResultQuery
from tests.support.entries import zeros_gzip
from tests.support.reference import fib_reference, unlimited_int_digits

BOUND = max_entry_bytes(Limits(10**6, 10**18, 1000, 10**18, 10**18))


def fib_text(n: int) -> str:
    with unlimited_int_digits():
        return str(fib_reference(n))


def test_small_payload_round_trip():
    query = ResultQuery("fib", 10)
    payload = Payload.from_text(query, "55")
    stored = payload.to_redis()
    assert stored == b"r55"
    again = Payload.from_redis(query, stored, max_bytes=BOUND)
    assert json.loads(again.body(cached=True)) == {"cached": True, "result": 55, "n": 10}
    assert json.loads(again.body(cached=False, as_string=True)) == {
        "cached": False,
        "result": "55",
        "n": 10,
    }


def test_pi_digits_payload_is_a_string_with_digits_field():
    query = ResultQuery("pi", 100, digits=5)
    payload = Payload.from_text(query, "3.1320")
    assert json.loads(payload.body(cached=True)) == {
        "cached": True,
        "result": "3.1320",
        "n": 100,
        "digits": 5,
    }
    assert payload.text == "3.1320"


def test_large_payload_is_stored_as_the_gzip_body():
    n = 30_000
    text = fib_text(n)
    query = ResultQuery("fib", n)
    payload = Payload.from_text(query, text)
    stored = payload.to_redis()
    assert stored[:1] == b"z" and stored[1:3] == b"\x1f\x8b"
    assert len(stored) < len(text) * 0.5
    body = gzip.decompress(stored[1:])
    assert body == b'{"cached":true,"result":' + text.encode() + b',"n":30000}'
    again = Payload.from_redis(query, stored, max_bytes=BOUND)
    assert again.literal == text.encode()
    # The stored gzip body is what a gzip client is sent: no recompression.
    assert again.body(cached=True, gzip=True) == stored[1:]
    assert len(payload.body(cached=True)) >= STORE_GZIP_MIN_BYTES


def reason_of(query: ResultQuery, stored: bytes, max_bytes: int = BOUND) -> str:
    with pytest.raises(UnfitEntry) as caught:
        Payload.from_redis(query, stored, max_bytes=max_bytes)
    return caught.value.reason


def test_stored_body_for_another_key_is_rejected():
    stored = Payload.from_text(ResultQuery("fib", 30_000), fib_text(30_000)).to_redis()
    assert reason_of(ResultQuery("fib", 30_001), stored) == MISMATCH
    assert reason_of(ResultQuery("fib", 2), b"\x80\x04pickle") == MALFORMED


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        # The values of issue 11, item 1 (any of them was served before).
        (ResultQuery("fib", 20), b"r6766"),
        (ResultQuery("pi", 100), b"r99999999999"),
        (ResultQuery("pi", 100), b"r-3.14"),
        (ResultQuery("pi", 100), b"r1e999"),
        (ResultQuery("pi", 100, digits=5), b'r"9.99999999"'),
        (
            ResultQuery("fib", 30003),
            b"z"
            + gzip.compress(
                b'{"cached":true,"result":<script>alert(1)</script>,"n":30003}', mtime=0
            ),
        ),
        # Right shape, wrong result: another n's value, a wrong precision.
        (ResultQuery("fib", 21), b"r6765"),
        (ResultQuery("fib", 21), b"r010946"),
        (ResultQuery("pi", 100), b"r3.14159"),  # pi itself, not pi(100)
        (ResultQuery("pi", 1), b"r3.131980747244363"),
        (ResultQuery("pi", 100, digits=5), b'r"3.132"'),
        (ResultQuery("pi", 100, digits=5), b'r"3.1321e0"'),
        (ResultQuery("pi", 1, digits=5), b'r"0.0000"'),
    ],
)
def test_an_entry_that_is_not_its_querys_result_is_refused(query, stored):
    assert reason_of(query, stored) == MISMATCH


def test_an_entry_larger_than_the_bound_is_refused_before_decoding():
    query = ResultQuery("fib", 20)
    assert reason_of(query, b"r" + b"1" * 100, max_bytes=50) == OVERSIZED


def test_a_zip_bomb_stops_at_the_bound_fast_and_small():
    bomb = zeros_gzip(300)
    assert len(bomb) < 400_000  # 300 MB of zeros in about 290 kB
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(UnfitEntry) as caught:
        gunzip_bytes(bomb, max_bytes=BOUND)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert caught.value.reason == OVERSIZED
    assert seconds < 0.05  # unbounded: about 0.9 s on this machine
    assert peak < 4 * BOUND  # unbounded: 300 MB


@pytest.mark.parametrize(
    "stream",
    [
        b"\x1f\x8b not gzip",
        gzip.compress(b"complete", mtime=0)[:-4],  # truncated
        gzip.compress(b"complete", mtime=0) + b"trailing",
    ],
)
def test_broken_gzip_streams_are_malformed(stream):
    with pytest.raises(UnfitEntry) as caught:
        gunzip_bytes(stream, max_bytes=BOUND)
    assert caught.value.reason == MALFORMED


def test_the_default_bound_is_a_little_above_the_largest_legal_body():
    body = Payload.from_text(ResultQuery("fib", 10**6), fib_text(10**6)).body(cached=True)
    assert len(body) < BOUND < len(body) + 300 * 1024
    wider = max_entry_bytes(Limits(10**7, 10**18, 1000, 10**18, 10**18))
    assert wider > 10 * len(body) * 0.9  # follows FIB_MAX_N
    assert max_entry_bytes(Limits(10, 10, 5_000_000, 10, 10)) > 5_000_000  # and PI_MAX_DIGITS


def test_fib_mod_body_carries_mod_and_stored_residue_must_be_below_it():
    query = ResultQuery("fib", 10, mod=10)
    payload = Payload.from_text(query, "5")
    assert payload.body(cached=False) == b'{"cached":false,"result":5,"n":10,"mod":10}'
    assert json.loads(payload.body(cached=True, as_string=True)) == {
        "cached": True,
        "result": "5",
        "n": 10,
        "mod": 10,
    }
    stored = payload.to_redis()
    assert Payload.from_redis(query, stored, max_bytes=BOUND).literal == b"5"
    # The plain fib(10) entry (55) is no residue mod 10: never served under this key.
    assert reason_of(query, b"r55") == MISMATCH
    assert reason_of(query, b"r" + b"1" * 30) == MISMATCH
    # M a multiple of 10: the residue ends in fib(n)'s last digit (fib(10) = 55).
    assert reason_of(ResultQuery("fib", 10, mod=100), b"r54") == MISMATCH
    assert (
        Payload.from_redis(ResultQuery("fib", 10, mod=100), b"r55", max_bytes=BOUND).literal
        == b"55"
    )
