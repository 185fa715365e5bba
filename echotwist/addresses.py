# -*- test-case-name: tests.test_addresses -*-
"""
Client addresses as the server counts them.
"""

import functools
import ipaddress


@functools.lru_cache(maxsize=4096)
def network_key(address, ipv6_prefix=64):
    """
    What limits count C{address} (an IP address as text) as: an IPv4
    address as it is; an IPv6 one as its network of C{ipv6_prefix} bits,
    since one subscriber is given a whole /64 and could otherwise take a
    fresh key for every attempt. Anything else ("local") as it is.
    """
    if ":" not in address or ipv6_prefix >= 128:
        return address
    try:
        network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
    except ValueError:
        return address
    return str(network)
