"""Redis entries as docs/design.md documents them, built without mathsite's own code.

``sign`` implements the documented format from its description (docs/design.md,
"How the cache works"; ``compute/cache/integrity.py``), so the tests check
the code against the documentation, and an attacker who knows the
deployment's secret can be played by a test: ``sign(secret, key, data)``.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import zlib

from django.conf import settings

MAC_BYTES = 16


def deployment_secret() -> str:
    """Return the secret this test run's entries are keyed with."""
    return settings.CACHE_SIGNING_KEY or settings.SECRET_KEY


def mac_of(secret: str, full_key: str, data: bytes) -> bytes:
    """Return the documented MAC of ``data`` under ``full_key``."""
    derived = hmac.new(secret.encode(), b"mathsite cache entries", hashlib.sha256).digest()
    key = full_key.encode()
    message = len(key).to_bytes(4, "big") + key + data
    return hashlib.blake2b(message, key=derived, digest_size=16, person=b"mathsite-entry").digest()


def sign(full_key: str, data: bytes, secret: str | None = None) -> bytes:
    """Return ``data`` as an entry of ``full_key`` with a MAC (the run's secret unless given)."""
    return data + mac_of(secret or deployment_secret(), full_key, data)


def unsigned(full_key: str, entry: bytes, secret: str | None = None) -> bytes:
    """Return an entry's data; AssertionError unless its MAC is the documented one."""
    data, mac = entry[:-MAC_BYTES], entry[-MAC_BYTES:]
    assert mac == mac_of(secret or deployment_secret(), full_key, data), (full_key, entry[:40])
    return data


def zeros_gzip(megabytes: int) -> bytes:
    """Return a gzip stream of ``megabytes`` MB of zeros (a zip bomb), built a MB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(megabytes)) + compressor.flush()


# The values of issue 11, item 1, that were served as results before entries
# were signed: (kind, n, digits, path, stored data).
SCRIPT_BODY = b'{"cached":true,"result":<script>alert(1)</script>,"n":30003}'
ATTACKS = [
    ("fib", 20, None, "/api/fib/20/", b"r6766"),
    ("pi", 100, None, "/api/pi/100/", b"r99999999999"),
    ("pi", 100, None, "/api/pi/100/", b"r-3.14"),
    ("pi", 100, None, "/api/pi/100/", b"r1e999"),
    ("pi", 100, 5, "/api/pi/100/?digits=5", b'r"9.99999999"'),
    ("fib", 30003, None, "/api/fib/30003/", b"z" + gzip.compress(SCRIPT_BODY, mtime=0)),
]
