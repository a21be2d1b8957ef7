"""pi(n) by the Basel series, sqrt(6 * sum(1/i**2, i = 1..n-1)); with ``?digits=D``, D digits.

Without digits the result is the correctly rounded double of the exact
partial sum (at most 17 significant digits, its shortest repr); with
``digits=D`` a string of exactly D significant digits (``"0"`` for n = 1).

A stored value is plausible when it lies between the bounds the series'
tail gives: for n >= 2 the tail ``sum(1/i**2, i >= n)`` lies between 1/n
and 1/(n-1), so pi(n) lies between ``sqrt(pi**2 - 6/(n-1))`` and
``sqrt(pi**2 - 6/n)``; pi(1) is the empty sum, 0.0. With digits it must also
be a quoted decimal in fixed notation with exactly D significant digits
(one before the point: the value lies in [sqrt 6, pi)), within the same
bounds widened by the rounding.

    >>> KIND.compute(ResultQuery("pi", 100))
    '3.131980747244363'
    >>> KIND.check(ResultQuery("pi", 100), b"3.2")
    Traceback (most recent call last):
    ...
    ValueError: pi(100) lies between 3.1319807472443486 and 3.131980747244378, not at 3.2
"""

from __future__ import annotations

import math
import re

from compute.domain import maths
from compute.domain.kinds.base import Kind, Option, Series
from compute.domain.query import Limits, ResultQuery

# Significant digits of a double as the API writes it (the shortest repr).
DOUBLE_DIGITS = 17
_PI_SQUARED = math.pi * math.pi
# A few units in the last place of pi: the bounds are computed in doubles.
_SLACK = 1e-14
# The repr of a non-negative double (what the service stores for pi(n)).
_DOUBLE = re.compile(rb"(?:0|[1-9][0-9]*)\.[0-9]+(?:e[+-]?[0-9]+)?")
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


def pi_bounds(n: int) -> tuple[float, float]:
    """Return (low, high) between which pi(n) lies (both 0.0 for n = 1), widened by float slack."""
    if n == 1:
        return 0.0, 0.0
    low = math.sqrt(_PI_SQUARED - 6 / (n - 1))  # pi**2 > 6: real for every n >= 2
    high = math.sqrt(_PI_SQUARED - 6 / n)
    return low - _SLACK, high + _SLACK


class PiKind(Kind):
    """pi(n) by the Basel series with the terms i = 1 .. n-1."""

    name = "pi"
    label = "pi(n)"
    title = "pi(n) by the Basel series"
    tag = "pi(n) by the Basel series, its log and its convergence picture."
    summary = "pi(n) by the Basel series with the terms i = 1 .. n-1."
    n_minimum = 1
    n_limit = "PI_MAX_N"
    options = (
        Option(
            slot="digits",
            minimum=1,
            limit="PI_MAX_DIGITS",
            label="digits",
            help="D significant digits, as a string in fixed notation, rounded to nearest "
            "(ties to even).",
            placeholder="30",
            example=30,
            describe="Significant digits, {low} <= digits <= {high} ({limit}): the result "
            "becomes a decimal string. Without it, a double.",
            body="The requested precision (only with digits=D).",
            deletes="`digits=D` names a precision; without it, the double. ",
        ),
    )
    integer = False
    nature = "not integers"
    plain_label = "double"
    example_n = 100
    picture = "pi-convergence"
    result_forms = (
        {"type": "number", "description": "Without digits: the correctly rounded double."},
        {
            "type": "string",
            "pattern": _DECIMAL,
            "description": "With digits=D: D significant digits, fixed notation, "
            'rounded to nearest (ties to even); n = 1 gives "0".',
        },
    )

    def compute(self, query: ResultQuery) -> str:
        """Return pi(n)'s D digits, or the repr of its correctly rounded double."""
        if query.digits is not None:
            return maths.pi_digits(query.n, query.digits)
        return repr(maths.pi_double(query.n))

    def stored_digits(self, query: ResultQuery) -> int:
        """Return D, or 17 for a double (no double needs more to round-trip)."""
        return query.digits if query.digits is not None else DOUBLE_DIGITS

    def largest_literal(self, limits: Limits) -> int:
        """Return PI_MAX_DIGITS plus the point and the quotes."""
        return limits.of("PI_MAX_DIGITS") + 3

    def about(self, limits: Limits) -> str:
        """Return the series, the bounds of n and of D, for people."""
        return (
            "is the Basel-series approximation of pi with the terms i = 1 .. n-1, "
            f"sqrt(6 · Σ 1/i²), for 1 ≤ n ≤ {limits.of(self.n_limit):,}: a correctly rounded "
            f"double, or D significant digits (D ≤ {limits.of('PI_MAX_DIGITS'):,})."
        )

    def string_hint(self) -> str:
        """Return the hint of a pi request with ?format=string."""
        return "use digits=D for pi as a string."

    def check(self, query: ResultQuery, literal: bytes) -> None:
        """Check a double's shape, or D digits' shape, and the series' bounds."""
        if query.digits is None:
            if _DOUBLE.fullmatch(literal) is None:
                raise ValueError(f"pi({query.n}) is stored as a non-negative decimal number")
            self._check_value(query.n, float(literal), 0.0)
            return
        self._check_digits(query.n, query.digits, literal)

    def _check_digits(self, n: int, digits: int, literal: bytes) -> None:
        text = literal[1:-1]
        if len(literal) < 3 or literal[:1] != b'"' or literal[-1:] != b'"':
            raise ValueError(f"pi({n}) with digits is stored as a quoted decimal")
        if n == 1:
            if text != b"0":
                raise ValueError('pi(1) with digits is "0"')
            return
        whole, point, fraction = text[:1], text[1:2], text[2:]
        if digits == 1:
            shaped = text.isdigit() and len(text) == 1
        else:
            shaped = whole.isdigit() and point == b"." and fraction.isdigit()
            shaped = shaped and len(fraction) == digits - 1
        if not shaped:
            raise ValueError(f"pi({n}) with {digits} digits has one digit before the point")
        self._check_value(n, float(text), 10.0 ** (1 - digits))

    @staticmethod
    def _check_value(n: int, value: float, rounding: float) -> None:
        low, high = pi_bounds(n)
        if not low - rounding <= value <= high + rounding:
            raise ValueError(f"pi({n}) lies between {low!r} and {high!r}, not at {value!r}")

    def describe(self, query: ResultQuery) -> str:
        """Return ``pi(100)`` or ``pi(100) (5 digits)``."""
        suffix = f" ({query.digits} digits)" if query.digits is not None else ""
        return f"pi({query.n}){suffix}"

    def series(self) -> tuple[Series, ...]:
        """Return doubles and D-digit results as two series."""
        return (
            Series("pi", "pi (double)", "#D55E00", "square"),
            Series("pi-digits", "pi (digits=D)", "#009E73", "triangle"),
        )

    def series_of(self, *, precision: int, modulus: int) -> str:
        """Return ``pi-digits`` for a result with digits, else ``pi``."""
        return "pi-digits" if precision else "pi"


KIND = PiKind()
