"""Result payloads: the bytes a result is stored as and served as.

A result is kept as its JSON literal (``3.131980747244363``, ``"3.1320"``,
or the 208,988 digits of fib(1,000,000)) and response bodies are spliced
around it, so a huge integer is never converted by CPython's int-to-str
and never re-serialised on a hit. Large payloads are stored in Redis as
the gzip of the ``cached: true`` body, which a client accepting gzip is
sent exactly as stored (Huffman-only deflate: about 0.44 bytes per decimal
digit, at a fraction of the cost of the default level). The streams are
made and read by zlib-ng (``zlib_ng``: zlib's API and format, in less than
half the time; the store's gzip is on a cold request's path before it is
answered: bench/README.md).

A body is ``{"cached", "result", "n"}`` plus ``"digits"`` for a pi with
digits or ``"mod"`` for a fib residue (``{"cached":false,"result":5,"n":10,"mod":10}``).

What ``to_redis`` returns (the entry format ``query.ENTRY_FORMAT``, 2, to
which ``compute.cache.integrity`` appends the MAC): ``b"r" + literal`` or
``b"z" + gzip(cached-true body)``. ``from_redis`` reads it back only if it
is that query's result: the shape and size of its literal
(``compute.domain.plausible``), the n and digits of a gzip body, and a
decompressed size bounded by ``max_entry_bytes`` (a zip bomb stops there).
"""

from __future__ import annotations

from zlib_ng import zlib_ng

from compute.domain.kinds import registry
from compute.domain.plausible import check_literal
from compute.domain.query import Limits, ResultQuery

_TRUE = b'{"cached":true,"result":'
_FALSE = b'{"cached":false,"result":'
# Bodies from this size up are gzip-compressed for clients that accept it.
GZIP_MIN_BYTES = 200
# What a payload holds besides its literal and bodies (``Payload.nbytes``):
# measured with tracemalloc (CPython 3.11, 64-bit), small pi and fib-mod
# payloads with all four bodies built held 730-775 bytes more than those
# bytes; rounded up for the allocator's rounding. (256 before: a small
# result held twice what the in-process tier counted for it.)
PAYLOAD_BYTES = 896
# Bodies from this size up are stored compressed in Redis.
STORE_GZIP_MIN_BYTES = 4096
# Room above the largest result body for other entries stored the same way
# (the convergence picture, an SVG) when ``CACHE_MAX_ENTRY_BYTES`` is unset.
PICTURE_ALLOWANCE = 256 * 1024
# The body around a result's digits: ``{"cached":true,"result":`` and at most
# ``,"n":<19 digits>,"digits":<digits>}``, with room to spare.
_BODY_FRAME = 128

# Why an entry read from Redis is not served (the label of the metric).
MALFORMED = "malformed"  # not an entry of this format at all (junk, a pickle, bad gzip)
FORGED = "bad_mac"  # its MAC does not prove this deployment wrote it for this key
OVERSIZED = "oversized"  # larger, stored or decompressed, than any legal entry
MISMATCH = "mismatch"  # authentic, yet not a result of its key's query
REASONS = (MALFORMED, FORGED, OVERSIZED, MISMATCH)


class UnfitEntry(ValueError):
    """A stored entry that must not be served; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def max_entry_bytes(limits: Limits) -> int:
    """Return the default bound of an entry, stored or decompressed: a little above the
    largest legal body (the longest literal any kind allows: fib(FIB_MAX_N)'s digits or
    PI_MAX_DIGITS, whichever is longer)."""
    digits = max(kind.largest_literal(limits) for kind in registry.kinds())
    return digits + _BODY_FRAME + PICTURE_ALLOWANCE


def gzip_bytes(data: bytes) -> bytes:
    """Return a gzip stream of ``data`` (Huffman-only: fast and compact for digits)."""
    compressor = zlib_ng.compressobj(9, zlib_ng.DEFLATED, 31, 9, zlib_ng.Z_HUFFMAN_ONLY)
    return compressor.compress(data) + compressor.flush()


def gunzip_bytes(data: bytes, *, max_bytes: int) -> bytes:
    """Return the content of a complete gzip stream of at most ``max_bytes``.

    Raise ``UnfitEntry`` (``OVERSIZED``) as soon as the output passes
    ``max_bytes``: inflation stops there, so a small stream that would expand
    to gigabytes costs at most ``max_bytes`` of memory and the time to
    produce them. A broken, truncated or trailing-garbage stream is
    ``MALFORMED``.
    """
    inflater = zlib_ng.decompressobj(31)
    try:
        body = inflater.decompress(data, max_bytes + 1)
    except zlib_ng.error as exc:
        raise UnfitEntry(MALFORMED, f"not a gzip stream ({exc})") from None
    if len(body) > max_bytes:
        raise UnfitEntry(OVERSIZED, f"decompresses to more than {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise UnfitEntry(MALFORMED, "truncated gzip stream or bytes after it")
    return body


class Payload:
    """One result's JSON literal plus the response bodies built from it (memoised).

    Instances are immutable in what they return and are shared between
    requests through the in-process tier, so memoised bodies are built at
    most once per process.
    """

    __slots__ = ("_memo", "literal", "suffix")

    def __init__(self, literal: bytes, suffix: bytes) -> None:
        self.literal = literal
        self.suffix = suffix
        self._memo: dict[tuple[bool, bool], bytes] = {}

    @classmethod
    def from_text(cls, query: ResultQuery, text: str) -> Payload:
        """Return the payload of ``query`` whose result's text form is ``text``."""
        literal = text.encode("ascii")
        if query.digits is not None:
            literal = b'"' + literal + b'"'
        return cls(literal, _suffix(query))

    @classmethod
    def from_redis(cls, query: ResultQuery, data: bytes, *, max_bytes: int) -> Payload:
        """Return ``query``'s payload stored by ``to_redis``.

        Raise ``UnfitEntry`` if ``data`` is not an entry of this format, is
        larger than ``max_bytes`` (stored or decompressed), or is not a
        plausible result of ``query`` (``plausible.check_literal``; a gzip
        body must name the query's n and digits).
        """
        if len(data) > max_bytes:
            raise UnfitEntry(OVERSIZED, f"{len(data)} bytes stored, more than {max_bytes}")
        tag, rest = data[:1], data[1:]
        suffix = _suffix(query)
        if tag == b"r":
            return cls(_checked(query, rest), suffix)
        if tag == b"z":
            body = gunzip_bytes(rest, max_bytes=max_bytes)
            if not (body.startswith(_TRUE) and body.endswith(suffix)):
                raise UnfitEntry(MISMATCH, "stored body does not belong to this key")
            literal = _checked(query, body[len(_TRUE) : len(body) - len(suffix)])
            payload = cls(literal, suffix)
            payload._memo[(False, False)] = body
            payload._memo[(True, False)] = rest
            return payload
        raise UnfitEntry(MALFORMED, "unknown payload tag")

    def to_redis(self) -> bytes:
        """Return the stored form: raw literal, or the gzip of the cached body when large."""
        body = self.body(cached=True)
        if len(body) >= STORE_GZIP_MIN_BYTES:
            return b"z" + self.body(cached=True, gzip=True)
        return b"r" + self.literal

    @property
    def text(self) -> str:
        """Return the result's text form (digits, without JSON quotes)."""
        return self.literal.strip(b'"').decode("ascii")

    def body(self, *, cached: bool, as_string: bool = False, gzip: bool = False) -> bytes:
        """Return the JSON body (gzip-compressed if ``gzip``) for this representation."""
        if not cached:  # served once, right after computing: not memoised
            raw = _FALSE + self._literal(as_string) + self.suffix
            return gzip_bytes(raw) if gzip else raw
        memo_key = (gzip, as_string)
        found = self._memo.get(memo_key)
        if found is None:
            if gzip:
                found = gzip_bytes(self.body(cached=True, as_string=as_string))
            else:
                found = _TRUE + self._literal(as_string) + self.suffix
            self._memo[memo_key] = found
        return found

    def body_length(self, *, as_string: bool = False) -> int:
        """Return the length of the uncompressed cached body without building it."""
        extra = 2 if as_string and not self.literal.startswith(b'"') else 0
        return len(_TRUE) + len(self.literal) + extra + len(self.suffix)

    @property
    def nbytes(self) -> int:
        """Return an upper bound of the memory this payload can hold once every
        memoised body is built (literal + two plain and two gzip bodies), so the
        in-process tier's budget holds however it is used later.

        ``PAYLOAD_BYTES`` is what a payload holds besides those bytes: the
        object, its memo dict, the memo's keys, each bytes object's header,
        and the gzip framing that makes a tiny body's gzip longer than it.
        """
        return PAYLOAD_BYTES + 4 * (len(self.literal) + len(self.suffix) + len(_TRUE) + 2)

    def _literal(self, as_string: bool) -> bytes:
        if as_string and not self.literal.startswith(b'"'):
            return b'"' + self.literal + b'"'
        return self.literal


def _checked(query: ResultQuery, literal: bytes) -> bytes:
    try:
        check_literal(query, literal)
    except ValueError as exc:
        raise UnfitEntry(MISMATCH, f"stored literal is not this result: {exc}") from None
    return literal


def _suffix(query: ResultQuery) -> bytes:
    if query.digits is not None:
        return b',"n":%d,"digits":%d}' % (query.n, query.digits)
    if query.mod is not None:
        return b',"n":%d,"mod":%d}' % (query.n, query.mod)
    return b',"n":%d}' % query.n
