"""The mathematics of mathsite, with no Django in sight.

``pi_double(n)`` and ``pi_digits(n, digits)`` evaluate the Basel partial sum
``sqrt(6 * sum(1/i**2 for i in 1..n-1))`` without looping over ``n`` terms:
the tail of the series is the trigamma function, so the partial sum is
``pi**2/6 - psi1(n)``. ``fib(n)`` and ``fib_decimal(n)`` use GMP, whose
Fibonacci and radix conversion are sub-quadratic, so fib(1,000,000) and its
208,988 decimal digits cost milliseconds and never touch CPython's
int-to-str limit. ``fib_mod(n, m)`` is fib(n) mod m by fast doubling with
every product reduced mod m: about log2(n) steps on numbers below m**2, so
n = 10**18 costs 60 steps, where fib(n) itself would have 2 * 10**17 digits.

Every function here is pure and raises ``ValueError`` for arguments outside
its mathematical domain; the HTTP limits live elsewhere.

    >>> pi_double(100)
    3.131980747244363
    >>> pi_digits(100, 5)
    '3.1320'
    >>> fib_decimal(10)
    '55'
    >>> fib_mod(10, 10)
    5
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import gmpy2
import mpmath

# Below this n the partial sum is added term by term (at most this many
# divisions); above it the asymptotic series of psi1 converges to well past
# 128 bits in a handful of terms.
_DIRECT_SUM_BELOW = 48
# Number of Bernoulli terms used by the double-precision asymptotic series.
# At x >= 48 the 16th term is below 2**-140 relative to the result.
_ASYMPTOTIC_TERMS = 16
# Working precisions (bits) tried in turn for the correctly rounded double.
_DOUBLE_PRECISIONS = (128, 320, 1024)
# Below this n the high-precision path sums terms directly in GMP.
_DIRECT_SUM_HIGH_BELOW = 2048
# Guard bits on top of what the requested decimal digits need.
_GUARD_BITS = 64
# Bits per decimal digit.
_LOG2_10 = 3.3219280948873626


@lru_cache(maxsize=1)
def _bernoulli_even() -> tuple[Fraction, ...]:
    """Return B_2, B_4, ..., B_{2K} as exact fractions (computed once)."""
    values = []
    for k in range(1, _ASYMPTOTIC_TERMS + 1):
        p, q = mpmath.bernfrac(2 * k)
        values.append(Fraction(int(p), int(q)))
    return tuple(values)


def _partial_sum_mpfr(n: int, prec: int) -> gmpy2.mpfr:
    """Return sum(1/i**2, i=1..n-1) as an mpfr with ``prec`` bits.

    Small n are summed directly; larger n use pi**2/6 - psi1(n) with the
    asymptotic expansion psi1(x) ~ 1/x + 1/(2x^2) + sum B_2k / x^(2k+1).
    The fixed number of Bernoulli terms bounds the truncation error by
    2**-140 relative at x >= 48, so callers use it at 128 bits only.
    """
    ctx = gmpy2.get_context().copy()
    ctx.precision = prec + 16
    with gmpy2.context(ctx):
        if n < _DIRECT_SUM_BELOW:
            # Fixed-point integer sum: each floor loses less than one unit of
            # 2**-scale, so the (at most 46) terms stay far inside the error
            # budget, and Python's small-int divisions cost a fraction of
            # mpfr divisions (n = 47 took ~50 us with mpfr, ~10 us now).
            scale = prec + 24
            unit = 1 << scale
            total = sum(unit // (i * i) for i in range(1, n))
            return gmpy2.mpfr(total) / unit
        x = gmpy2.mpfr(n)
        inv = 1 / x
        inv2 = inv * inv
        power = inv * inv2  # x^-(2k+1), starting at k = 1
        tail = inv + inv2 / 2
        for bern in _bernoulli_even():
            tail += power * bern.numerator / bern.denominator
            power *= inv2
        return gmpy2.const_pi() ** 2 / 6 - tail


def _nearest_double(value: gmpy2.mpfr, rel_error: gmpy2.mpfr) -> float | None:
    """Return the double nearest ``value`` if the error bound cannot change it.

    ``None`` means ``value`` lies too close to the midpoint between two
    doubles for the given relative error, so a caller must retry at a
    higher precision (Ziv's strategy). The midpoints are exact in the
    working precision, which is why the comparison runs at that precision.
    """
    candidate = float(value)
    ctx = gmpy2.get_context().copy()
    ctx.precision = max(value.precision, 64) + 8
    with gmpy2.context(ctx):
        half_ulp = gmpy2.mpfr(math.ulp(candidate)) / 2
        err = abs(value) * rel_error
        lower = gmpy2.mpfr(candidate) - half_ulp
        upper = gmpy2.mpfr(candidate) + half_ulp
        if value - lower > err and upper - value > err:
            return candidate
    return None


def pi_double(n: int) -> float:
    """Return the correctly rounded double of sqrt(6 * sum(1/i**2, i < n)).

    Raise ValueError if n < 1. n = 1 is the empty sum and gives 0.0.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if n == 1:
        return 0.0
    for prec in _DOUBLE_PRECISIONS:
        if prec == _DOUBLE_PRECISIONS[0]:
            total = _partial_sum_mpfr(n, prec)
            ctx = gmpy2.get_context().copy()
            ctx.precision = prec + 16
            with gmpy2.context(ctx):
                value = gmpy2.sqrt(6 * total)
        else:
            value = _pi_high(n, prec)
        # Error budget: a few dozen roundings at prec + 16 bits plus the
        # truncated asymptotic tail, both far below 2**-(prec - 24).
        result = _nearest_double(value, gmpy2.mpfr(2) ** -(prec - 24))
        if result is not None:
            return result
    # Reached only if the exact value sits within 2**-1000 of a midpoint.
    return float(value)


def _pi_high(n: int, prec: int) -> gmpy2.mpfr:
    """Return sqrt(6 * partial_sum(n)) as an mpfr with ``prec`` + 16 bits.

    Below ``_DIRECT_SUM_HIGH_BELOW`` the terms are added directly in GMP
    (cheaper than mpmath's trigamma at thousands of bits); above it mpmath
    evaluates pi**2/6 - psi1(n), whose cost barely grows with n.
    """
    work = prec + 16
    ctx = gmpy2.get_context().copy()
    ctx.precision = work + n.bit_length()
    if n < _DIRECT_SUM_HIGH_BELOW:
        with gmpy2.context(ctx):
            total = gmpy2.mpfr(0)
            for i in range(n - 1, 0, -1):  # smallest terms first
                total += gmpy2.mpfr(1) / (i * i)
            return gmpy2.sqrt(6 * total)
    with mpmath.workprec(work):
        value = mpmath.sqrt(6 * (mpmath.pi**2 / 6 - mpmath.psi(1, n)))
        text = mpmath.nstr(value, int(work / 3.32) + 8, strip_zeros=False)
    with gmpy2.context(ctx):
        return gmpy2.mpfr(text)


def pi_digits(n: int, digits: int) -> str:
    """Return the Basel value for ``n`` with exactly ``digits`` significant digits.

    Fixed notation, rounded to nearest with ties to even, trailing zeros
    kept; the value 0 (n = 1) is ``"0"``. Raise ValueError if n < 1 or
    digits < 1.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if digits < 1:
        raise ValueError("digits must be at least 1")
    if n == 1:
        return "0"
    # For n >= 2 the value lies in [sqrt(6), pi): one digit before the point,
    # so D significant digits are round(value * 10**(D-1)).
    prec = int(digits * _LOG2_10) + _GUARD_BITS
    for _attempt in range(4):
        value = _pi_high(n, prec)
        ctx = gmpy2.get_context().copy()
        ctx.precision = value.precision + 8
        with gmpy2.context(ctx):
            scaled = value * gmpy2.mpz(10) ** (digits - 1)
            floor = int(gmpy2.floor(scaled))
            frac = scaled - floor
            # The scaled value's error is about 2**(digits*log2(10) - prec - 16);
            # the margin sits 40 bits above it. (A coarser 3.33 bits per digit
            # here used to make the margin exceed 1/2 from ~4,900 digits on,
            # forcing a second, far costlier attempt on every call.)
            margin = gmpy2.mpfr(2) ** (digits * _LOG2_10 + 24 - prec)
            if abs(frac - gmpy2.mpfr("0.5")) > margin:
                rounded = floor + (1 if frac > gmpy2.mpfr("0.5") else 0)
                break
        prec *= 2
    else:
        # Indistinguishable from a tie at every precision tried: ties to even.
        rounded = floor if floor % 2 == 0 else floor + 1
    # GMP's conversion, not str(): CPython refuses int-to-str above 4,300
    # digits, and PI_MAX_DIGITS may be configured above that.
    text = gmpy2.mpz(rounded).digits(10)
    return text if digits == 1 else f"{text[0]}.{text[1:]}"


def prepare() -> None:
    """Build the cached constants now (about 1 ms), so no request pays for them."""
    pi_double(_DIRECT_SUM_BELOW)


def fib(n: int) -> gmpy2.mpz:
    """Return the n-th Fibonacci number (fib(0) = 0, fib(1) = 1) as a GMP integer.

    Raise ValueError if n < 0.
    """
    if n < 0:
        raise ValueError("n must be at least 0")
    return gmpy2.fib(n)


def fib_mod(n: int, m: int) -> int:
    """Return fib(n) mod m, in O(log n) multiplications of numbers below m**2.

    Fast doubling from the top bit of n down: with (a, b) = (fib(k), fib(k+1)),
    fib(2k) = a * (2b - a) and fib(2k+1) = a**2 + b**2, each reduced mod m,
    so nothing grows past m**2 (10**36 at the default limit: two GMP limbs).
    Raise ValueError if n < 0 or m < 1.
    """
    if n < 0:
        raise ValueError("n must be at least 0")
    if m < 1:
        raise ValueError("m must be at least 1")
    modulus = gmpy2.mpz(m)
    a, b = gmpy2.mpz(0), gmpy2.mpz(1) % modulus  # fib(0), fib(1); m = 1 makes both 0
    for bit in bin(n)[2:]:
        # (fib(k), fib(k+1)) -> (fib(2k), fib(2k+1)); 2b - a may be negative,
        # and GMP's % (like Python's) returns a value in [0, m) all the same.
        a, b = a * (2 * b - a) % modulus, (a * a + b * b) % modulus
        if bit == "1":
            a, b = b, (a + b) % modulus
    return int(a)


def fib_decimal(n: int) -> str:
    """Return the decimal digits of fib(n), converted by GMP (no 4,300-digit limit).

    Raise ValueError if n < 0.
    """
    return fib(n).digits(10)


def count_digits(text: str) -> int:
    """Return the number of decimal digits in a result's text form.

    Result texts are digits with at most a decimal point (and never a sign),
    so counting characters is exact, and 200 times faster than a per-character
    test on fib(1,000,000)'s 208,988 digits.
    """
    return len(text) - text.count(".") - text.count("-")
