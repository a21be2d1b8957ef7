"""Whether a stored literal can be the result of its query, checked without computing it.

Defence in depth behind the keyed MAC of ``compute.cache.integrity``: the MAC
proves that this deployment wrote an entry for its key; this check makes
sure that even an authentic entry (a bug, a leaked signing key) is served
only if it has the shape and size of that query's result. Each kind
declares its own check (``Kind.check``: cheap, because it runs on each read
from Redis); this is the one place that asks the query's kind.

    >>> from compute.domain.query import ResultQuery
    >>> check_literal(ResultQuery("fib", 20), b"6765")
    >>> check_literal(ResultQuery("fib", 20), b"6766")
    Traceback (most recent call last):
    ...
    ValueError: fib(20) ends in 5, not 6
"""

from __future__ import annotations

from compute.domain.kinds import registry
from compute.domain.query import ResultQuery


def check_literal(query: ResultQuery, literal: bytes) -> None:
    """Return None if ``literal`` can be ``query``'s stored literal; raise ValueError if not."""
    registry.get(query.kind).check(query, literal)
