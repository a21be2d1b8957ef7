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


def fib_iterative(n: int) -> int:
    """Return fib(n) by summing up from fib(0), fib(1): slow, but obviously right."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_mod_reference(n: int, m: int) -> int:
    """Return fib(n) mod m as a power of the matrix [[1, 1], [1, 0]] mod m.

    [[1, 1], [1, 0]]**n = [[fib(n+1), fib(n)], [fib(n), fib(n-1)]]: a
    different algorithm from the service's fast doubling (square and
    multiply over 2x2 matrices, right to left over n's bits), on Python
    integers only (no GMP).
    """

    def times(x: tuple[int, int, int, int], y: tuple[int, int, int, int]) -> tuple:
        a, b, c, d = x
        e, f, g, h = y
        return ((a * e + b * g) % m, (a * f + b * h) % m, (c * e + d * g) % m, (c * f + d * h) % m)

    result = (1 % m, 0, 0, 1 % m)  # the identity
    base = (1, 1, 1, 0)
    while n:
        if n & 1:
            result = times(result, base)
        base = times(base, base)
        n >>= 1
    return result[1]


def pisano_period_of_power_of_ten(k: int) -> int:
    """Return the period of fib mod 10**k (k >= 3): 15 * 10**(k-1), a known theorem.

    (D. D. Wall, "Fibonacci Series Modulo m", 1960), so fib(n) mod 10**k equals
    fib(n mod period) mod 10**k, which an exact small fib checks independently.
    """
    if k < 3:
        raise ValueError("the closed form holds for k >= 3")
    return 15 * 10 ** (k - 1)


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
