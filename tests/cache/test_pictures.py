"""Sealed picture entries (``compute.cache.pictures``): only what this deployment wrote is read."""

from __future__ import annotations

import zlib

from django.test import override_settings

from compute.cache import pictures


def test_a_sealed_picture_reads_back():
    assert pictures.unseal("mathsite:1:pi:7:c", pictures.seal("mathsite:1:pi:7:c", b"<svg/>")) == (
        b"<svg/>"
    )


def test_an_entry_under_another_key_is_refused():
    assert pictures.unseal("key-b", pictures.seal("key-a", b"<svg/>")) is None


def test_an_entry_changed_in_redis_is_refused():
    sealed = bytearray(pictures.seal("k", b"<svg>honest</svg>"))
    forged = bytes(sealed[:33]) + zlib.compress(b"<svg><script>alert(1)</script></svg>")
    assert pictures.unseal("k", forged) is None
    sealed[5] ^= 1
    assert pictures.unseal("k", bytes(sealed)) is None


def test_an_entry_sealed_with_another_secret_is_refused():
    with override_settings(SECRET_KEY="another-deployment-" + "x" * 40):
        foreign = pictures.seal("k", b"<svg/>")
    assert pictures.unseal("k", foreign) is None


def test_malformed_and_oversized_entries_are_refused_without_inflating_them():
    assert pictures.unseal("k", b"") is None
    assert pictures.unseal("k", b"p" + b"\0" * 32 + b"not zlib") is None
    bomb = b"p" + b"\0" * 32 + zlib.compress(b"\0" * (pictures.MAX_PICTURE_BYTES * 4))
    assert pictures.unseal("k", bomb) is None
    truncated = pictures.seal("k", b"<svg>" + b"x" * 1000 + b"</svg>")[:-4]
    assert pictures.unseal("k", truncated) is None
