"""Entry integrity: proof that this deployment wrote a Redis entry, and for which key.

Whoever can write to the Redis (a neighbour deployment, another user of a
shared server, a bug) could otherwise make mathsite serve a value it never
computed. So every entry ends in a keyed MAC over its full Redis key and
its bytes, and an entry whose MAC does not verify is never served (result
entries here; derived pictures, ``compute.cache.pictures``, the same way):

    entry = data + MAC
    MAC   = BLAKE2b(key=K, digest_size=16, person=b"mathsite-entry",
                    msg=len(full_key) as 4 bytes big-endian + full_key + data)
    K     = HMAC-SHA256(key=CACHE_SIGNING_KEY or SECRET_KEY,
                        msg=b"mathsite cache entries")

``data`` is ``Payload.to_redis()`` and ``full_key`` the UTF-8 Redis key
(``<prefix>:<version>:<kind>:<n>...:fmt2``). Every instance of a
deployment shares the secret (``SECRET_KEY``, or ``CACHE_SIGNING_KEY`` to
keep it apart from Django's other signatures), so any of them verifies what
another wrote; a neighbour deployment, with another secret, cannot write an
entry this one accepts, and an entry copied to another key does not verify
there. ``K`` is derived with a purpose label, so the MAC never doubles as
one of Django's own signatures. The MAC is checked when an entry is read
from Redis, not on in-process hits (the tier holds only payloads that
passed it).

``EntrySeal`` adds and checks the MAC; ``Rejections`` says why an entry
was discarded: logged once per reason per process, counted always
(``mathsite_cache_rejected_total{reason}``).

    >>> seal = EntrySeal(secret=lambda: "s3cret")
    >>> stored = seal.seal("mathsite:1:fib:10:fmt2", b"r55")
    >>> seal.open("mathsite:1:fib:10:fmt2", stored)
    b'r55'
    >>> seal.open("mathsite:1:fib:11:fmt2", stored)
    Traceback (most recent call last):
    ...
    compute.domain.payload.UnfitEntry: the MAC does not match the entry and its key
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from compute import metrics
from compute.cache.values import ReportedOnce
from compute.domain.payload import FORGED, MALFORMED, OVERSIZED, UnfitEntry

MAC_BYTES = 16
PURPOSE = b"mathsite cache entries"
_PERSON = b"mathsite-entry"


def derive_signing_key(secret: str | bytes) -> bytes:
    """Return the 32-byte MAC key derived from a deployment secret (HMAC-SHA256, purpose label)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, PURPOSE, hashlib.sha256).digest()


def entry_mac(signing_key: bytes, full_key: str, data: bytes) -> bytes:
    """Return the MAC of ``data`` stored under the Redis key ``full_key``."""
    key = full_key.encode()
    mac = hashlib.blake2b(
        len(key).to_bytes(4, "big") + key, key=signing_key, digest_size=MAC_BYTES, person=_PERSON
    )
    mac.update(data)
    return mac.digest()


class EntrySeal:
    """Append and verify entry MACs with the key derived from ``secret()``.

    ``secret`` is read on every use (so a changed setting applies at once)
    and the derivation is redone only when it changes.
    """

    def __init__(self, *, secret: Callable[[], str]) -> None:
        self.secret = secret
        self._derived: tuple[str, bytes] | None = None

    def signing_key(self) -> bytes:
        """Return the MAC key of the current secret."""
        secret = self.secret()
        derived = self._derived
        if derived is None or derived[0] != secret:
            derived = (secret, derive_signing_key(secret))
            self._derived = derived
        return derived[1]

    def seal(self, full_key: str, data: bytes) -> bytes:
        """Return the entry to store under ``full_key``: ``data`` followed by its MAC."""
        return data + entry_mac(self.signing_key(), full_key, data)

    def open(self, full_key: str, entry: bytes, *, max_bytes: int | None = None) -> bytes:
        """Return the data of an entry read from ``full_key``.

        Raise ``UnfitEntry``: ``OVERSIZED`` if the data is longer than
        ``max_bytes`` (checked first: a huge value costs no hashing),
        ``MALFORMED`` if it is too short to carry a MAC, ``FORGED`` if the
        MAC is not this deployment's for this key and these bytes.
        """
        if max_bytes is not None and len(entry) > max_bytes + MAC_BYTES:
            raise UnfitEntry(OVERSIZED, f"{len(entry)} bytes stored, more than {max_bytes}")
        if len(entry) <= MAC_BYTES:
            raise UnfitEntry(MALFORMED, "too short to carry a MAC")
        data, mac = entry[:-MAC_BYTES], entry[-MAC_BYTES:]
        if not hmac.compare_digest(mac, entry_mac(self.signing_key(), full_key, data)):
            raise UnfitEntry(FORGED, "the MAC does not match the entry and its key")
        return data


class Rejections:
    """Report discarded entries: a warning once per reason per process, a metric every time."""

    def __init__(self) -> None:
        self._report = ReportedOnce(metrics.cache_rejected)

    def report(self, rejected: UnfitEntry, key: str) -> None:
        """Count ``rejected`` (read from ``key``) and log it if its reason is new here."""
        self._report(
            rejected.reason,
            "Discarding cache entry %s (%s: %s); it is made again (a result from the "
            "result log, a picture drawn anew). "
            "Further %s entries are counted in mathsite_cache_rejected_total, not logged.",
            key,
            rejected.reason,
            rejected,
            rejected.reason,
        )

    def reset(self) -> None:
        """Forget which reasons were logged (a fresh start logs them again)."""
        self._report.reset()
