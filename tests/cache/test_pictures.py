"""Sealed picture entries (``compute.cache.pictures``): only what this deployment wrote is read.

Pictures carry the entry MAC of result entries (``integrity.EntrySeal``), so
the entries are built here with ``tests.support.entries.sign`` from the
documented format, not with the code under test.
"""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from django.test import override_settings

from compute.cache import pictures, result_cache
from compute.cache.integrity import EntrySeal
from compute.domain.payload import FORGED, MALFORMED, OVERSIZED, UnfitEntry
from tests.support.entries import sign, unsigned

KEY = "mathsite:1:pi:7:convergence-v1:fmt2"


@pytest.fixture
def seal() -> EntrySeal:
    """The process cache's seal: keyed from CACHE_SIGNING_KEY or SECRET_KEY, as in production."""
    return result_cache.seal


def refused(seal: EntrySeal, key: str, stored: bytes) -> str:
    """Return the reason ``stored`` is refused under ``key`` (fail if it is accepted)."""
    with pytest.raises(UnfitEntry) as refusal:
        pictures.unseal(seal, key, stored)
    return refusal.value.reason


def test_a_sealed_picture_reads_back(seal):
    assert pictures.unseal(seal, KEY, pictures.seal(seal, KEY, b"<svg/>")) == b"<svg/>"


def test_the_stored_form_is_the_documented_one(seal):
    """``p`` + the zlib of the picture, then the MAC of every entry over the full key."""
    stored = pictures.seal(seal, KEY, b"<svg>documented</svg>")
    data = unsigned(KEY, stored)  # AssertionError unless the MAC is the documented one
    assert data[:1] == b"p" and zlib.decompress(data[1:]) == b"<svg>documented</svg>"
    assert pictures.unseal(seal, KEY, sign(KEY, b"p" + zlib.compress(b"<svg/>"))) == b"<svg/>"


def test_an_entry_under_another_key_is_refused(seal):
    assert refused(seal, "key-b", pictures.seal(seal, "key-a", b"<svg/>")) == FORGED


def test_an_entry_changed_in_redis_is_refused(seal):
    sealed = bytearray(pictures.seal(seal, KEY, b"<svg>honest</svg>"))
    mac = bytes(sealed[-16:])
    forged = b"p" + zlib.compress(b"<svg><script>alert(1)</script></svg>") + mac
    assert refused(seal, KEY, forged) == FORGED
    sealed[5] ^= 1
    assert refused(seal, KEY, bytes(sealed)) == FORGED
    assert refused(seal, KEY, b"<svg><script>alert(1)</script></svg>") == FORGED


def test_an_entry_sealed_with_another_secret_is_refused(seal):
    with override_settings(SECRET_KEY="another-deployment-" + "x" * 40):
        foreign = pictures.seal(seal, KEY, b"<svg/>")
    assert refused(seal, KEY, foreign) == FORGED


def test_pictures_follow_cache_signing_key(seal):
    signing_key = "picture-signing-key-" + "k" * 40
    with override_settings(CACHE_SIGNING_KEY=signing_key):
        stored = pictures.seal(seal, KEY, b"<svg/>")
        assert pictures.unseal(seal, KEY, stored) == b"<svg/>"
        with override_settings(SECRET_KEY="another-secret-key-" + "s" * 40):
            assert pictures.unseal(seal, KEY, stored) == b"<svg/>"  # SECRET_KEY is not used
    assert unsigned(KEY, stored, secret=signing_key)[:1] == b"p"
    assert refused(seal, KEY, stored) == FORGED  # without it, the secret is SECRET_KEY's


def test_malformed_and_oversized_entries_are_refused_without_inflating_them(seal):
    assert refused(seal, KEY, b"") == MALFORMED
    assert refused(seal, KEY, b"p" + b"\0" * 32 + b"not zlib") == FORGED  # never inflated
    assert refused(seal, KEY, sign(KEY, b"p" + b"not zlib")) == MALFORMED
    assert refused(seal, KEY, sign(KEY, b"q" + zlib.compress(b"<svg/>"))) == MALFORMED
    assert refused(seal, KEY, sign(KEY, b"p" + zlib.compress(b"<svg/>") + b"tail")) == MALFORMED
    truncated = sign(KEY, pictures.seal(seal, KEY, b"<svg>" + b"x" * 1000 + b"</svg>")[:-20])
    assert refused(seal, KEY, truncated) == MALFORMED
    huge = sign(KEY, b"p" + b"\0" * (pictures.MAX_PICTURE_BYTES + 1))
    assert refused(seal, KEY, huge) == OVERSIZED  # refused before it is hashed


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_zip_bomb_is_refused_with_bounded_memory(seal, signed):
    """Unsigned, a bomb is never inflated; signed (by a key holder), it stops at the bound."""
    bomb = b"p" + zlib.compress(bytes(pictures.MAX_PICTURE_BYTES * 64), 9)
    stored = sign(KEY, bomb) if signed else bomb + b"\0" * 16
    tracemalloc.start()
    reason = refused(seal, KEY, stored)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reason == (OVERSIZED if signed else FORGED)
    assert peak < 3 * pictures.MAX_PICTURE_BYTES
