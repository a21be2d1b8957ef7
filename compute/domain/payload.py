"""Result payloads: the bytes a result is stored as and served as.

A result is kept as its JSON literal (``3.131980747244363``, ``"3.1320"``,
or the 208,988 digits of fib(1,000,000)) and response bodies are spliced
around it, so a huge integer is never converted by CPython's int-to-str
and never re-serialised on a hit. Large payloads are stored in Redis as
the gzip of the ``cached: true`` body, which a client accepting gzip is
sent exactly as stored (Huffman-only deflate: about 0.44 bytes per decimal
digit, at a fraction of the cost of the default level).

A body is ``{"cached", "result", "n"}`` plus ``"digits"`` for a pi with
digits or ``"mod"`` for a fib residue (``{"cached":false,"result":5,"n":10,"mod":10}``).

Stored format version 1 (``queries.FORMAT_VERSION``): ``b"r" + literal`` or
``b"z" + gzip(cached-true body)``.
"""

from __future__ import annotations

import re
import zlib

from compute.domain.query import FIB, ResultQuery

_TRUE = b'{"cached":true,"result":'
_FALSE = b'{"cached":false,"result":'
# Bodies from this size up are gzip-compressed for clients that accept it.
GZIP_MIN_BYTES = 200
# Bodies from this size up are stored compressed in Redis.
STORE_GZIP_MIN_BYTES = 4096
# What a raw (``b"r"``) stored literal may look like: a JSON number for a
# double, an integer for fib, a quoted decimal for a pi with digits.
# Anything else is a malformed entry, never served.
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(rb"0|[1-9][0-9]*")
_DECIMAL_STRING = re.compile(rb'"[0-9]+(?:\.[0-9]+)?"')


def gzip_bytes(data: bytes) -> bytes:
    """Return a gzip stream of ``data`` (Huffman-only: fast and compact for digits)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_HUFFMAN_ONLY)
    return compressor.compress(data) + compressor.flush()


def gunzip_bytes(data: bytes) -> bytes:
    """Return the content of a gzip stream."""
    return zlib.decompress(data, 31)


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
    def from_redis(cls, query: ResultQuery, data: bytes) -> Payload:
        """Return the payload stored by ``to_redis``; raise ValueError if malformed."""
        tag, rest = data[:1], data[1:]
        suffix = _suffix(query)
        if tag == b"r":
            if _literal_pattern(query).fullmatch(rest) is None:
                raise ValueError("stored literal is not a result of this kind")
            if query.mod is not None and (len(rest) > 24 or int(rest) >= query.mod):
                # A residue mod M is below M: anything else is not this key's value.
                raise ValueError("stored residue is not below its modulus")
            return cls(rest, suffix)
        if tag == b"z":
            body = gunzip_bytes(rest)
            if not (body.startswith(_TRUE) and body.endswith(suffix)):
                raise ValueError("stored body does not belong to this key")
            payload = cls(body[len(_TRUE) : len(body) - len(suffix)], suffix)
            payload._memo[(False, False)] = body
            payload._memo[(True, False)] = rest
            return payload
        raise ValueError("unknown payload tag")

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
        in-process tier's budget holds however it is used later."""
        return 256 + 4 * (len(self.literal) + len(self.suffix) + len(_TRUE) + 2)

    def _literal(self, as_string: bool) -> bytes:
        if as_string and not self.literal.startswith(b'"'):
            return b'"' + self.literal + b'"'
        return self.literal


def _literal_pattern(query: ResultQuery) -> re.Pattern[bytes]:
    """Return the shape of ``query``'s raw literal (compressed entries are checked
    against their key when decoded; raw ones are short, so a regex is cheap)."""
    if query.digits is not None:
        return _DECIMAL_STRING
    if query.kind == FIB:
        return _INTEGER
    return _NUMBER


def _suffix(query: ResultQuery) -> bytes:
    if query.digits is not None:
        return b',"n":%d,"digits":%d}' % (query.n, query.digits)
    if query.mod is not None:
        return b',"n":%d,"mod":%d}' % (query.n, query.mod)
    return b',"n":%d}' % query.n
