"""Reference tests for compute.domain.maths: every expected value is computed here, another way.

None of the references below calls the code under test:

- **exact** (n <= 3000): ``fractions.Fraction`` partial sums and integer square
  roots, so rounding to a double or to D decimal digits is decided exactly,
  ties included;
- **Euler-Maclaurin enclosure** (n >= 10**4): a rigorous rational interval for
  the tail ``sum(1/i**2, i >= n)``, built from our own Bernoulli numbers
  (tangent numbers) and our own pi (Machin's formula) in plain integers, no
  mpmath and no gmpy2; when both ends of the interval round to the same
  result, that result is proven;
- **Hurwitz zeta** (n >= 10**4): mpmath's ``zeta(2) - zeta(2, n)`` at 320 bits
  (doubles) or 4200 bits (1,000 digits), rounded with a margin check. The
  code uses gmpy2's asymptotic series and ``mpmath.psi(1, n)``, a separate
  mpmath routine (libmp's polygamma recurrence), so this is a second,
  library-based formulation;
- **Fibonacci**: pure-Python fast doubling on ints, itself checked against
  plain iteration.

These tests touch neither the database nor the cache (see ``clean_cache``).
"""

from __future__ import annotations

import math
import random
import re
import sys
from fractions import Fraction
from functools import cache, lru_cache

import mpmath
import pytest

from compute.domain.maths import count_digits, fib, fib_decimal, pi_digits, pi_double
from tests.support.reference import int_str_limit


@pytest.fixture(autouse=True)
def clean_cache():
    """Shadow conftest's Redis clean-up: pure maths needs no cache round trips."""
    yield


@pytest.fixture
def default_int_str_limit():
    """Pin CPython's default 4,300-digit int/str limit (whatever the environment says)."""
    with int_str_limit(4300):
        yield


@pytest.fixture
def unlimited_int_str():
    """Lift CPython's 4,300-digit int/str limit for the reference side, then restore it."""
    with int_str_limit(0):
        yield


def _ids(prefix: str):
    return lambda value: f"{prefix}={value}"


# --------------------------------------------------------------------------
# Exact references for small n
# --------------------------------------------------------------------------

EXACT_LIMIT = 3000


@lru_cache(maxsize=1)
def _exact_sums() -> tuple[Fraction, ...]:
    """S(n) = sum(1/i**2, i = 1..n-1) as exact fractions, indexed by n <= EXACT_LIMIT."""
    sums = [Fraction(0), Fraction(0)]  # index 0 unused; S(1) is the empty sum
    for i in range(1, EXACT_LIMIT):
        sums.append(sums[-1] + Fraction(1, i * i))
    return tuple(sums)


def _exact_square(n: int) -> Fraction:
    """The exact square of the Basel value, 6 * S(n)."""
    return 6 * _exact_sums()[n]


def _sqrt_to_double(x: Fraction) -> float:
    """Correctly rounded double of sqrt(x) for x in [4, 16), ties to even, in integers.

    sqrt(x) * 2**51 lies in [2**52, 2**53), so its integer part is the 53-bit
    significand truncated; squaring decides the half-way comparison exactly.
    """
    assert 4 <= x < 16
    low = math.isqrt(math.floor(x * 4**51))
    lhs, rhs = x * 4**52, (2 * low + 1) ** 2  # x * 2**104 vs (2 * low + 1)**2
    if lhs > rhs or (lhs == rhs and low % 2):
        low += 1
    return math.ldexp(low, -51)


def _digit_string(x: Fraction, digits: int) -> str:
    """floor(sqrt(x) * 10**(digits - 1)) as text: the first ``digits`` digits, truncated."""
    return str(math.isqrt(math.floor(x * 10 ** (2 * (digits - 1)))))


def _sqrt_to_digits(x: Fraction, digits: int) -> str:
    """sqrt(x) (a value in [1, 10)) to ``digits`` significant digits, ties to even, exactly."""
    scaled = x * 10 ** (2 * (digits - 1))
    low = math.isqrt(math.floor(scaled))
    lhs, rhs = 4 * scaled, (2 * low + 1) ** 2
    if lhs > rhs or (lhs == rhs and low % 2):
        low += 1
    text = str(low)
    assert len(text) == digits, "value left [1, 10)"
    return text if digits == 1 else f"{text[0]}.{text[1:]}"


# --------------------------------------------------------------------------
# Euler-Maclaurin enclosure for large n (plain integers and fractions)
# --------------------------------------------------------------------------


@cache
def _bernoulli_even(count: int) -> tuple[Fraction, ...]:
    """B_2, B_4, ..., B_2count from the tangent numbers T_k (integers only).

    B_2k = (-1)**(k-1) * 2k * T_k / (4**k * (4**k - 1)).
    """
    tangent = [0] * (count + 1)
    tangent[1] = 1
    for k in range(2, count + 1):
        tangent[k] = (k - 1) * tangent[k - 1]
    for k in range(2, count + 1):
        for j in range(k, count + 1):
            tangent[j] = (j - k) * tangent[j - 1] + (j - k + 2) * tangent[j]
    return tuple(
        Fraction((-1) ** (k - 1) * 2 * k * tangent[k], 4**k * (4**k - 1))
        for k in range(1, count + 1)
    )


def _tail_enclosure(n: int, bits: int) -> tuple[Fraction, Fraction]:
    """A rational interval holding sum(1/i**2, i >= n), narrower than 2**-(bits - 1).

    Euler-Maclaurin with f(x) = 1/x**2 gives
    1/n + 1/(2n**2) + sum_{k=1..K} B_2k / n**(2k+1) + R, and since the periodic
    Bernoulli function is bounded by |B_2K|, |R| <= |B_2K| / n**(2K+1): the
    size of the last term included.
    """
    tolerance = Fraction(1, 2**bits)
    base = Fraction(1, n) + Fraction(1, 2 * n * n)
    inv2 = Fraction(1, n * n)
    count = 16
    while count <= 1024:
        total, power = base, Fraction(1, n**3)
        for bern in _bernoulli_even(count):
            term = bern * power
            total += term
            if abs(term) < tolerance:
                return total - abs(term), total + abs(term)
            power *= inv2
        count *= 2
    raise AssertionError(f"Euler-Maclaurin needs too many terms for n={n}")


@cache
def _pi_enclosure(bits: int) -> tuple[Fraction, Fraction]:
    """A rational interval holding pi, from 16 atan(1/5) - 4 atan(1/239) in fixed point.

    Each floor division errs by less than one unit, the powers' errors stay
    below 2 units, and the alternating tail is below the first dropped power,
    so 3 units per term plus 3 bounds each arctangent.
    """
    unit = 1 << (bits + 32)

    def arctan_inverse(x: int) -> tuple[int, int]:
        total, k, power, x2 = 0, 0, unit // x, x * x
        while power:
            term = power // (2 * k + 1)
            total += -term if k % 2 else term
            power //= x2
            k += 1
        return total, 3 * k + 3

    a5, e5 = arctan_inverse(5)
    a239, e239 = arctan_inverse(239)
    approx, err = 16 * a5 - 4 * a239, 16 * e5 + 4 * e239
    return Fraction(approx - err, unit), Fraction(approx + err, unit)


def _square_enclosure(n: int, bits: int) -> tuple[Fraction, Fraction]:
    """An interval holding 6 * S(n) = pi**2 - 6 * tail(n)."""
    tail_lo, tail_hi = _tail_enclosure(n, bits)
    pi_lo, pi_hi = _pi_enclosure(bits)
    return pi_lo**2 - 6 * tail_hi, pi_hi**2 - 6 * tail_lo


def _proven(results: tuple[str, str] | tuple[float, float]) -> str | float:
    """The common rounding of both ends of an enclosure (rounding is monotone)."""
    low, high = results
    assert low == high, f"enclosure too wide to decide the rounding: {low!r} vs {high!r}"
    return low


# --------------------------------------------------------------------------
# Hurwitz zeta reference for large n (mpmath)
# --------------------------------------------------------------------------


def _hurwitz_value(n: int, prec: int) -> mpmath.mpf:
    with mpmath.workprec(prec):
        return mpmath.sqrt(6 * (mpmath.zeta(2) - mpmath.zeta(2, n)))


def _hurwitz_nearest(value: mpmath.mpf, scale: int, prec: int) -> int:
    """Nearest integer to value * scale, asserting it lies far from a half-way point.

    mpmath is trusted to prec - 32 bits here: the check refuses any case that
    a larger error could flip.
    """
    with mpmath.workprec(prec):
        scaled = value * mpmath.mpf(scale)
        low = int(mpmath.floor(scaled))
        frac = scaled - low
        margin = abs(scaled) * mpmath.mpf(2) ** (32 - prec)
        assert abs(frac - mpmath.mpf(0.5)) > margin, "too close to a tie for this precision"
        return low + (1 if frac > 0.5 else 0)


@cache
def _large_double_refs(n: int) -> tuple[float, float]:
    """(Euler-Maclaurin, Hurwitz) correctly rounded doubles for a large n."""
    lo, hi = _square_enclosure(n, 200)
    by_enclosure = _proven((_sqrt_to_double(lo), _sqrt_to_double(hi)))
    value = _hurwitz_value(n, 320)
    by_hurwitz = math.ldexp(_hurwitz_nearest(value, 2**51, 320), -51)
    return by_enclosure, by_hurwitz


@cache
def _large_digit_sources(n: int) -> tuple[tuple[Fraction, Fraction], mpmath.mpf]:
    """An enclosure and a Hurwitz value for n, precise enough for 1,000 digits."""
    return _square_enclosure(n, 3500), _hurwitz_value(n, 4200)


def _large_digit_refs(n: int, digits: int) -> tuple[str, str]:
    """(Euler-Maclaurin, Hurwitz) D-digit strings for a large n."""
    (lo, hi), value = _large_digit_sources(n)
    by_enclosure = _proven((_sqrt_to_digits(lo, digits), _sqrt_to_digits(hi, digits)))
    text = str(_hurwitz_nearest(value, 10 ** (digits - 1), 4200))
    by_hurwitz = text if digits == 1 else f"{text[0]}.{text[1:]}"
    return by_enclosure, by_hurwitz


# --------------------------------------------------------------------------
# pi_double
# --------------------------------------------------------------------------

_rng = random.Random(20240601)

SMALL_BLOCKS = [(start, min(start + 49, 400)) for start in range(2, 401, 50)]
SMALL_SAMPLE = sorted(
    {47, 48, 49, 2047, 2048, 2049, EXACT_LIMIT}
    | {_rng.randint(401, EXACT_LIMIT) for _ in range(40)}
)
LARGE_N = [
    10**4,
    10**5,
    10**6,
    10**7,
    10**9,
    10**12,
    10**15,
    2**53 - 1,
    2**53,
    2**53 + 1,
    10**18 - 1,
    10**18,
    *sorted(int(10 ** _rng.uniform(4, 18)) for _ in range(30)),
]


def test_pi_double_of_one_is_the_empty_sum():
    result = pi_double(1)
    assert type(result) is float
    assert result == 0.0
    assert math.copysign(1.0, result) == 1.0


@pytest.mark.parametrize(
    ("first", "last"), SMALL_BLOCKS, ids=[f"n={a}..{b}" for a, b in SMALL_BLOCKS]
)
def test_pi_double_exact_for_every_small_n(first, last):
    wrong = [
        (n, pi_double(n), _sqrt_to_double(_exact_square(n)))
        for n in range(first, last + 1)
        if pi_double(n) != _sqrt_to_double(_exact_square(n))
    ]
    assert wrong == []


@pytest.mark.parametrize("n", SMALL_SAMPLE, ids=_ids("n"))
def test_pi_double_exact_sample(n):
    assert pi_double(n) == _sqrt_to_double(_exact_square(n))


@pytest.mark.parametrize("n", LARGE_N, ids=_ids("n"))
def test_pi_double_large_n(n):
    by_enclosure, by_hurwitz = _large_double_refs(n)
    assert by_enclosure == by_hurwitz, "the two references disagree"
    assert pi_double(n) == by_enclosure


def test_pi_double_known_values_from_spec():
    # The exact sum rounds to ...363; the old float loop drifted to ...3624.
    naive = math.sqrt(6 * sum(1 / i**2 for i in range(1, 100)))
    assert naive == 3.1319807472443624
    assert _sqrt_to_double(_exact_square(100)) == 3.131980747244363
    assert pi_double(100) == 3.131980747244363
    assert _large_double_refs(10**6)[0] == 3.141591698659512
    assert pi_double(10**6) == 3.141591698659512


def test_pi_double_grows_towards_pi():
    ns = sorted({2, 3, 10, 100, *SMALL_SAMPLE, *LARGE_N})
    values = [pi_double(n) for n in ns]
    assert values == sorted(values)
    assert values[0] == _sqrt_to_double(Fraction(6))
    assert values[-1] <= math.pi


# --------------------------------------------------------------------------
# pi_digits
# --------------------------------------------------------------------------

DIGITS = (1, 2, 3, 15, 16, 17, 50, 300, 1000)
DIGITS_SMALL_N = (2, 3, 7, 10, 47, 48, 100, 1000, 2047, 2048, EXACT_LIMIT)
DIGITS_LARGE_N = (10**4, 10**6, 10**7, 10**9, 10**12, 10**15, 2**53, 10**18)


def _shape(digits: int) -> re.Pattern[str]:
    return re.compile(r"[0-9]" if digits == 1 else rf"[0-9]\.[0-9]{{{digits - 1}}}")


@pytest.mark.parametrize("digits", DIGITS, ids=_ids("D"))
@pytest.mark.parametrize("n", DIGITS_SMALL_N, ids=_ids("n"))
def test_pi_digits_exact_small_n(n, digits):
    result = pi_digits(n, digits)
    assert _shape(digits).fullmatch(result)
    assert result == _sqrt_to_digits(_exact_square(n), digits)


@pytest.mark.parametrize("digits", DIGITS, ids=_ids("D"))
@pytest.mark.parametrize("n", DIGITS_LARGE_N, ids=_ids("n"))
def test_pi_digits_large_n(n, digits):
    by_enclosure, by_hurwitz = _large_digit_refs(n, digits)
    assert by_enclosure == by_hurwitz, "the two references disagree"
    result = pi_digits(n, digits)
    assert _shape(digits).fullmatch(result)
    assert result == by_enclosure


@pytest.mark.parametrize("digits", DIGITS, ids=_ids("D"))
def test_pi_digits_of_one_is_zero(digits):
    assert pi_digits(1, digits) == "0"


def test_pi_digits_keeps_trailing_zeros_and_has_no_point_for_one_digit():
    assert _sqrt_to_digits(_exact_square(100), 5) == "3.1320"
    assert pi_digits(100, 5) == "3.1320"
    assert pi_digits(100, 1) == "3"
    assert pi_digits(2, 1) == "2"  # sqrt(6) = 2.449...


# (n, D, first D digits truncated, rounded): rounding carries through 9s.
CARRIES = [
    (7, 1, "2", "3"),  # 2.99137... -> 3
    (7, 2, "2.9", "3.0"),  # the carry reaches the leading digit
    (1215, 16, "3.140806281309999", "3.140806281310000"),
    (1911, 34, "3.141092781506967352016915406239999", "3.141092781506967352016915406240000"),
    (
        710,
        47,
        "3.1402464461997020515245172147369149991705209999",
        "3.1402464461997020515245172147369149991705210000",
    ),
]


@pytest.mark.parametrize(
    ("n", "digits", "truncated", "rounded"),
    CARRIES,
    ids=[f"n={n}-D={d}" for n, d, _, _ in CARRIES],
)
def test_pi_digits_rounding_carries(n, digits, truncated, rounded):
    text = _digit_string(_exact_square(n), digits)
    assert f"{text[0]}.{text[1:]}".rstrip(".") == truncated
    assert _sqrt_to_digits(_exact_square(n), digits) == rounded
    assert pi_digits(n, digits) == rounded


# Near ties, found by scanning n <= 3000, D <= 1000 with the exact reference:
# the digits after position D start with 5000... (round up) or 4999...
# (round down). The code's first attempt is decisive unless the value is
# within ~2**-40 of the half-way point, so its retry and tie branches cannot
# be reached through this series. An exact tie never happens: it would make
# sqrt(6 S) a terminating decimal, so 6 S a rational whose reduced
# denominator has only the primes 2 and 5; but for n - 1 >= 7 the largest
# prime p <= n - 1 is >= 7 and (Bertrand) p > (n - 1) / 2, so only i = p
# carries the factor p and p**2 divides the denominator of S and of 6 S.
# For n <= 7, test_no_exact_tie_for_tiny_n shows 6 S is not even a rational
# square. The same argument rules out ties between two doubles.
NEAR_TIES = [
    (1677, 909, "50000006"),
    (1499, 132, "50000044"),
    (1300, 282, "49999965"),
    (2206, 22, "49999124"),
    (983, 52, "50000431"),
    (493, 41, "49999869"),
]


@pytest.mark.parametrize(
    ("n", "digits", "following"), NEAR_TIES, ids=[f"n={n}-D={d}" for n, d, _ in NEAR_TIES]
)
def test_pi_digits_near_ties(n, digits, following):
    text = _digit_string(_exact_square(n), digits + len(following))
    assert text[digits:] == following
    expected = _sqrt_to_digits(_exact_square(n), digits)
    up = following.startswith("5")
    assert int(expected.replace(".", "")) == int(text[:digits]) + up
    assert pi_digits(n, digits) == expected


@pytest.mark.parametrize("n", range(2, 8), ids=_ids("n"))
def test_no_exact_tie_for_tiny_n(n):
    square = _exact_square(n)
    is_rational_square = (
        math.isqrt(square.numerator) ** 2 == square.numerator
        and math.isqrt(square.denominator) ** 2 == square.denominator
    )
    assert not is_rational_square


@pytest.mark.parametrize("n", [100, 2047], ids=_ids("n"))
def test_pi_digits_beyond_the_int_str_limit(n, unlimited_int_str):
    # PI_MAX_DIGITS is configurable; the maths must not depend on CPython's
    # 4,300-digit int/str limit (it did once: str() of the rounded integer).
    expected = _sqrt_to_digits(_exact_square(n), 4400)
    sys.set_int_max_str_digits(4300)
    assert pi_digits(n, 4400) == expected


# --------------------------------------------------------------------------
# Domain errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        (pi_double, (0,), "n must be at least 1"),
        (pi_double, (-1,), "n must be at least 1"),
        (pi_digits, (0, 5), "n must be at least 1"),
        (pi_digits, (-7, 5), "n must be at least 1"),
        (pi_digits, (5, 0), "digits must be at least 1"),
        (pi_digits, (5, -1), "digits must be at least 1"),
        (pi_digits, (1, 0), "digits must be at least 1"),
        (fib, (-1,), "n must be at least 0"),
        (fib, (-(10**6),), "n must be at least 0"),
        (fib_decimal, (-1,), "n must be at least 0"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_domain_errors(function, args, message):
    with pytest.raises(ValueError, match=message):
        function(*args)


# --------------------------------------------------------------------------
# fib and fib_decimal
# --------------------------------------------------------------------------


def _fib_reference(n: int) -> int:
    """F(n) by fast doubling over the bits of n, on Python ints, no recursion.

    F(2k) = F(k) * (2F(k+1) - F(k)),  F(2k+1) = F(k)**2 + F(k+1)**2.
    """
    a, b = 0, 1  # F(k), F(k+1) for k = the bits of n read so far
    for bit in bin(n)[2:]:
        even, odd = a * (2 * b - a), a * a + b * b
        a, b = (odd, even + odd) if bit == "1" else (even, odd)
    return a


@lru_cache(maxsize=1)
def _fib_million() -> int:
    return _fib_reference(10**6)


def test_fib_reference_matches_iteration():
    a, b = 0, 1
    for n in range(2000):
        assert _fib_reference(n) == a
        a, b = b, a + b


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0),
        (1, 1),
        (2, 1),
        (10, 55),
        (92, 7540113804746346429),
        (93, 12200160415121876738),
        (94, 19740274219868223167),
    ],
    ids=lambda v: str(v),
)
def test_fib_small(n, expected):
    assert _fib_reference(n) == expected
    assert int(fib(n)) == expected
    assert fib_decimal(n) == str(expected)


def test_fib_straddles_the_signed_64_bit_limit():
    assert int(fib(92)) < 2**63 - 1 < int(fib(93))
    assert int(fib(93)) < 2**64 - 1 < int(fib(94))


@pytest.mark.parametrize(
    ("n", "length"),
    [(20576, 4300), (20577, 4300), (20578, 4301), (20579, 4301), (20580, 4301)],
    ids=lambda v: str(v),
)
def test_fib_around_the_int_str_limit(n, length, unlimited_int_str):
    reference = _fib_reference(n)
    assert 10 ** (length - 1) <= reference < 10**length
    assert int(fib(n)) == reference
    sys.set_int_max_str_digits(4300)  # fib_decimal must not need the limit lifted
    text = fib_decimal(n)
    sys.set_int_max_str_digits(0)
    assert len(text) == length
    assert count_digits(text) == length
    assert text == str(reference)


def test_fib_million_integer():
    assert int(fib(10**6)) == _fib_million()


def test_fib_million_decimal_digits(default_int_str_limit):
    text = fib_decimal(10**6)  # under the limit that makes str() of this number raise
    reference = _fib_million()
    assert 10**208_987 <= reference < 10**208_988
    assert len(text) == 208_988
    assert count_digits(text) == 208_988
    assert text[-100:] == f"{reference % 10**100:0100d}"
    assert text[:100] == f"{reference // 10 ** (208_988 - 100):d}"


def test_fib_million_full_text(unlimited_int_str):
    # CPython 3.11's quadratic int-to-str takes about half a second here.
    assert fib_decimal(10**6) == str(_fib_million())


# --------------------------------------------------------------------------
# count_digits
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 1),
        ("7", 1),
        ("55", 2),
        ("3.0", 2),
        ("3.1320", 5),
        ("3.141591698659512", 16),
        ("12200160415121876738", 20),
        ("", 0),
    ],
    ids=lambda v: repr(v),
)
def test_count_digits(text, expected):
    assert count_digits(text) == expected


@pytest.mark.parametrize("digits", DIGITS, ids=_ids("D"))
def test_count_digits_of_pi_digits(digits):
    assert count_digits(pi_digits(10**6, digits)) == digits
