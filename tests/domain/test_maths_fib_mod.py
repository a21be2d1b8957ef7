"""Reference tests for ``compute.domain.maths.fib_mod``: fib(n) mod M, every value another way.

The code under test is fast doubling on GMP integers. None of the
references below calls it:

- **iteration** (n up to 10**6): fib(k) mod M by adding up from fib(0) and
  fib(1), reduced at each step (reduction commutes with addition, so this is
  exactly fib(n) mod M), on plain Python integers;
- **exact fib** (sampled n up to 10**6): the whole fib(n) from pure-Python
  fast doubling (``fib_reference``), then ``%``;
- **matrix power** (n up to 10**18, M up to 10**18): [[1, 1], [1, 0]]**n mod M
  by square-and-multiply (``fib_mod_reference``), another algorithm;
- **Pisano periods**: fib mod 10**k repeats every 15 * 10**(k-1) (k >= 3), so
  fib(10**18) mod 1000 is fib(10**18 mod 1500) mod 1000, a small exact sum.
"""

from __future__ import annotations

import random

import pytest

from compute.domain.maths import fib_mod
from tests.support.reference import (
    fib_iterative,
    fib_mod_reference,
    fib_reference,
    pisano_period_of_power_of_ten,
    unlimited_int_digits,
)

MODULI = (1, 2, 3, 10, 97, 1000, 2**32, 10**9 + 7, 2**61 - 1, 10**18 - 1, 10**18)
RNG_SEED = 20261201


@pytest.fixture(autouse=True)
def clean_cache():
    """Shadow conftest's Redis clean-up: pure maths needs no cache round trips."""
    yield


def test_references_agree_with_each_other():
    """The references are checked against each other before they check anything."""
    for n in range(300):
        exact = fib_iterative(n)
        assert fib_reference(n) == exact
        for m in MODULI:
            assert fib_mod_reference(n, m) == exact % m


@pytest.mark.parametrize("m", MODULI)
def test_every_n_up_to_5000_against_iteration(m):
    a, b = 0, 1 % m
    for n in range(5001):
        assert fib_mod(n, m) == a, (n, m)
        a, b = b, (a + b) % m


def test_random_n_up_to_a_million_against_one_iterative_pass():
    rng = random.Random(RNG_SEED)
    samples = sorted({rng.randrange(10**6 + 1) for _ in range(200)} | {999_999, 10**6})
    moduli = (7, 10**9 + 7, 10**18)
    wanted = set(samples)
    expected: dict[int, tuple[int, ...]] = {}
    states = [(0, 1 % m) for m in moduli]
    for n in range(10**6 + 1):
        if n in wanted:
            expected[n] = tuple(a for a, _ in states)
        states = [(b, (a + b) % m) for (a, b), m in zip(states, moduli, strict=True)]
    for n in samples:
        assert tuple(fib_mod(n, m) for m in moduli) == expected[n], n


@pytest.mark.parametrize("n", [10**5, 999_999, 10**6])
def test_exact_fib_reduced(n):
    exact = fib_reference(n)
    with unlimited_int_digits():
        for m in (10, 10**18, 10**18 - 1, 2**63 - 1, 12345678901234567):
            assert fib_mod(n, m) == exact % m


def test_large_n_and_m_against_matrix_power():
    rng = random.Random(RNG_SEED + 1)
    cases = [(rng.randrange(10**18 + 1), rng.randrange(1, 10**18 + 1)) for _ in range(300)]
    cases += [(10**18, 10**18), (10**18, 1), (10**18, 2), (10**18 - 1, 10**18), (2**59, 10**18)]
    for n, m in cases:
        assert fib_mod(n, m) == fib_mod_reference(n, m), (n, m)


@pytest.mark.parametrize("k", [3, 4, 6])
def test_n_of_10_to_18_against_the_pisano_period(k):
    m = 10**k
    reduced = 10**18 % pisano_period_of_power_of_ten(k)  # 10**k: small enough to add up
    a, b = 0, 1
    for _ in range(reduced):
        a, b = b, (a + b) % m
    assert fib_mod(10**18, m) == a


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [
        (0, 1, 0),
        (1, 1, 0),  # everything is 0 mod 1
        (0, 10**18, 0),
        (1, 10**18, 1),
        (2, 10**18, 1),
        (10, 10, 5),  # fib(10) = 55, SPEC's example
        (10, 10**18, 55),
        (90, 10**18, 2880067194370816120 % 10**18),
        (10**18, 10, 5),  # Pisano period 60: fib(10**18 mod 60 = 40) = 102334155
    ],
)
def test_boundaries(n, m, expected):
    assert fib_mod(n, m) == expected
    assert isinstance(fib_mod(n, m), int)


def test_residues_lie_in_0_to_m():
    rng = random.Random(RNG_SEED + 2)
    for _ in range(500):
        m = rng.randrange(1, 10**18 + 1)
        assert 0 <= fib_mod(rng.randrange(10**18 + 1), m) < m


@pytest.mark.parametrize(("n", "m"), [(-1, 10), (5, 0), (5, -3)])
def test_outside_the_domain_is_a_value_error(n, m):
    with pytest.raises(ValueError):
        fib_mod(n, m)
