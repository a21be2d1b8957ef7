"""Reference values computed independently of the service (no GMP, no mpmath)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def fib_reference(n: int) -> int:
    """Return fib(n) by fast doubling on Python integers (independent of GMP)."""
    a, b = 0, 1  # fib(0), fib(1)
    for bit in bin(n)[2:]:
        c = a * (2 * b - a)  # fib(2k)
        d = a * a + b * b  # fib(2k + 1)
        a, b = (d, c + d) if bit == "1" else (c, d)
    return a


@contextmanager
def int_str_limit(limit: int) -> Iterator[None]:
    """Set CPython's int/str digit limit (0: none) for the block, then restore it."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(limit)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(previous)


def unlimited_int_digits() -> contextlib.AbstractContextManager[None]:
    """Lift CPython's 4,300-digit int/str limit for the reference side, then restore it."""
    return int_str_limit(0)
