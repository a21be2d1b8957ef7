"""The decimal text of the result a query names: the one pure computation behind every value.

A plain module-level function of a ``ResultQuery`` (both picklable), so it
can run in this process or in a computation process
(``compute.admission.offload``) alike. The maths functions are looked up on
``compute.domain.maths`` at call time, so a test probe that wraps them sees
every computation made in the process.

    >>> result_text(ResultQuery("fib", 10))
    '55'
"""

from __future__ import annotations

import os

from compute.domain import maths
from compute.domain.query import FIB, ResultQuery


def result_text(query: ResultQuery) -> str:
    """Return the decimal text of ``query``'s result (fib, fib mod M, pi's digits or double)."""
    if query.kind == FIB:
        if query.mod is not None:
            return str(maths.fib_mod(query.n, query.mod))  # below 2**63: str() is cheap
        return maths.fib_decimal(query.n)
    if query.digits is not None:
        return maths.pi_digits(query.n, query.digits)
    return repr(maths.pi_double(query.n))


def prepare_process(niceness: int) -> None:
    """Set up a computation process: lower its priority and load what computing needs.

    The initializer of ``compute.admission.offload``'s children: one small
    computation imports the maths (gmpy2) and warms it while the worker
    starts, so the first large request a child takes pays for neither.
    """
    os.nice(niceness)
    result_text(ResultQuery(FIB, 1_000))
