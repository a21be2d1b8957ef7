"""fib(n), the n-th Fibonacci number, exact; with ``?mod=M``, fib(n) mod M.

fib(n) has ``floor(n log10(phi) - log10(sqrt 5)) + 1`` digits for n >= 2
(fib(n) is the integer nearest phi**n / sqrt 5), 1 for n < 2: ``digit_count``,
the one definition of that count (the budget's charge, the plausibility
check of a stored value, ``warm_cache``'s estimate). A residue is below M, so
it has at most the digits of M - 1 whatever n is, and costs O(log n).

A stored fib(n) is plausible when it is written with ASCII digits without a
leading zero, has fib(n)'s digit count (give or take one for the float's
rounding) and ends in fib(n)'s last digit, which repeats every 60 (the
Pisano period of 10). A stored residue is below M, and ends in fib(n)'s last
digit when M is a multiple of 10.

    >>> KIND.compute(ResultQuery("fib", 20)), digit_count(1_000_000)
    ('6765', 208988)
    >>> KIND.check(ResultQuery("fib", 20), b"6766")
    Traceback (most recent call last):
    ...
    ValueError: fib(20) ends in 5, not 6
"""

from __future__ import annotations

import math

from compute.domain import maths
from compute.domain.kinds.base import Kind, Option, Series
from compute.domain.query import Limits, ResultQuery

LOG10_PHI = math.log10((1 + math.sqrt(5)) / 2)
LOG10_SQRT5 = math.log10(5) / 2
# The longest residue a 64-bit modulus leaves (FIB_MOD_MAX_M <= 2**63 - 1).
MAX_RESIDUE_DIGITS = 19


def digit_count(n: int) -> int:
    """Return the number of decimal digits of fib(n) (n >= 0), from the closed form."""
    if n < 2:
        return 1
    return math.floor(n * LOG10_PHI - LOG10_SQRT5) + 1


def _pisano_10() -> tuple[int, ...]:
    a, b, last = 0, 1, []
    for _ in range(60):
        last.append(a)
        a, b = b, (a + b) % 10
    return tuple(last)


LAST_DIGIT = _pisano_10()

JAVASCRIPT_NOTE = (
    "JavaScript's JSON.parse reads numbers as doubles, exact only up to 2**53: from "
    "fib(79) on the integer comes back rounded (fib(90) = 2880067194370816120 reads as "
    "2880067194370816000). JavaScript clients use format=string and BigInt(result)."
)


class FibKind(Kind):
    """fib(n), exact: fib(0) = 0, fib(1) = 1; with mod=M, fib(n) mod M."""

    name = "fib"
    label = "fib(n)"
    title = "fib(n), exact"
    tag = "fib(n), exact, and its log."
    summary = "fib(n), exact: fib(0) = 0, fib(1) = 1; with mod=M, fib(n) mod M."
    n_minimum = 0
    n_limit = "FIB_MAX_N"
    options = (
        Option(
            slot="mod",
            minimum=1,
            limit="FIB_MOD_MAX_M",
            label="mod",
            help="The result becomes fib(n) mod M; a residue costs O(log n), so n may go "
            "far above FIB_MAX_N.",
            n_limit="FIB_MOD_MAX_N",
            placeholder="M",
            example=10,
            describe="The result becomes fib(n) mod M, {low} <= M <= {high} ({limit}), and n "
            "may go up to {n_high} ({n_limit}): a residue costs O(log n) operations, not "
            'fib(n)\'s digits. The body adds "mod": M. Each (n, M) is a result of its own: '
            "cached, logged, with its own ETag ({etag} for n = 10, M = 10).",
            body="The modulus M (only with mod=M): result is fib(n) mod M, 0 <= result < M.",
            deletes="`mod=M` names the residue fib(n) mod M; without it, fib(n). ",
        ),
    )
    integer = True
    nature = "exact integers"
    plain_label = "exact"
    example_n = 10
    result_forms = (
        {
            "type": "integer",
            "minimum": 0,
            "description": "A JSON integer with all its digits. " + JAVASCRIPT_NOTE,
        },
        {
            "type": "string",
            "pattern": r"^[0-9]+$",
            "description": "With format=string: the digits as a string.",
        },
    )

    def compute(self, query: ResultQuery) -> str:
        """Return fib(n)'s digits (GMP's conversion), or the residue fib(n) mod M."""
        if query.mod is not None:
            return str(maths.fib_mod(query.n, query.mod))  # below 2**63: str() is cheap
        return maths.fib_decimal(query.n)

    def stored_digits(self, query: ResultQuery) -> int:
        """Return fib(n)'s digit count, or at most the digits of M - 1 for a residue."""
        if query.mod is not None:
            return max(1, len(str(query.mod - 1)))
        return digit_count(query.n)

    def largest_literal(self, limits: Limits) -> int:
        """Return fib(FIB_MAX_N)'s digits, plus one for the estimate's rounding."""
        return max(digit_count(limits.of(self.n_limit)) + 1, MAX_RESIDUE_DIGITS)

    def check(self, query: ResultQuery, literal: bytes) -> None:
        """Check digits, size and last digit of fib(n), or the range of a residue."""
        n = query.n
        if query.mod is not None:
            self._check_residue(n, query.mod, literal)
            return
        if not literal.isdigit() or (len(literal) > 1 and literal[:1] == b"0"):
            raise ValueError(f"fib({n}) is written with digits only, without a leading zero")
        expected = digit_count(n)
        if abs(len(literal) - expected) > 1:
            raise ValueError(f"fib({n}) has about {expected} digits, not {len(literal)}")
        last = literal[-1] - 48
        if last != LAST_DIGIT[n % 60]:
            raise ValueError(f"fib({n}) ends in {LAST_DIGIT[n % 60]}, not {last}")

    @staticmethod
    def _check_residue(n: int, mod: int, literal: bytes) -> None:
        shaped = literal.isdigit() and (len(literal) == 1 or literal[:1] != b"0")
        if not shaped or len(literal) > MAX_RESIDUE_DIGITS:
            raise ValueError(
                f"fib({n}) mod {mod} is written with at most 19 digits, no leading zero"
            )
        residue = int(literal)
        if residue >= mod:
            raise ValueError(f"fib({n}) mod {mod} is below {mod}, not {residue}")
        if mod % 10 == 0 and residue % 10 != LAST_DIGIT[n % 60]:
            # M a multiple of 10: the residue's last digit is fib(n)'s.
            raise ValueError(f"fib({n}) mod {mod} ends in {LAST_DIGIT[n % 60]}")

    def about(self, limits: Limits) -> str:
        """Return what fib(n) is and its bounds, for people."""
        return (
            "is the n-th Fibonacci number, exact, for 0 ≤ n ≤ "
            f"{limits.of(self.n_limit):,}, or fib(n) mod M."
        )

    def describe(self, query: ResultQuery) -> str:
        """Return ``fib(10)`` or ``fib(10) mod 7``."""
        if query.mod is not None:
            return f"fib({query.n}) mod {query.mod}"
        return f"fib({query.n})"

    def series(self) -> tuple[Series, ...]:
        """Return fib and fib mod M: residues cost O(log n), not fib's O(n), so they are
        drawn apart rather than flattening fib's line (one shape, their own colour)."""
        return (
            Series("fib", "fib", "#0072B2", "circle"),
            Series("fib-mod", "fib mod M", "#CC79A7", "circle"),
        )

    def series_of(self, *, precision: int, modulus: int) -> str:
        """Return ``fib-mod`` for a residue, else ``fib``."""
        return "fib-mod" if modulus else "fib"


KIND = FibKind()
