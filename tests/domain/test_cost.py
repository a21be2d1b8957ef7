"""The digit estimate the budget charges (``compute.domain.cost``), against real digit counts.

References: the decimal length of fib(n) computed by fast doubling on Python
integers (``tests.support.reference``, no GMP), and the published length of
fib(1,000,000) (208,988 digits, SPEC).
"""

from __future__ import annotations

from compute.domain.cost import estimated_digits
from compute.domain.kinds.fib import digit_count as fib_digits
from compute.domain.kinds.pi import DOUBLE_DIGITS
from compute.domain.maths import pi_double
from compute.domain.query import ResultQuery
from tests.support.reference import fib_reference, unlimited_int_digits


def test_fib_digits_is_the_exact_length_for_every_n_up_to_3000():
    with unlimited_int_digits():
        for n in range(3001):
            assert fib_digits(n) == len(str(fib_reference(n))), n


def test_fib_digits_of_large_n():
    with unlimited_int_digits():
        for n in (10_007, 54_321, 100_000, 199_999):
            assert fib_digits(n) == len(str(fib_reference(n))), n
    assert fib_digits(1_000_000) == 208_988


def test_pi_costs_17_digits_as_a_double_and_d_with_digits():
    assert estimated_digits(ResultQuery("pi", 10**18)) == DOUBLE_DIGITS == 17
    # No double needs more than 17 significant digits to round-trip.
    assert max(len(repr(pi_double(n)).replace(".", "")) for n in range(1, 200)) <= DOUBLE_DIGITS
    assert estimated_digits(ResultQuery("pi", 5, digits=1000)) == 1000
    assert estimated_digits(ResultQuery("fib", 0)) == 1
    assert estimated_digits(ResultQuery("fib", 4000, as_string=True)) == 836


def test_a_residue_costs_the_digits_of_its_modulus_not_of_fib_n():
    from types import SimpleNamespace

    # Shaped like a query of fib(n) mod M (the ?mod= grammar): n far above FIB_MAX_N.
    residue = SimpleNamespace(kind="fib", n=10**18, digits=None, mod=10**18)
    assert estimated_digits(residue) == len(str(10**18 - 1)) == 18
    assert estimated_digits(SimpleNamespace(kind="fib", n=5, digits=None, mod=1)) == 1
