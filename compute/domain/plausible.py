"""Whether a stored literal can be the result of its query, checked without computing it.

Defence in depth behind the keyed MAC of ``compute.cache.integrity``: the MAC
proves that this deployment wrote an entry for its key; this module makes
sure that even an authentic entry (a bug, a leaked signing key) is served
only if it has the shape and size of that query's result. Every check is
cheap (a few float operations, or a C-level scan of the digits), because it
runs on each read from Redis:

- fib(n): ASCII digits without a leading zero, as many as fib(n) has
  (``n log10(phi) - log10(sqrt 5)``, give or take one for the float's
  rounding), ending in the last digit of fib(n), which repeats every 60
  (the Pisano period of 10);
- pi(n) as a double: a non-negative decimal number between the bounds the
  series' tail gives. For n >= 2 the tail ``sum(1/i**2, i >= n)`` lies
  between 1/n and 1/(n-1), so pi(n) lies between ``sqrt(pi**2 - 6/(n-1))``
  and ``sqrt(pi**2 - 6/n)``; pi(1) is the empty sum, 0.0;
- pi(n) with D digits: a quoted decimal in fixed notation with exactly D
  significant digits (one before the point: the value lies in
  [sqrt 6, pi)), within the same bounds widened by the rounding; ``"0"``
  for n = 1.

    >>> from compute.domain.query import ResultQuery
    >>> check_literal(ResultQuery("fib", 20), b"6765")
    >>> check_literal(ResultQuery("fib", 20), b"6766")
    Traceback (most recent call last):
    ...
    ValueError: fib(20) ends in 5, not 6
"""

from __future__ import annotations

import math
import re

from compute.domain.query import FIB, ResultQuery

_LOG10_PHI = math.log10((1 + math.sqrt(5)) / 2)
_LOG10_SQRT5 = math.log10(5) / 2
_PI_SQUARED = math.pi * math.pi
# A few units in the last place of pi: the bounds are computed in doubles.
_SLACK = 1e-14


def _pisano_10() -> tuple[int, ...]:
    a, b, last = 0, 1, []
    for _ in range(60):
        last.append(a)
        a, b = b, (a + b) % 10
    return tuple(last)


_FIB_LAST_DIGIT = _pisano_10()
# The repr of a non-negative double (what the service stores for pi(n)).
_DOUBLE = re.compile(rb"(?:0|[1-9][0-9]*)\.[0-9]+(?:e[+-]?[0-9]+)?")


def fib_digit_count(n: int) -> int:
    """Return the number of decimal digits of fib(n), possibly off by one (float rounding)."""
    if n < 2:
        return 1
    return int(n * _LOG10_PHI - _LOG10_SQRT5) + 1


def pi_bounds(n: int) -> tuple[float, float]:
    """Return (low, high) between which pi(n) lies (both 0.0 for n = 1), widened by float slack."""
    if n == 1:
        return 0.0, 0.0
    low = math.sqrt(_PI_SQUARED - 6 / (n - 1))  # pi**2 > 6: real for every n >= 2
    high = math.sqrt(_PI_SQUARED - 6 / n)
    return low - _SLACK, high + _SLACK


def check_literal(query: ResultQuery, literal: bytes) -> None:
    """Return None if ``literal`` can be ``query``'s stored literal; raise ValueError if not."""
    if query.mod is not None:
        _check_fib_mod(query.n, query.mod, literal)
    elif query.kind == FIB:
        _check_fib(query.n, literal)
    elif query.digits is None:
        _check_pi_double(query.n, literal)
    else:
        _check_pi_digits(query.n, query.digits, literal)


def _check_fib(n: int, literal: bytes) -> None:
    if not literal.isdigit() or (len(literal) > 1 and literal[:1] == b"0"):
        raise ValueError(f"fib({n}) is written with digits only, without a leading zero")
    expected = fib_digit_count(n)
    if abs(len(literal) - expected) > 1:
        raise ValueError(f"fib({n}) has about {expected} digits, not {len(literal)}")
    last = literal[-1] - 48
    if last != _FIB_LAST_DIGIT[n % 60]:
        raise ValueError(f"fib({n}) ends in {_FIB_LAST_DIGIT[n % 60]}, not {last}")


def _check_fib_mod(n: int, mod: int, literal: bytes) -> None:
    if not literal.isdigit() or (len(literal) > 1 and literal[:1] == b"0") or len(literal) > 19:
        raise ValueError(f"fib({n}) mod {mod} is written with at most 19 digits, no leading zero")
    residue = int(literal)
    if residue >= mod:
        raise ValueError(f"fib({n}) mod {mod} is below {mod}, not {residue}")
    if mod % 10 == 0 and residue % 10 != _FIB_LAST_DIGIT[n % 60]:
        # M a multiple of 10: the residue's last digit is fib(n)'s.
        raise ValueError(f"fib({n}) mod {mod} ends in {_FIB_LAST_DIGIT[n % 60]}")


def _check_pi_double(n: int, literal: bytes) -> None:
    if _DOUBLE.fullmatch(literal) is None:
        raise ValueError(f"pi({n}) is stored as a non-negative decimal number")
    _check_pi_value(n, float(literal), 0.0)


def _check_pi_digits(n: int, digits: int, literal: bytes) -> None:
    text = literal[1:-1]
    if len(literal) < 3 or literal[:1] != b'"' or literal[-1:] != b'"':
        raise ValueError(f"pi({n}) with digits is stored as a quoted decimal")
    if n == 1:
        if text != b"0":
            raise ValueError('pi(1) with digits is "0"')
        return
    whole, point, fraction = text[:1], text[1:2], text[2:]
    if digits == 1:
        shaped = text.isdigit() and len(text) == 1
    else:
        shaped = whole.isdigit() and point == b"." and fraction.isdigit()
        shaped = shaped and len(fraction) == digits - 1
    if not shaped:
        raise ValueError(f"pi({n}) with {digits} digits has one digit before the point")
    _check_pi_value(n, float(text), 10.0 ** (1 - digits))


def _check_pi_value(n: int, value: float, rounding: float) -> None:
    low, high = pi_bounds(n)
    if not low - rounding <= value <= high + rounding:
        raise ValueError(f"pi({n}) lies between {low!r} and {high!r}, not at {value!r}")
