"""Who a client is: the one definition, as pure functions of what the proxies in front report.

Everything that limits or locks out a client (the compute throttle, the
digit budget, the compute slots, the admin's login lock-out) must agree on
who the client is, or a client refused by one is a stranger to another.
``compute.clients`` reads a request with these functions; nothing else
decides it.

A client is an address as the proxies in front report it: the socket's
peer, or, behind ``num_proxies`` trusted proxies that each append the
address they saw to ``X-Forwarded-For``, the address that many hops from
the right (what is further left, a client wrote itself). Trusting the
header without knowing how many proxies wrote it would let a client pick a
fresh address on every request.

An address is then counted as its owner, not as a number: one host holds a
whole IPv6 /64 and may take a fresh address of it at will (privacy
extensions), so an IPv6 address counts as its network of ``ipv6_prefix``
bits; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, an IPv4 client of a
dual-stack socket) is that IPv4 address. The identity is written as an
address (the IPv4 address, or the first address of the IPv6 network), so
it fits wherever an IP address is stored (django-axes' lock-out records).

    >>> client_identity("::ffff:192.0.2.7"), client_identity("2001:db8:1:2:aaaa::1")
    ('192.0.2.7', '2001:db8:1:2::')
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 addresses count per /64 unless configured (CLIENT_IPV6_PREFIX): the
# smallest network a site gets, and what one host may roam within.
IPV6_PREFIX = 64


def reported_address(remote_addr: str, forwarded_for: str | None, *, num_proxies: int) -> str:
    """Return the client's address as the proxies report it.

    ``remote_addr`` (the socket's peer) when ``num_proxies`` is 0 or no
    ``X-Forwarded-For`` came; else the hop ``num_proxies`` from the right of
    ``forwarded_for`` (empty hops skipped), or its leftmost if it has fewer.
    """
    if num_proxies <= 0 or not forwarded_for:
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return remote_addr
    return hops[-min(num_proxies, len(hops))]


def parse_address(text: str) -> Address | None:
    """Return ``text`` as an IP address, an IPv4-mapped IPv6 one as IPv4; None if it is none."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_identity(address: str, *, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """Return the identity of the client at ``address`` (see the module); raise ValueError if
    ``ipv6_prefix`` is not 1-128.

    IPv4 (mapped or not): the address. IPv6: the first address of its
    network of ``ipv6_prefix`` bits (scope dropped). Anything that is not
    an address (no proxy of a well-set deployment reports one) is its own
    identity, as given.
    """
    if not 1 <= ipv6_prefix <= 128:
        raise ValueError(f"an IPv6 prefix is 1 to 128 bits, not {ipv6_prefix}")
    parsed = parse_address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
    return str(ipaddress.IPv6Address(int(parsed) & mask))
