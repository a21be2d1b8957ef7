"""Sealed picture entries: how a derived picture (an SVG) is stored in Redis and checked on read.

A picture is a document a browser renders, so an entry planted by whoever
else can write to the Redis would be a script served from this site. Each
entry is therefore sealed: an HMAC-SHA256 under the deployment's
``SECRET_KEY`` of its key and content, then the content compressed. On
read the seal is checked first (an entry this deployment did not write, or
one copied under another key, is refused) and decompression is bounded
(``MAX_PICTURE_BYTES``), so nothing but what this deployment drew is ever
served.

    >>> unseal("k", seal("k", b"<svg/>"))
    b'<svg/>'
    >>> unseal("other", seal("k", b"<svg/>")) is None
    True
"""

from __future__ import annotations

import hmac
import zlib

from django.utils.crypto import salted_hmac

_TAG = b"p"
_SALT = "mathsite.cache.pictures"
_DIGEST_BYTES = 32
# No picture of this site comes near this; a bigger entry is refused unread.
MAX_PICTURE_BYTES = 1 << 20


def _mac(key: str, content: bytes) -> bytes:
    return salted_hmac(_SALT, key.encode() + b"\0" + content, algorithm="sha256").digest()


def seal(key: str, content: bytes) -> bytes:
    """Return the stored form of ``content`` under ``key``: tag, HMAC, compressed content."""
    return _TAG + _mac(key, content) + zlib.compress(content, 6)


def unseal(key: str, stored: bytes) -> bytes | None:
    """Return the content sealed under ``key``, or None if the entry is not one this wrote."""
    if not stored.startswith(_TAG) or len(stored) <= 1 + _DIGEST_BYTES:
        return None
    mac, packed = stored[1 : 1 + _DIGEST_BYTES], stored[1 + _DIGEST_BYTES :]
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(packed, MAX_PICTURE_BYTES)
    except zlib.error:
        return None
    if inflater.unconsumed_tail or not inflater.eof:
        return None  # larger than any picture, or truncated
    if not hmac.compare_digest(mac, _mac(key, content)):
        return None
    return content
