"""Sealed picture entries: how a derived picture (an SVG) is stored in Redis and checked on read.

A picture is a document a browser renders, so an entry planted by whoever
else can write to the Redis would be a script served from this site. Each
entry is therefore sealed with the one MAC scheme of every entry of this
deployment (``integrity.EntrySeal``: BLAKE2b keyed from ``CACHE_SIGNING_KEY``
or ``SECRET_KEY``, over the full Redis key and the stored bytes):

    entry = b"p" + zlib(content) + MAC

On read the entry's size is bounded first, then the MAC is checked (an
entry this deployment did not write, or one copied under another key, is
refused without being inflated), then decompression is bounded
(``MAX_PICTURE_BYTES``), so nothing but what this deployment drew is ever
served. The key names this stored form (``convergence_cache_key``'s
``fmt``), so entries of an earlier form are never read.

    >>> seal_ = EntrySeal(secret=lambda: "s3cret")
    >>> unseal(seal_, "k", seal(seal_, "k", b"<svg/>"))
    b'<svg/>'
    >>> unseal(seal_, "other", seal(seal_, "k", b"<svg/>"))
    Traceback (most recent call last):
    ...
    compute.domain.payload.UnfitEntry: the MAC does not match the entry and its key
"""

from __future__ import annotations

import zlib

from compute.cache.integrity import EntrySeal
from compute.domain.payload import MALFORMED, OVERSIZED, UnfitEntry

_TAG = b"p"
# No picture of this site comes near this, stored or inflated; a bigger
# entry is refused unread, and inflation stops here.
MAX_PICTURE_BYTES = 1 << 20


def seal(entry_seal: EntrySeal, full_key: str, content: bytes) -> bytes:
    """Return the stored form of ``content`` under ``full_key``: tag, zlib of it, entry MAC."""
    return entry_seal.seal(full_key, _TAG + zlib.compress(content, 6))


def unseal(entry_seal: EntrySeal, full_key: str, stored: bytes) -> bytes:
    """Return the picture sealed under ``full_key``.

    Raise ``UnfitEntry``: ``OVERSIZED`` if the entry is larger than
    ``MAX_PICTURE_BYTES`` (before any hashing) or inflates past it,
    ``MALFORMED`` if it is too short for a MAC or (once authentic) not a
    whole zlib stream of a picture, ``FORGED`` if its MAC is not this
    deployment's for this key and these bytes (before any inflating).
    """
    data = entry_seal.open(full_key, stored, max_bytes=MAX_PICTURE_BYTES)
    if not data.startswith(_TAG):
        raise UnfitEntry(MALFORMED, "not a picture entry")
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(data[len(_TAG) :], MAX_PICTURE_BYTES)
    except zlib.error as exc:
        raise UnfitEntry(MALFORMED, f"not a zlib stream: {exc}") from None
    if inflater.unconsumed_tail:
        raise UnfitEntry(OVERSIZED, f"inflates past {MAX_PICTURE_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise UnfitEntry(MALFORMED, "truncated zlib stream or bytes after it")
    return content
