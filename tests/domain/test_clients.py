"""Who a client is (``compute.domain.clients``): the address the proxies report, counted by owner.

Reference values are written out by hand from the address notation, not
computed with the code under test.
"""

from __future__ import annotations

import pytest

from compute.domain.clients import client_identity, parse_address, reported_address

# --- the address the proxies report (NUM_PROXIES) ------------------------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "expected"),
    [
        ("192.0.2.1", None, 0, "192.0.2.1"),
        ("192.0.2.1", "198.51.100.7", 0, "192.0.2.1"),  # no proxy: the header is the client's
        ("127.0.0.1", "198.51.100.7", 1, "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", 1, "198.51.100.7"),  # the client wrote 6.6.6.6
        ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", 2, "198.51.100.7"),
        ("127.0.0.1", "198.51.100.7", 3, "198.51.100.7"),  # fewer hops: the leftmost
        ("127.0.0.1", " 198.51.100.7 ,, ", 1, "198.51.100.7"),  # empty hops skipped
        ("127.0.0.1", "", 1, "127.0.0.1"),
        ("127.0.0.1", " , ", 1, "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", 1, "2001:db8::1"),
    ],
)
def test_the_reported_address_trusts_only_num_proxies_hops(remote, forwarded, proxies, expected):
    assert reported_address(remote, forwarded, num_proxies=proxies) == expected


# --- the identity -----------------------------------------------------------------------------


def test_an_ipv4_mapped_ipv6_address_and_its_ipv4_address_are_one_client():
    assert client_identity("::ffff:1.2.3.4") == client_identity("1.2.3.4") == "1.2.3.4"
    assert client_identity("::FFFF:102:304") == "1.2.3.4"  # the same address, written in hex


def test_two_addresses_in_one_slash_64_are_one_client():
    one = client_identity("2001:db8:1:2::1")
    other = client_identity("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert one == other == "2001:db8:1:2::"


def test_different_slash_64s_are_different_clients():
    assert client_identity("2001:db8:1:2::1") != client_identity("2001:db8:1:3::1")
    assert client_identity("2001:db8:1:3::1") == "2001:db8:1:3::"


def test_the_prefix_is_configurable():
    assert client_identity("2001:db8:1:2:3:4:5:6", ipv6_prefix=128) == "2001:db8:1:2:3:4:5:6"
    assert client_identity("2001:db8:1:2:3:4:5:6", ipv6_prefix=48) == "2001:db8:1::"
    assert client_identity("2001:db8:1:2:3:4:5:6", ipv6_prefix=56) == "2001:db8:1::"
    assert client_identity("2001:db8:1:ff02::1", ipv6_prefix=56) == "2001:db8:1:ff00::"
    assert client_identity("1.2.3.4", ipv6_prefix=128) == "1.2.3.4"  # IPv4 is never masked
    for bad in (0, 129, -1):
        with pytest.raises(ValueError, match="1 to 128"):
            client_identity("2001:db8::1", ipv6_prefix=bad)


def test_spellings_of_one_address_are_one_client():
    assert client_identity("2001:DB8:0001:0002:0:0:0:1") == "2001:db8:1:2::"
    assert client_identity("fe80::1%eth0") == "fe80::"  # the scope is no part of who it is


def test_what_is_not_an_address_is_its_own_identity():
    assert client_identity("") == ""
    assert client_identity("unknown") == "unknown"
    assert client_identity("198.51.100.7:4711") == "198.51.100.7:4711"


def test_parse_address_unmaps_ipv4_and_refuses_junk():
    assert str(parse_address("::ffff:10.20.30.40")) == "10.20.30.40"
    assert str(parse_address(" ::1 ")) == "::1"
    assert parse_address("10.0.0.0/8") is None and parse_address("") is None
