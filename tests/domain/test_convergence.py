"""pi - pi(k) and its picture (``compute.domain.convergence``), against independent references.

Small k: the exact partial sum in fractions, its square root in ``decimal``
(no mpmath). Large k: the tail sum psi1(k) by its Euler-Maclaurin expansion
1/k + 1/(2k^2) + 1/(6k^3) - 1/(30k^5) + 1/(42k^7), in fractions, and the
distance pi - sqrt(pi^2 - 6 psi1(k)) subtracted in 90-digit decimals,
where the cancellation that defeats doubles costs nothing.
"""

from __future__ import annotations

import itertools
import math
import re
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from compute.domain import convergence
from compute.domain.maths import pi_double

PI_60 = Decimal("3.14159265358979323846264338327950288419716939937510582097494")


def decimal_of(fraction: Fraction) -> Decimal:
    return Decimal(fraction.numerator) / Decimal(fraction.denominator)


def distance_exact_sum(k: int) -> float:
    """pi - sqrt(6 * sum(1/i^2, i < k)) with the sum exact."""
    total = sum((Fraction(1, i * i) for i in range(1, k)), Fraction(0))
    with localcontext() as ctx:
        ctx.prec = 90
        return float(PI_60 - (6 * decimal_of(total)).sqrt())


def distance_euler_maclaurin(k: int) -> float:
    """pi - sqrt(pi^2 - 6 psi1(k)), psi1 by its asymptotic expansion (k >= 10**5)."""
    tail = (
        Fraction(1, k)
        + Fraction(1, 2 * k**2)
        + Fraction(1, 6 * k**3)
        - Fraction(1, 30 * k**5)
        + Fraction(1, 42 * k**7)
    )
    with localcontext() as ctx:
        ctx.prec = 90
        return float(PI_60 - (PI_60 * PI_60 - 6 * decimal_of(tail)).sqrt())


def same_3_digits(a: float, b: float) -> bool:
    return f"{a:.2e}" == f"{b:.2e}"


@pytest.mark.parametrize("k", [*range(1, 60), 100, 257, 1000, 4096])
def test_distance_matches_the_exact_partial_sum(k):
    reference = distance_exact_sum(k)
    assert convergence.distance(k) == pytest.approx(reference, rel=1e-13)
    assert same_3_digits(convergence.distance(k), reference)


@pytest.mark.parametrize(
    "k",
    [10**5, 10**6, 10**9, 10**12, 10**15, 3 * 10**15, 10**16, 10**17, 123456789012345678, 10**18],
)
def test_distance_matches_euler_maclaurin_up_to_pi_max_n(k):
    reference = distance_euler_maclaurin(k)
    assert convergence.distance(k) == pytest.approx(reference, rel=1e-12)
    assert same_3_digits(convergence.distance(k), reference)


def test_doubles_cannot_see_the_distance_past_about_10_to_the_15():
    # Why the distance is not math.pi - pi(k): the subtraction of doubles is
    # wrong in its first digit, or zero, where the true distance is 3e-17.
    k = 10**17
    assert not same_3_digits(math.pi - pi_double(k), distance_euler_maclaurin(k))
    assert same_3_digits(convergence.distance(k), distance_euler_maclaurin(k))


def test_distance_approaches_the_asymptote():
    assert convergence.distance(10**9) / convergence.asymptote(10**9) == pytest.approx(1, abs=1e-8)
    with pytest.raises(ValueError):
        convergence.distance(0)


@pytest.mark.parametrize("n", [1, 2, 240, 241, 1000, 10**6, 10**18])
def test_samples_run_from_1_to_n_ascending_and_dense_enough(n):
    ks = convergence.sample_ks(n)
    assert ks[0] == 1 and ks[-1] == n
    assert ks == sorted(set(ks))
    assert len(ks) <= convergence.CURVE_POINTS
    if n <= convergence.CURVE_POINTS:
        assert ks == list(range(1, n + 1))
    else:
        # No gap wider than a tenth of a decade past the first few integers.
        widest = max(math.log10(b / a) for a, b in itertools.pairwise(ks) if a >= 10)
        assert widest < 0.1


def test_picture_of_n_1_is_a_single_point():
    svg = convergence.convergence_svg(1)
    assert svg.count('class="point"') == 1
    assert 'class="line"' not in svg
    assert "3.14" in svg  # the tooltip of pi - pi(1) = pi


def test_picture_has_the_curve_the_asymptote_and_n():
    svg = convergence.convergence_svg(1000)
    assert svg.startswith("<?xml") and svg.rstrip().endswith("</svg>")
    curve, asymptote = re.findall(r'<path class="line" d="([^"]+)"[^>]*>', svg)
    assert curve.count("L") == len(convergence.sample_ks(1000)) - 1  # one line through them
    assert asymptote.count("L") == 1  # a straight line on log-log axes
    assert 'stroke-dasharray="6 4"' in svg
    assert "n: k = 1,000," in svg  # the marker of n with its distance
    assert 'class="point"' in svg and svg.count('class="point"') == 1


def test_etag_and_key_name_n_and_the_version():
    assert convergence.convergence_etag(1000) == 'W/"pi-convergence-1000-v1"'
    assert convergence.convergence_cache_key(7) == "pi:7:convergence-v1:fmt2"
