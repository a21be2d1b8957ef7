"""What a stored literal must look like to be served (compute.domain.plausible).

References are independent of the service's maths: fib by fast doubling on
Python integers, pi(n) by mpmath's Hurwitz zeta at 60 digits,
``sqrt(6 (zeta(2) - zeta(2, n)))`` (the service uses GMP sums and psi1).
"""

from __future__ import annotations

import math
import random

import mpmath
import pytest

from compute.domain.kinds.fib import digit_count as fib_digit_count
from compute.domain.kinds.pi import pi_bounds
from compute.domain.plausible import check_literal
from compute.domain.query import ResultQuery
from tests.support.reference import fib_reference, unlimited_int_digits

PI_NS = [
    *range(1, 120),
    *(10**k for k in range(3, 19)),
    *random.Random(11).sample(range(2, 10**18), 40),
]


def pi_reference(n: int) -> mpmath.mpf:
    with mpmath.workdps(60):
        return mpmath.sqrt(6 * (mpmath.zeta(2) - mpmath.zeta(2, n)))


def digits_reference(n: int, digits: int) -> bytes:
    if n == 1:
        return b'"0"'
    with mpmath.workdps(digits + 30):
        scaled = int(mpmath.nint(pi_reference(n) * mpmath.mpf(10) ** (digits - 1)))
    text = str(scaled)
    return b'"' + (text if digits == 1 else f"{text[0]}.{text[1:]}").encode() + b'"'


def test_every_fib_up_to_2000_and_the_largest_pass_and_their_successors_do_not():
    with unlimited_int_digits():
        for n in [*range(2001), 10**5, 10**6]:
            value = fib_reference(n)
            check_literal(ResultQuery("fib", n), str(value).encode())
            with pytest.raises(ValueError):  # the last digit gives it away
                check_literal(ResultQuery("fib", n), str(value + 1).encode())


def test_fib_digit_count_is_within_one():
    with unlimited_int_digits():
        for n in [*range(0, 3000, 7), 10**6]:
            assert abs(fib_digit_count(n) - len(str(fib_reference(n)))) <= 1


@pytest.mark.parametrize(
    "literal", [b"06765", b"6765.0", b"-6765", b"6_765", b" 6765", b"", b"\xd9\xa56765"]
)
def test_fib_literals_are_plain_digits(literal):
    with pytest.raises(ValueError):
        check_literal(ResultQuery("fib", 20), literal)


def test_fib_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="digits"):
        check_literal(ResultQuery("fib", 100), b"5" * 19)  # fib(100) has 21 digits


@pytest.mark.parametrize("n", PI_NS)
def test_pi_doubles_pass_and_pi_itself_does_not(n):
    reference = float(pi_reference(n))
    check_literal(ResultQuery("pi", n), repr(reference).encode())
    low, high = pi_bounds(n)
    assert low <= reference <= high
    if n < 10**12:  # pi - pi(n) is about 0.95 / n: far outside the bounds
        with pytest.raises(ValueError, match="lies between"):
            check_literal(ResultQuery("pi", n), repr(math.pi).encode())


@pytest.mark.parametrize(
    "literal", [b"99999999999", b"-3.14", b"1e999", b"inf", b"NaN", b"3", b'"3.13"', b"3.13 "]
)
def test_pi_double_attack_values_are_refused(literal):
    with pytest.raises(ValueError):
        check_literal(ResultQuery("pi", 100), literal)


@pytest.mark.parametrize("n", PI_NS[::8])
@pytest.mark.parametrize("digits", [1, 2, 5, 17, 40, 1000])
def test_pi_digit_strings_pass(n, digits):
    check_literal(ResultQuery("pi", n, digits=digits), digits_reference(n, digits))


@pytest.mark.parametrize(
    "literal", [b'"9.99999999"', b'"9.9999"', b'"3.132"', b'"3.13200"', b"3.1320", b'"31320"']
)
def test_pi_digit_strings_of_the_wrong_shape_or_value_are_refused(literal):
    with pytest.raises(ValueError):
        check_literal(ResultQuery("pi", 100, digits=5), literal)
