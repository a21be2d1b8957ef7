"""What a result costs to compute and store, estimated from the query alone.

The per-client digit budget (``COMPUTE_DIGITS_PER_HOUR``) is charged before
any work starts, so the charge cannot come from the result: it comes from
the query. The number of digits is what grows the work (GMP's radix
conversion), the result log and Redis, so that is the unit:

- fib(n) has ``floor(n * log10(phi) - log10(sqrt(5))) + 1`` digits for
  n >= 2 (fib(n) is the integer nearest phi**n / sqrt(5)), 1 for n < 2;
  in double precision the formula is off by at most one digit near an
  integer boundary, which a budget of millions of digits does not notice;
- pi(n) as a double is at most 17 significant digits (the shortest repr
  of a double); with ``digits=D`` it is D digits.

    >>> estimated_digits(ResultQuery("fib", 1_000_000))
    208988
    >>> estimated_digits(ResultQuery("pi", 10, digits=30))
    30
"""

from __future__ import annotations

import math

from compute.domain.query import FIB, ResultQuery

LOG10_PHI = math.log10((1 + math.sqrt(5)) / 2)
LOG10_SQRT5 = math.log10(5) / 2
DOUBLE_DIGITS = 17


def fib_digits(n: int) -> int:
    """Return the number of decimal digits of fib(n) (n >= 0), from the closed form."""
    if n < 2:
        return 1
    return math.floor(n * LOG10_PHI - LOG10_SQRT5) + 1


def estimated_digits(query: ResultQuery) -> int:
    """Return the digits computing ``query``'s result produces (and stores), at least 1."""
    # A residue fib(n) mod M (a query with a modulus, where the query grammar
    # has one) is below M: at most the digits of M - 1, whatever n is.
    modulus = getattr(query, "mod", None)
    if modulus is not None:
        return max(1, len(str(modulus - 1)))
    if query.kind == FIB:
        return fib_digits(query.n)
    if query.digits is not None:
        return query.digits
    return DOUBLE_DIGITS
