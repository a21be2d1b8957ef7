"""A test-only kind: square(n) = n**2, declared in one module as any kind is.

It is registered only under ``tests.settings_square`` (``RESULT_KINDS`` plus
this module's ``KIND``, and its limit ``SQUARE_MAX_N``), so the rest of the
suite keeps seeing pi and fib; ``tests/kinds/test_square.py`` serves it
through every surface without a change to any module of the app.
"""

from __future__ import annotations

from compute.domain.kinds.base import Kind, Series
from compute.domain.query import Limits, ResultQuery


class SquareKind(Kind):
    """square(n) = n**2, exact."""

    name = "square"
    label = "square(n)"
    title = "square(n) = n**2"
    summary = "square(n) = n**2, exact."
    tag = "square(n) = n**2 (a test-only kind)."
    n_minimum = 0
    n_limit = "SQUARE_MAX_N"
    integer = True
    example_n = 12
    result_forms = ({"type": "integer", "minimum": 0, "description": "n**2."},)

    def compute(self, query: ResultQuery) -> str:
        """Return n**2 in decimal."""
        return str(query.n * query.n)

    def stored_digits(self, query: ResultQuery) -> int:
        """Return the digits of n**2: twice n's, or one fewer."""
        return len(str(query.n * query.n))

    def largest_literal(self, limits: Limits) -> int:
        """Return the digits of SQUARE_MAX_N**2."""
        return 2 * len(str(limits.of(self.n_limit)))

    def check(self, query: ResultQuery, literal: bytes) -> None:
        """Check the digits, the length and the last digit of n**2."""
        if not literal.isdigit() or (len(literal) > 1 and literal[:1] == b"0"):
            raise ValueError(f"square({query.n}) is written with digits only")
        if len(literal) not in (2 * len(str(query.n)) - 1, 2 * len(str(query.n))):
            raise ValueError(f"square({query.n}) has twice n's digits, give or take one")
        if literal[-1] - 48 != (query.n % 10) ** 2 % 10:
            raise ValueError(f"square({query.n}) does not end in {(query.n % 10) ** 2 % 10}")

    def series(self) -> tuple[Series, ...]:
        """Return its one chart series."""
        return (Series("square", "square", "#E69F00", "square"),)


KIND = SquareKind()
