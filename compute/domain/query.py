"""What a client asked for: parsing and validating a result request.

A ``ResultQuery`` is the validated identity of one result representation
(kind, n, requested digits or modulus, string format). The cache key, the log row's
identity and the ETag are all derived from it, so they can only ever be
built from validated values. ``parse_query`` is shared by the DRF
serializer and the WSGI front, which is why it is plain Python: both must
accept and reject exactly the same inputs.

    >>> limits = Limits(10**6, 10**18, 1000, 10**18, 10**18)
    >>> q = parse_query("fib", "1000", limits=limits)
    >>> q.cache_key, q.etag
    ('fib:1000:fmt2', 'W/"fib-1000-v1"')
    >>> q = parse_query("fib", "10", mod_text="10", limits=limits)
    >>> q.cache_key, q.etag
    ('fib:10:m10:fmt2', 'W/"fib-10-m10-v1"')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Bump when the response bodies change; it is part of every ETag.
FORMAT_VERSION = 1
# Bump when the bytes stored in Redis change (``compute.domain.payload``,
# ``compute.cache.integrity``). It ends every result's cache key, so a release
# never reads the entries of another format (no alarm on upgrade: they are
# simply not looked at), while the ETags, which describe the bodies clients
# get, stay the same. 2: entries carry a keyed MAC.
ENTRY_FORMAT = 2

# What ?format= may be, and whether it means the digits as a JSON string.
# "json" and the empty value are the number form too (a client's generic
# format=json must not be a 400); the schema's enum is these keys.
FORMATS = {"number": False, "string": True, "json": False, "": False}

_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")
# Longer than this (after leading zeros) is above every configurable limit
# and is rejected before int() could meet Python's conversion limit.
_MAX_TEXT = 24


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured bounds: the built-in kinds' (settings FIB_MAX_N, PI_MAX_N,
    PI_MAX_DIGITS, FIB_MOD_MAX_N and FIB_MOD_MAX_M), and ``extra``, the bounds
    another kind names, as (setting, value) pairs."""

    fib_max_n: int
    pi_max_n: int
    pi_max_digits: int
    fib_mod_max_n: int
    fib_mod_max_m: int
    extra: tuple[tuple[str, int], ...] = ()

    def of(self, setting: str) -> int:
        """Return the bound named by ``setting`` (e.g. "FIB_MAX_N"); raise KeyError if none."""
        for name, value in self.extra:
            if name == setting:
                return value
        if setting.lower() in _BUILT_IN:
            return getattr(self, setting.lower())
        raise KeyError(f"no limit named {setting}")


_BUILT_IN = ("fib_max_n", "pi_max_n", "pi_max_digits", "fib_mod_max_n", "fib_mod_max_m")


class InvalidQuery(ValueError):
    """A request parameter is malformed or out of range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ResultQuery:
    """A validated request for one result representation."""

    kind: str
    n: int
    digits: int | None = None
    as_string: bool = False
    mod: int | None = None  # fib only: the result is fib(n) mod this (>= 1)

    @property
    def precision(self) -> int:
        """Return the log's precision column: requested digits, 0 for a double or fib."""
        return self.digits or 0

    @property
    def modulus(self) -> int:
        """Return the log's modulus column: M of fib(n) mod M, 0 for every other result.

        0 rather than NULL for the same reason as ``precision``: SQL unique
        constraints treat NULLs as distinct, and M >= 1 leaves 0 free.
        """
        return self.mod or 0

    @property
    def cache_key(self) -> str:
        """Return the cache key of the stored entry: kind, n, precision, entry format.

        ``?format=string`` does not change it (both forms share one entry).
        """
        if self.digits is not None:
            return f"{self.kind}:{self.n}:d{self.digits}:fmt{ENTRY_FORMAT}"
        if self.mod is not None:
            return f"{self.kind}:{self.n}:m{self.mod}:fmt{ENTRY_FORMAT}"
        return f"{self.kind}:{self.n}:fmt{ENTRY_FORMAT}"

    @property
    def etag(self) -> str:
        """Return the weak ETag: a pure function of the inputs and the format version."""
        parts = [self.kind, str(self.n)]
        if self.digits is not None:
            parts.append(f"d{self.digits}")
        if self.mod is not None:
            parts.append(f"m{self.mod}")
        if self.as_string:
            parts.append("s")
        parts.append(f"v{FORMAT_VERSION}")
        return f'W/"{"-".join(parts)}"'


def parse_int(field: str, text: str | None, minimum: int, maximum: int, limit_name: str) -> int:
    """Return ``text`` as an int in [minimum, maximum]; raise InvalidQuery otherwise.

    Only plain ASCII digits are integers here: no sign, space, underscore,
    decimal point, exponent or non-ASCII digits (``int()`` accepts several).
    """
    if text is None or text == "":
        raise InvalidQuery(field, f"{field} is required.")
    if _NEGATIVE.fullmatch(text):
        raise InvalidQuery(field, f"{field} must be at least {minimum}.")
    if not _DIGITS.fullmatch(text):
        raise InvalidQuery(field, f"{field} must be a whole number written with the digits 0-9.")
    stripped = text.lstrip("0") or "0"
    if len(stripped) > _MAX_TEXT:
        raise InvalidQuery(field, f"{field} must be at most {maximum} ({limit_name}).")
    value = int(stripped)
    if value < minimum:
        raise InvalidQuery(field, f"{field} must be at least {minimum}.")
    if value > maximum:
        raise InvalidQuery(field, f"{field} must be at most {maximum} ({limit_name}).")
    return value


def parse_query(
    kind: str,
    n_text: str | None,
    digits_text: str | None = None,
    format_text: str | None = None,
    mod_text: str | None = None,
    *,
    limits: Limits,
) -> ResultQuery:
    """Return the validated query; raise InvalidQuery naming the field and limit.

    The kind (``compute.domain.kinds``) declares n's bounds and its options
    (pi's ``digits``, fib's ``mod``); an option of another kind, or an unknown
    kind, is an InvalidQuery. ``None`` means the parameter was absent; an
    empty value is malformed.
    """
    # Imported here: the kinds' declarations import this module's names.
    from compute.domain.kinds import registry

    try:
        spec = registry.get(kind)
    except registry.UnknownKind:
        raise InvalidQuery("kind", f"kind must be one of {', '.join(registry.names())}.") from None
    return spec.parse(
        n_text,
        {"digits": digits_text, "mod": mod_text},
        format_text,
        limits=limits,
        owners=registry.owners,
        integer_kinds=registry.integer_kinds,
    )
