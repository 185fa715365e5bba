# -*- test-case-name: tests.test_twisted_internals -*-
"""
A PROXY protocol v2 header parser of our own, used when Twisted's (the
private C{twisted.protocols.haproxy._v2parser}) is missing or fails its
start-up check (L{echotwist.twisted_internals}). It answers as Twisted's
does: C{feed(data)} gives C{(info, rest)}, C{info} with C{source} and
C{destination} addresses (L{None} for a C{LOCAL} or unspecified header),
or C{(None, None)} until the header is whole.
"""

import struct
from types import SimpleNamespace

from twisted.internet import address

PREFIX = b"\r\n\r\n\x00\r\nQUIT\n"
_FIXED = 16  # prefix, version/command, family/protocol, length


class InvalidV2Header(ValueError):
    """
    The bytes are not a PROXY v2 header this parser accepts.
    """


def _ipv4(packed):
    return ".".join(str(b) for b in packed)


def _ipv6(packed):  # uncompressed, as Twisted's parser writes it
    return ":".join(f"{x:x}" for x in struct.unpack("!8H", packed))


def _ip(text, cls, transport):
    def make(packed, port):
        return cls(transport, text(packed), port)

    return make


# family/protocol byte -> (struct format of the addresses, maker)
_FORMATS = {
    0x11: ("!4s4sHH", _ip(_ipv4, address.IPv4Address, "TCP")),
    0x12: ("!4s4sHH", _ip(_ipv4, address.IPv4Address, "UDP")),
    0x21: ("!16s16sHH", _ip(_ipv6, address.IPv6Address, "TCP")),
    0x22: ("!16s16sHH", _ip(_ipv6, address.IPv6Address, "UDP")),
    0x31: ("!108s108s", None),
    0x32: ("!108s108s", None),
}


class V2Parser:
    PREFIX = PREFIX

    def __init__(self):
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        if len(self.buffer) < _FIXED:
            raise InvalidV2Header("fewer than 16 bytes")
        size = _FIXED + struct.unpack("!H", self.buffer[14:16])[0]
        if len(self.buffer) < size:
            return None, None
        header, rest = self.buffer[:size], self.buffer[size:]
        self.buffer = b""
        return self.parse(header), rest

    @staticmethod
    def parse(header):
        if header[:12] != PREFIX:
            raise InvalidV2Header("no v2 signature")
        version, command = header[12] >> 4, header[12] & 0x0F
        if version != 2 or command not in (0, 1):
            raise InvalidV2Header("not version 2, or not LOCAL or PROXY")
        if command == 0:  # LOCAL: the balancer's own connection
            return SimpleNamespace(header=header, source=None, destination=None)
        family = header[13]
        if family >> 4 not in (0, 1, 2, 3) or family & 0x0F not in (0, 1, 2):
            raise InvalidV2Header("unknown address family or protocol")
        if family >> 4 == 0 or family & 0x0F == 0:  # UNSPEC
            return SimpleNamespace(header=header, source=None, destination=None)
        layout, make = _FORMATS[family]
        body = header[_FIXED : _FIXED + struct.calcsize(layout)]
        try:
            fields = struct.unpack(layout, body)
        except struct.error:
            raise InvalidV2Header("the addresses are cut short") from None
        if make is None:
            source, destination = (
                address.UNIXAddress(f.rstrip(b"\x00")) for f in fields
            )
        else:
            source = make(fields[0], fields[2])
            destination = make(fields[1], fields[3])
        return SimpleNamespace(header=header, source=source, destination=destination)
