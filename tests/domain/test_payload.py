"""Stored and served bytes of results (compute.domain.payload)."""

from __future__ import annotations

import gzip
import json

import pytest

from compute.domain.payload import STORE_GZIP_MIN_BYTES, Payload
from compute.domain.query import ResultQuery


def test_small_payload_round_trip():
    query = ResultQuery("fib", 10)
    payload = Payload.from_text(query, "55")
    stored = payload.to_redis()
    assert stored == b"r55"
    again = Payload.from_redis(query, stored)
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
    query = ResultQuery("fib", 99999)
    text = "1234567890" * 2000
    payload = Payload.from_text(query, text)
    stored = payload.to_redis()
    assert stored[:1] == b"z" and stored[1:3] == b"\x1f\x8b"
    assert len(stored) < len(text) * 0.5
    body = gzip.decompress(stored[1:])
    assert body == b'{"cached":true,"result":' + text.encode() + b',"n":99999}'
    again = Payload.from_redis(query, stored)
    assert again.literal == text.encode()
    # The stored gzip body is what a gzip client is sent: no recompression.
    assert again.body(cached=True, gzip=True) == stored[1:]
    assert len(payload.body(cached=True)) >= STORE_GZIP_MIN_BYTES


def test_stored_body_for_another_key_is_rejected():
    text = "9" * 10_000
    stored = Payload.from_text(ResultQuery("fib", 1), text).to_redis()
    with pytest.raises(ValueError, match="does not belong"):
        Payload.from_redis(ResultQuery("fib", 2), stored)
    with pytest.raises(ValueError, match="unknown payload tag"):
        Payload.from_redis(ResultQuery("fib", 2), b"\x80\x04pickle")


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
    assert Payload.from_redis(query, stored).literal == b"5"
    # The plain fib(10) entry (55) is no residue mod 10: never served under this key.
    with pytest.raises(ValueError, match="below its modulus"):
        Payload.from_redis(query, b"r55")
    with pytest.raises(ValueError, match="below its modulus"):
        Payload.from_redis(query, b"r" + b"1" * 30)
