"""How the Basel partial sums approach pi: the distances pi - pi(k) and their picture.

pi(k) = sqrt(6 * S(k)) with S(k) = sum(1/i**2, i = 1..k-1) = pi**2/6 - psi1(k),
psi1 being the trigamma function (the tail sum from i = k on). Subtracting
pi(k) from pi loses every digit they share (past k = 10**15 a double cannot
see the difference at all), so the distance is written without a
subtraction of nearly equal numbers:

    pi - pi(k) = (pi**2 - pi(k)**2) / (pi + pi(k)) = 6 psi1(k) / (pi + sqrt(pi**2 - 6 psi1(k)))

which mpmath evaluates at ``WORKING_BITS`` to far more than the 3
significant digits the picture needs, for every k up to 10**18 and beyond.
For large k the distance is close to 3 / (pi k), the slope-1 asymptote the
picture draws beside it.

    >>> round(distance(2), 6), f"{distance(10**18):.3e}"
    (0.692103, '9.549e-19')
"""

from __future__ import annotations

import math

import mpmath

from compute.domain.charts import Axis, Series, loglog_chart

# Bits of working precision: psi1(k) and the square root each lose at most a
# few bits, so 96 leave ample room above a double's 53.
WORKING_BITS = 96
# Points on the curve: every k up to this many, else this many k spaced
# evenly on the log axis (a smooth line at the picture's width).
CURVE_POINTS = 240
# Bump when the picture changes; it is part of the ETag and the cache key.
PICTURE_VERSION = 1
# Bump when the stored form of a picture changes (``compute.cache.pictures``),
# so entries of an earlier form are never read: 1 was an HMAC-SHA256 under
# SECRET_KEY before the zlib, 2 the entry MAC of result entries after it.
PICTURE_FORMAT = 2

CURVE_COLOR, ASYMPTOTE_COLOR, MARK_COLOR = "#0072B2", "#D55E00", "#009E73"
K_AXIS = Axis("k (log scale)", tip=lambda k: f"k = {k:,.0f}")
DISTANCE_AXIS = Axis("pi - pi(k) (log scale)", tip=lambda d: f"{d:.3g}")


def distance(k: int) -> float:
    """Return pi - pi(k) (nearest double); raise ValueError if k < 1."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if k == 1:
        return math.pi  # pi(1) is the empty sum: 0
    with mpmath.workprec(WORKING_BITS):
        tail = mpmath.psi(1, k)
        pi = mpmath.pi
        return float(6 * tail / (pi + mpmath.sqrt(pi * pi - 6 * tail)))


def asymptote(k: float) -> float:
    """Return 3 / (pi k), what pi - pi(k) approaches as k grows."""
    return 3 / (math.pi * k)


def sample_ks(n: int, points: int = CURVE_POINTS) -> list[int]:
    """Return the k of the curve, ascending from 1 to n: all of them, or ``points`` log-spaced."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if n <= points:
        return list(range(1, n + 1))
    step = math.log(n) / (points - 1)
    ks = {1, n}
    ks.update(min(n, round(math.exp(i * step))) for i in range(1, points - 1))
    return sorted(ks)


def convergence_etag(n: int) -> str:
    """Return the weak ETag of the picture for ``n`` (a pure function of n and the version)."""
    return f'W/"pi-convergence-{n}-v{PICTURE_VERSION}"'


def convergence_cache_key(n: int) -> str:
    """Return the cache key of the picture for ``n``: the result key layout, the picture,
    its stored form."""
    return f"pi:{n}:convergence-v{PICTURE_VERSION}:fmt{PICTURE_FORMAT}"


def convergence_svg_bytes(n: int) -> bytes:
    """Return ``convergence_svg(n)`` as UTF-8 bytes (what is stored and sent; picklable)."""
    return convergence_svg(n).encode()


def convergence_svg(n: int) -> str:
    """Return the SVG document of pi - pi(k) for k = 1..n on log-log axes; ValueError if n < 1.

    The curve is a line through ``sample_ks(n)``, the asymptote 3/(pi k) a
    dashed line beside it, n a marker on the curve; for n = 1 the picture
    is that single point.
    """
    ks = sample_ks(n)
    curve = Series("pi - pi(k)", CURVE_COLOR, "circle", [(k, distance(k)) for k in ks], "line")
    mark = Series("n", MARK_COLOR, "circle", [curve.points[-1]], counted=False)
    if n == 1:
        series = [mark]
    else:
        line = Series("3/(pi k)", ASYMPTOTE_COLOR, "circle", [(1, asymptote(1)), (n, asymptote(n))])
        line.draw = "dashed"
        series = [curve, line, mark]
    title = f"How the Basel partial sums approach pi: pi - pi(k) for k = 1 to {n:,}"
    svg = loglog_chart(
        series,
        x_axis=K_AXIS,
        y_axis=DISTANCE_AXIS,
        title=title,
        css_class="convergence-chart",
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg
