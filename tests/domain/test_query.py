"""Validation of result requests (compute.domain.query), shared by the view and the hot path."""

from __future__ import annotations

import pytest

from compute.domain.query import InvalidQuery, Limits, ResultQuery, parse_int, parse_query

LIMITS = Limits(
    fib_max_n=1_000_000,
    pi_max_n=10**18,
    pi_max_digits=1000,
    fib_mod_max_n=10**18,
    fib_mod_max_m=10**18,
)


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("7", 7), ("007", 7), ("1000000", 1_000_000), ("0000", 0)]
)
def test_plain_digits_parse(text, value):
    assert parse_int("n", text, 0, 1_000_000, "FIB_MAX_N") == value


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "+1", "1.0", "1e3", "1_000", "0x1f", "\u0661", "\uff11", "1\n", "\u0bef"],
)
def test_everything_else_is_not_an_integer(text):
    with pytest.raises(InvalidQuery) as info:
        parse_int("n", text, 0, 10, "LIMIT")
    assert info.value.field == "n"


def test_negative_and_out_of_range_name_the_limit():
    with pytest.raises(InvalidQuery, match="at least 1"):
        parse_int("n", "-4", 1, 10, "PI_MAX_N")
    with pytest.raises(InvalidQuery, match=r"at most 10 \(PI_MAX_N\)"):
        parse_int("n", "11", 1, 10, "PI_MAX_N")
    # Longer than any limit: rejected without int() (which would refuse
    # more than 4,300 digits with a ValueError of its own).
    with pytest.raises(InvalidQuery, match="PI_MAX_N"):
        parse_int("n", "9" * 10_000, 1, 10, "PI_MAX_N")


def test_query_identity_keys_and_etags():
    assert parse_query("pi", "5", limits=LIMITS) == ResultQuery("pi", 5)
    digits = parse_query("pi", "5", "12", limits=LIMITS)
    assert (digits.cache_key, digits.etag, digits.precision) == (
        "pi:5:d12:fmt2",
        'W/"pi-5-d12-v1"',
        12,
    )
    as_string = parse_query("fib", "9", None, "string", limits=LIMITS)
    assert as_string.cache_key == "fib:9:fmt2" and as_string.etag == 'W/"fib-9-s-v1"'
    assert parse_query("fib", "9", None, "number", limits=LIMITS) == ResultQuery("fib", 9)


@pytest.mark.parametrize(
    ("kind", "n", "digits", "fmt", "field"),
    [
        ("fib", "5", "3", None, "digits"),
        ("fib", "5", None, "xml", "format"),
        ("pi", "5", None, "string", "format"),
        ("pi", "0", None, None, "n"),
        ("pi", "5", "0", None, "digits"),
        ("pi", "5", "1001", None, "digits"),
        ("pi", "5", "", None, "digits"),
        ("fib", "1000001", None, None, "n"),
        ("tau", "5", None, None, "kind"),
    ],
)
def test_invalid_combinations(kind, n, digits, fmt, field):
    with pytest.raises(InvalidQuery) as info:
        parse_query(kind, n, digits, fmt, limits=LIMITS)
    assert info.value.field == field


# --- fib(n) mod M --------------------------------------------------------------------


def test_mod_query_identity_keys_and_etags():
    query = parse_query("fib", "10", mod_text="10", limits=LIMITS)
    assert query == ResultQuery("fib", 10, mod=10)
    assert (query.cache_key, query.etag, query.modulus) == (
        "fib:10:m10:fmt2",
        'W/"fib-10-m10-v1"',
        10,
    )
    as_string = parse_query("fib", "10", None, "string", "10", limits=LIMITS)
    assert (as_string.cache_key, as_string.etag) == ("fib:10:m10:fmt2", 'W/"fib-10-m10-s-v1"')
    plain = parse_query("fib", "10", limits=LIMITS)
    assert (plain.cache_key, plain.modulus, plain.mod) == ("fib:10:fmt2", 0, None)


def test_mod_raises_n_to_fib_mod_max_n():
    top = parse_query("fib", str(10**18), mod_text=str(10**18), limits=LIMITS)
    assert (top.n, top.mod) == (10**18, 10**18)
    assert parse_query("fib", "0", mod_text="1", limits=LIMITS).mod == 1
    # Without mod the bound is still FIB_MAX_N.
    with pytest.raises(InvalidQuery, match=r"at most 1000000 \(FIB_MAX_N\)"):
        parse_query("fib", "1000001", limits=LIMITS)
    assert parse_query("fib", "1000001", mod_text="7", limits=LIMITS).n == 1_000_001


def test_mod_limits_follow_the_limits_object():
    small = Limits(fib_max_n=10, pi_max_n=10, pi_max_digits=10, fib_mod_max_n=500, fib_mod_max_m=99)
    with pytest.raises(InvalidQuery, match=r"n must be at most 500 \(FIB_MOD_MAX_N\)"):
        parse_query("fib", "501", mod_text="5", limits=small)
    with pytest.raises(InvalidQuery, match=r"mod must be at most 99 \(FIB_MOD_MAX_M\)"):
        parse_query("fib", "5", mod_text="100", limits=small)


@pytest.mark.parametrize(
    ("kind", "n", "digits", "mod", "field", "fragment"),
    [
        ("pi", "5", None, "10", "mod", "fib only"),
        ("pi", "5", "3", "10", "mod", "fib only"),
        ("fib", "5", "3", "10", "digits", "pi only"),
        ("fib", "5", None, "0", "mod", "at least 1"),
        ("fib", "5", None, "-1", "mod", "at least 1"),
        ("fib", "5", None, str(10**18 + 1), "mod", "FIB_MOD_MAX_M"),
        ("fib", "5", None, "9" * 5000, "mod", "FIB_MOD_MAX_M"),
        ("fib", "5", None, "", "mod", "mod"),
        ("fib", "5", None, "1.5", "mod", "digits 0-9"),
        ("fib", "5", None, "1e3", "mod", "digits 0-9"),
        ("fib", "5", None, " 7", "mod", "digits 0-9"),
        ("fib", "5", None, "\u0667", "mod", "digits 0-9"),
        ("fib", str(10**18 + 1), None, "10", "n", "FIB_MOD_MAX_N"),
        ("fib", "-1", None, "10", "n", "at least 0"),
    ],
)
def test_invalid_mod_combinations(kind, n, digits, mod, field, fragment):
    with pytest.raises(InvalidQuery) as info:
        parse_query(kind, n, digits, None, mod, limits=LIMITS)
    assert info.value.field == field
    assert fragment in info.value.message
