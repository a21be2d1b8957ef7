"""What a result costs to compute and store, estimated from the query alone.

The per-client digit budget (``COMPUTE_DIGITS_PER_HOUR``) is charged before
any work starts, so the charge cannot come from the result: it comes from
the query, through its kind's declaration (``Kind.stored_digits``: the
digits the result stores, which is what grows the result log and Redis;
``Kind.cpu_cost``: the work, which decides whether it runs in a computation
process).

    >>> estimated_digits(ResultQuery("fib", 1_000_000))
    208988
    >>> estimated_digits(ResultQuery("pi", 10, digits=30))
    30
"""

from __future__ import annotations

from compute.domain.kinds import registry
from compute.domain.query import ResultQuery


def estimated_digits(query: ResultQuery) -> int:
    """Return the digits computing ``query``'s result produces (and stores), at least 1."""
    return registry.get(query.kind).stored_digits(query)


def estimated_work(query: ResultQuery) -> int:
    """Return the work of computing ``query``'s result, in digit-equivalents."""
    return registry.get(query.kind).cpu_cost(query)
