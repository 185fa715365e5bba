# -*- test-case-name: tests.test_transport -*-
"""
The PROXY protocol (v1 and v2), for running behind a load balancer: the
client's address comes from the header the balancer sends first.

Twisted's own wrapper (C{haproxy:} endpoints) connects the wrapped protocol
before the header is parsed, so in C{connectionMade} C{getPeer()} is still
the balancer, and ident mode, connection limits and throttling would all
key on it; it also drops a connection whose header arrives in small pieces.
This wrapper connects the echolab protocol only once the header is parsed,
and waits for a header split across reads.

Only listen this way behind a balancer you trust: anyone who can reach the
port can claim any address.
"""

from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import (
    HAProxyProtocolWrapper,
    HAProxyWrappingFactory,
)
from zope.interface import implementer

from echotwist.protocol import close_writing

HEADER_TIMEOUT = 10.0  # a balancer sends the header at once


class ProxyHeaderProtocol(HAProxyProtocolWrapper):
    """
    Read the PROXY header, then connect the wrapped protocol, whose
    C{transport.getPeer()} is from then on the client's address.
    """

    _head = b""
    _timeout = None

    def makeConnection(self, transport):
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timeout = self.factory.clock.callLater(
            HEADER_TIMEOUT, self.transport.abortConnection
        )

    def dataReceived(self, data):
        if self._proxyInfo is not None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._parser is None:
            data = self._head + data
            self._head = b""
            parser = self._choose_parser(data)
            if parser is None:
                return
            self._parser = parser
        try:
            info, rest = self._parser.feed(data)
        except InvalidProxyHeader:
            self._refuse()
            return
        if info is None:
            return  # the parser keeps the partial header
        self._timeout.cancel()
        self._proxyInfo = info
        self.wrappedProtocol.makeConnection(self)
        if rest:
            self.wrappedProtocol.dataReceived(rest)

    def _choose_parser(self, head):
        """
        @return: the parser for C{head}'s header version, or L{None} (keeping
            C{head}) while too few bytes have come to tell.
        """
        v2, v1 = V2Parser.PREFIX, V1Parser.PROXYSTR
        if head.startswith(v2) and len(head) >= 16 and head[12] & 0xF0 == 0x20:
            return V2Parser()
        if head.startswith(v1 + b" "):
            return V1Parser()
        if (v2.startswith(head[:12]) and len(head) < 16) or (v1 + b" ").startswith(
            head
        ):
            self._head = head
            return None
        self._refuse()
        return None

    def _refuse(self):
        self.transport.abortConnection()

    def loseWriteConnection(self):
        close_writing(self.transport)  # (under haproxy:ssl, TLS)

    def connectionLost(self, reason):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self._proxyInfo is None:  # the wrapped protocol never connected
            self.factory.unregisterProtocol(self)
        else:
            super().connectionLost(reason)


class ProxyWrappingFactory(HAProxyWrappingFactory):
    protocol = ProxyHeaderProtocol

    def __init__(self, wrappedFactory, clock):
        super().__init__(wrappedFactory)
        self.clock = clock


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
