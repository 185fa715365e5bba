# -*- test-case-name: tests.test_addresses -*-
"""
Client addresses, one way for the server and the client: as text, whether
they are this machine, and what limits count them as.
"""

import functools
import ipaddress

LOCAL = "local"
"""
The address of every client on a UNIX socket: a client on this machine.
"""


def peer_host(address):
    """
    The IP address of an C{IAddress} as text in canonical form (IPv4-mapped
    IPv6 given as IPv4, no zone), so that one client is one key for ident
    mode, limits and throttling; L{LOCAL} for a UNIX socket.
    """
    host = getattr(address, "host", None)
    if host is None:
        return LOCAL
    return canonical_host(host)


@functools.lru_cache(maxsize=4096)
def canonical_host(host):
    """
    C{host} in C{ipaddress}'s canonical form (IPv4-mapped as IPv4, no zone),
    or as it is when it is not an IP address. Cached (bounded): clients
    come back, and parsing an address costs the reactor some microseconds
    for every new connection.
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


@functools.lru_cache(maxsize=4096)
def is_loopback(host):
    """
    Whether C{host} (text from L{peer_host}) is this machine: 127.0.0.0/8,
    ::1, IPv4-mapped loopback, or L{LOCAL}.
    """
    if host == LOCAL:
        return True
    try:
        ip = ipaddress.ip_address(canonical_host(host))
    except ValueError:
        return False
    return ip.is_loopback


@functools.lru_cache(maxsize=4096)
def network_key(address, ipv6_prefix=64):
    """
    What limits count C{address} (an IP address as text) as: an IPv4
    address as it is; an IPv6 one as its network of C{ipv6_prefix} bits,
    since one subscriber is given a whole /64 and could otherwise take a
    fresh key for every attempt. Anything else (L{LOCAL}) as it is.
    """
    if ":" not in address or ipv6_prefix >= 128:
        return address
    try:
        network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
    except ValueError:
        return address
    return str(network)
