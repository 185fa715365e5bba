# -*- test-case-name: tests.test_proxy,tests.test_transport -*-
"""
The PROXY protocol (v1 and v2), for running behind a load balancer: the
client's address comes from the header the balancer sends first.

Twisted's own wrapper (C{haproxy:} endpoints) connects the wrapped protocol
before the header is parsed, so in C{connectionMade} C{getPeer()} is still
the balancer, and ident mode, connection limits and throttling would all
key on it; it also drops a connection whose header arrives in small pieces.
This wrapper connects the echolab protocol only once the header is parsed,
and waits for a header split across reads.

A connection waiting for its header takes a place among the server's
C{max_connections}, as a served one does: it holds a socket all the same.

Only listen this way behind a balancer you trust: anyone who can reach the
port can claim any address. So a claimed address is checked to be an IP
address (it becomes a key for ident mode and limits, and goes into the
log), and earns none of the privileges of a client on this machine.
"""

import ipaddress

from twisted.internet import address
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import Interface, alsoProvides, implementer

from echotwist.addresses import peer_host
from echotwist.output import close_writing
from echotwist.twisted_internals import V2Parser

HEADER_TIMEOUT = 10.0  # a balancer sends the header at once
V1_LONGEST = 107  # the longest v1 header line the spec allows, CRLF included
SHOWN_HEADER = V1_LONGEST  # bytes of a bad header quoted in the log
REFUSAL_LINES_EVERY = 10.0  # seconds between lines about refused connections
FULL = "too many connections"


class IClaimedAddress(Interface):
    """
    A transport whose C{getPeer()} is an address claimed by a PROXY header,
    not its socket's peer. Anyone who can reach a C{haproxy:} port can claim
    any address, loopback included, so a claimed one earns nothing a client
    on this machine gets.
    """


class BadHeader(Exception):
    """
    The connection did not start with a PROXY header we accept; the message
    says why, in words of our own (never bytes from the header).
    """


def _v1_address(kinds, what, host, port):
    """
    One address of a v1 line, checked: Twisted's parser takes any word as a
    host (escape sequences included) and any integer as a port, and lets a
    port that is not one raise a bare C{ValueError}.

    @param kinds: the C{ipaddress} class of the line's family, and the
        Twisted address class to make.
    @param what: C{"source"} or C{"destination"}, for the error.
    """
    parse, make = kinds
    family = "IPv4" if parse is ipaddress.IPv4Address else "IPv6"
    try:
        ip = parse(host.decode("ascii"))
    except ValueError:  # (UnicodeDecodeError included)
        ip = None
    if ip is None or b"%" in host:  # (an IPv6 zone is any text)
        raise BadHeader(f"the {what} is not an {family} address")
    if not (port.isdigit() and len(port) <= 5 and int(port) <= 65535):
        raise BadHeader(f"the {what} port is not 0-65535")
    return make("TCP", str(ip), int(port))


_V1_FAMILIES = {
    b"TCP4": (ipaddress.IPv4Address, address.IPv4Address),
    b"TCP6": (ipaddress.IPv6Address, address.IPv6Address),
}


def parse_v1(line):
    """
    @param line: a v1 header line, without its CRLF.
    @return: the (source, destination) addresses; both L{None} for
        C{UNKNOWN}, whose connection keeps its socket's addresses (the rest
        of such a line is to be ignored, the spec says).
    @raise BadHeader: for anything else than the spec's
        C{PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT}.
    """
    fields = line.split(b" ")
    if fields[:2] == [b"PROXY", b"UNKNOWN"]:
        return None, None
    if len(fields) != 6 or fields[0] != b"PROXY":
        raise BadHeader("not a PROXY v1 line of 6 fields")
    kinds = _V1_FAMILIES.get(fields[1])
    if kinds is None:
        raise BadHeader("the protocol is not TCP4, TCP6 or UNKNOWN")
    _, _, source, destination, source_port, destination_port = fields
    return (
        _v1_address(kinds, "source", source, source_port),
        _v1_address(kinds, "destination", destination, destination_port),
    )


class V1Reader:
    """
    Gathers a v1 header line, however it is split across reads.
    """

    PREFIX = b"PROXY "

    def __init__(self):
        self._buffer = b""

    def feed(self, data):
        """
        @return: the header's (source, destination) and the bytes after it,
            or L{None} while the line is incomplete.
        @raise BadHeader: for a bad line, or none within the longest allowed.
        """
        buffer = self._buffer + data
        end = buffer.find(b"\r\n", 0, V1_LONGEST)
        if end < 0:
            if len(buffer) >= V1_LONGEST:
                raise BadHeader(f"no end of line within {V1_LONGEST} bytes")
            self._buffer = buffer
            return None
        self._buffer = b""
        return parse_v1(buffer[:end]), buffer[end + 2 :]


class V2Reader:
    """
    Twisted's v2 parser, answering as L{V1Reader} does. (Binary addresses
    need no checking: any 4 or 16 bytes are an IP address, any 2 a port.)
    A C{LOCAL} header (the balancer's own health check) gives no addresses.
    """

    PREFIX = V2Parser.PREFIX

    def __init__(self):
        self._parser = V2Parser()

    def feed(self, data):
        info, rest = self._parser.feed(data)
        if info is None:
            return None
        return (info.source, info.destination), rest


def _reader_for(head):
    """
    @return: the reader for C{head}'s header version, or L{None} while too
        few bytes have come to tell.
    @raise BadHeader: when C{head} starts no PROXY header.
    """
    v2, v1 = V2Reader.PREFIX, V1Reader.PREFIX
    if head.startswith(v2) and len(head) >= 16 and head[12] & 0xF0 == 0x20:
        return V2Reader()
    if head.startswith(v1):
        return V1Reader()
    if (v2.startswith(head[:12]) and len(head) < 16) or v1.startswith(head):
        return None
    raise BadHeader("no PROXY header")


def shown(data, limit=SHOWN_HEADER):
    """
    C{data} fit for a log line: escaped (no control characters from a
    client reach the log) and cut short.
    """
    text = repr(data[:limit])
    return text + "..." if len(data) > limit else text


class ProxyHeaderProtocol(ProtocolWrapper):
    """
    Read the PROXY header, then connect the wrapped protocol, whose
    C{transport.getPeer()} is from then on the client's address.

    Until then the connection takes a place among the server's connections,
    or is closed at once when there is none; a bad header closes it with
    one log line.
    """

    log = Logger()
    _reader = None
    _head = b""  # the first bytes read, until a reader is chosen
    _shown = b""  # the first bytes read, for the log, should they be bad
    _timeout = None
    _waiting = False  # holding a place among the server's connections
    _refused = False
    _connected = False  # the wrapped protocol is connected
    _source = None  # the addresses in the header, if it gave any
    _destination = None

    def makeConnection(self, transport):
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timeout = self.factory.clock.callLater(
            HEADER_TIMEOUT, self.transport.abortConnection
        )
        self._waiting = self.factory.wrappedFactory.admit_waiting(self)
        if not self._waiting:
            self._refused = True
            self.factory.refusals.refused(self._client())
            self.transport.loseConnection()

    def dataReceived(self, data):
        if self._connected:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._refused:
            return
        if len(self._shown) <= SHOWN_HEADER:
            self._shown += data[: SHOWN_HEADER + 1 - len(self._shown)]
        try:
            found = self._read(data)
        except BadHeader as e:
            self._refuse(str(e))
            return
        except Exception as e:  # the parser's, however it fails
            self._refuse(f"unreadable: {type(e).__name__}")
            return
        if found is not None:
            addresses, rest = found
            self._connect(*addresses)
            if rest:
                self.wrappedProtocol.dataReceived(rest)

    def _read(self, data):
        """
        @return: what the reader's C{feed} returns: L{None} until the
            header is complete.
        """
        if self._reader is None:
            data = self._head + data
            self._reader = _reader_for(data)
            if self._reader is None:
                self._head = data
                return None
            self._head = b""
        return self._reader.feed(data)

    def _connect(self, source, destination):
        self._timeout.cancel()
        self._release_place()
        self._connected = True
        self._shown = b""
        self._source, self._destination = source, destination
        if source is not None:
            alsoProvides(self, IClaimedAddress)
        self.wrappedProtocol.makeConnection(self)

    def _refuse(self, why):
        self._refused = True
        self.log.info(
            "closing {client}: bad PROXY header ({why}): {header}",
            client=self._client(),
            why=why,
            header=shown(self._shown),
        )
        self.transport.loseConnection()

    def _client(self):
        """
        The socket's peer (the balancer), as text for the log: the only
        address known before the header.
        """
        return peer_host(self.transport.getPeer())

    def _release_place(self):
        if self._waiting:
            self._waiting = False
            self.factory.wrappedFactory.release_waiting(self)

    def getPeer(self):
        if self._source is not None:
            return self._source
        return self.transport.getPeer()

    def getHost(self):
        if self._destination is not None:
            return self._destination
        return self.transport.getHost()

    def loseWriteConnection(self):
        close_writing(self.transport)  # (under haproxy:ssl, TLS)

    def connectionLost(self, reason):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._release_place()
        if self._connected:
            super().connectionLost(reason)
        else:
            self.factory.unregisterProtocol(self)


class RefusalLog:
    """
    Logs the connections refused before their header because the server is
    full: the first at once, those of the following C{every} seconds in one
    line with their count. A flood of connections then writes a line now
    and then, not one each.
    """

    log = Logger()

    def __init__(self, clock, every=REFUSAL_LINES_EVERY):
        self._clock = clock
        self._every = every
        self._quiet = None  # the call ending the quiet time after a line
        self._more = 0
        self._last = None

    def refused(self, client):
        """
        A connection from C{client} (its address, as text) was refused.
        """
        if self._quiet is not None:
            self._more += 1
            self._last = client
            return
        self.log.info(
            "refused {client} before its PROXY header: {why}", client=client, why=FULL
        )
        self._quiet = self._clock.callLater(self._every, self._summarise)

    def _summarise(self):
        self._quiet = None
        if self._more:
            self._summary()
            self._quiet = self._clock.callLater(self._every, self._summarise)

    def _summary(self):
        self.log.info(
            "refused {count} more connections before their PROXY headers: "
            "{why} (the last from {client})",
            count=self._more,
            client=self._last,
            why=FULL,
        )
        self._more = 0

    def stop(self):
        """
        Log what is still untold, now: the server is stopping.
        """
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
            if self._more:
                self._summary()


class ProxyWrappingFactory(WrappingFactory):
    """
    Wraps each connection of the server's factory in a
    L{ProxyHeaderProtocol}, on C{clock} for the header's timeout.
    """

    protocol = ProxyHeaderProtocol
    noisy = False

    def __init__(self, wrappedFactory, clock):
        super().__init__(wrappedFactory)
        self.clock = clock
        self.refusals = RefusalLog(clock)

    def logPrefix(self):
        return f"{self.wrappedFactory.logPrefix()} (PROXY)"

    def stopFactory(self):
        self.refusals.stop()


@implementer(IStreamServerEndpoint)
class ProxyEndpoint:
    """
    An endpoint whose connections start with a PROXY header.
    """

    def __init__(self, wrapped, clock):
        self._wrapped = wrapped
        self._clock = clock

    def listen(self, factory):
        return self._wrapped.listen(ProxyWrappingFactory(factory, self._clock))
