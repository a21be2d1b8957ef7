"""The kind registry (``compute.domain.kinds``): each kind declared once, unknown kinds loud.

References: fast doubling on Python integers for fib, ``decimal`` for the
digit counts; the declarations' words are checked against what the
parser does with them.
"""

from __future__ import annotations

import pytest

from compute.domain import cost, plausible, results
from compute.domain.kinds import registry
from compute.domain.kinds.base import Kind
from compute.domain.kinds.fib import KIND as FIB
from compute.domain.kinds.pi import KIND as PI
from compute.domain.payload import max_entry_bytes
from compute.domain.query import InvalidQuery, Limits, ResultQuery, parse_query
from tests.support.reference import fib_reference

LIMITS = Limits(10**6, 10**18, 1000, 10**18, 10**18)


def test_the_built_in_kinds_in_order():
    assert registry.names() == ("pi", "fib")
    assert registry.get("fib") is FIB and registry.get("pi") is PI
    assert registry.choices() == [("pi", "pi"), ("fib", "fib")]


@pytest.mark.parametrize(
    "use",
    [
        lambda q: results.result_text(q),
        lambda q: cost.estimated_digits(q),
        lambda q: cost.estimated_work(q),
        lambda q: plausible.check_literal(q, b"4"),
    ],
)
def test_an_unknown_kind_fails_loudly_everywhere(use):
    with pytest.raises(registry.UnknownKind, match="unknown kind 'lucas'"):
        use(ResultQuery("lucas", 3))


def test_parsing_an_unknown_kind_is_a_400_naming_the_kinds():
    with pytest.raises(InvalidQuery, match=r"kind must be one of pi, fib\.") as raised:
        parse_query("lucas", "3", limits=LIMITS)
    assert raised.value.field == "kind"


def test_options_belong_to_their_kind_and_the_messages_say_whose():
    with pytest.raises(InvalidQuery, match="digits applies to pi only; fib results are exact"):
        parse_query("fib", "3", digits_text="5", limits=LIMITS)
    with pytest.raises(InvalidQuery, match="mod applies to fib only; pi results are not int"):
        parse_query("pi", "3", mod_text="5", limits=LIMITS)
    with pytest.raises(InvalidQuery, match="format applies to fib only; use digits=D"):
        parse_query("pi", "3", format_text="string", limits=LIMITS)


def test_an_option_that_widens_n_is_read_first():
    # fib's mod raises n's bound to FIB_MOD_MAX_N; an error in it is reported before n's.
    query = parse_query("fib", str(10**12), mod_text="7", limits=LIMITS)
    assert (query.n, query.mod) == (10**12, 7)
    with pytest.raises(InvalidQuery) as raised:
        parse_query("fib", "x", mod_text="0", limits=LIMITS)
    assert raised.value.field == "mod"


def test_each_kind_computes_and_costs_its_own_results():
    assert FIB.compute(ResultQuery("fib", 90)) == str(fib_reference(90))
    assert FIB.compute(ResultQuery("fib", 90, mod=97)) == str(fib_reference(90) % 97)
    assert FIB.stored_digits(ResultQuery("fib", 90)) == len(str(fib_reference(90)))
    assert FIB.stored_digits(ResultQuery("fib", 10**17, mod=1000)) == 3
    assert PI.stored_digits(ResultQuery("pi", 5, digits=40)) == 40
    assert PI.stored_digits(ResultQuery("pi", 5)) == 17


def test_the_entry_bound_is_the_longest_literal_any_kind_allows():
    # fib(1,000,000) has 208,988 digits (SPEC), plus one for the estimate's rounding.
    assert FIB.largest_literal(LIMITS) == 208_989
    assert PI.largest_literal(LIMITS) == 1003  # D digits, the point and the quotes
    assert max_entry_bytes(LIMITS) - max_entry_bytes(Limits(10, 10, 10, 10, 10)) > 200_000
    wide_pi = Limits(10, 10, 5_000_000, 10, 10)
    assert max_entry_bytes(wide_pi) > 5_000_000  # PI_MAX_DIGITS decides there


def test_limits_name_every_bound_a_kind_declares():
    limits = Limits(1, 2, 3, 4, 5, extra=(("LUCAS_MAX_N", 6),))
    assert [limits.of(name) for name in ("FIB_MAX_N", "PI_MAX_N", "PI_MAX_DIGITS")] == [1, 2, 3]
    assert (limits.of("FIB_MOD_MAX_N"), limits.of("FIB_MOD_MAX_M")) == (4, 5)
    assert limits.of("LUCAS_MAX_N") == 6
    with pytest.raises(KeyError):
        limits.of("NOPE_MAX_N")


class _Twice(Kind):
    name = "fib"


def test_loading_refuses_two_kinds_of_one_name_and_keeps_the_registry():
    with pytest.raises(ValueError, match="two kinds are named 'fib'"):
        registry.load([*registry.DEFAULT_KINDS, "tests.domain.test_kinds.TWICE"])
    assert registry.names() == ("pi", "fib")  # unchanged by the refused load
    with pytest.raises(TypeError, match="not a Kind instance"):
        registry.load(["tests.domain.test_kinds.LIMITS"])
    assert registry.names() == ("pi", "fib")


TWICE = _Twice()


@pytest.mark.parametrize(
    "module",
    ["kinds.fib", "kinds.pi", "kinds.base", "kinds.registry", "query", "payload", "results"],
)
def test_each_domain_module_imports_first_in_a_fresh_interpreter(module):
    """No import cycle between the kinds and the query grammar, whichever is imported first
    (a benchmark script imports ``compute.domain.kinds.fib`` before anything else)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", f"import compute.domain.{module}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
