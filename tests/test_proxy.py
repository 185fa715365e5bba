"""
Unit tests of the PROXY protocol wrapper (C{haproxy:} endpoints): the
headers it accepts and refuses, what a refusal logs, the place a connection
waiting for its header takes among the server's connections, and what a
claimed address earns. The tests over real sockets are in
L{tests.test_transport}.
"""

import ipaddress
import os
import re
import struct

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from echotwist.proxy import (
    HEADER_TIMEOUT,
    REFUSAL_LINES_EVERY,
    IClaimedAddress,
    ProxyWrappingFactory,
)
from tests.helpers import (
    Conversation,
    HalfCloseableTransport,
    frame,
    make_factory,
    unframe,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BALANCER = "192.0.2.100"  # the socket's peer, unless a test says otherwise
V2_PREFIX = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source, port=5555):
    family = "TCP6" if ":" in source else "TCP4"
    destination = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {port} 9090\r\n".encode()


def v2(command, family, body=b""):
    """
    A v2 header: C{command} 0 (LOCAL) or 1 (PROXY), C{family} the address
    family and protocol byte, C{body} the addresses.
    """
    return (
        V2_PREFIX
        + bytes([0x20 | command, family])
        + struct.pack("!H", len(body))
        + body
    )


def v2_tcp4(source, port=5555):
    body = ipaddress.IPv4Address(source).packed + bytes(4) + struct.pack("!HH", port, 1)
    return v2(1, 0x11, body)


def v2_tcp6(source, port=5555):
    body = (
        ipaddress.IPv6Address(source).packed + bytes(16) + struct.pack("!HH", port, 1)
    )
    return v2(1, 0x21, body)


def v2_unix(path=b"/run/client.sock"):
    return v2(1, 0x31, path.ljust(108, b"\x00") + b"/run/lb.sock".ljust(108, b"\x00"))


class Proxied:
    """
    One connection through the PROXY wrapper, over a L{StringTransport}
    from the balancer at C{host}.
    """

    def __init__(self, wrapping, host=BALANCER, port=40000):
        address_class = IPv6Address if ":" in host else IPv4Address
        self.transport = HalfCloseableTransport(
            peerAddress=address_class("TCP", host, port)
        )
        self.wrapper = wrapping.buildProtocol(self.transport.getPeer())
        self.wrapper.makeConnection(self.transport)

    @property
    def server(self):
        """
        The echolab protocol behind the wrapper (not connected until the
        header is read).
        """
        return self.wrapper.wrappedProtocol

    def send(self, data):
        self.wrapper.dataReceived(data)

    def replies(self):
        data = self.transport.value()
        self.transport.clear()
        return unframe(data)

    def types(self):
        return [r["type"] for r in self.replies()]

    @property
    def closed(self):
        return self.transport.disconnecting

    def lose(self):
        self.wrapper.connectionLost(Failure(ConnectionDone()))


class ProxyTestCase(SynchronousTestCase):
    mode = "echo"

    def wrapping(self, **settings):
        """
        A server factory (with C{settings}) behind the PROXY wrapper, both on
        C{self.clock}.
        """
        self.clock = Clock()
        self.factory = make_factory(self, self.mode, clock=self.clock, **settings)
        return ProxyWrappingFactory(self.factory, self.clock)

    def assertOneLogLine(self, events, client=BALANCER):
        """
        C{events} are one line for the log, about C{client}, that no bytes
        from the client could make more than one line (or colour it).

        @return: the line.
        """
        self.assertEqual(len(events), 1, [formatEvent(e) for e in events])
        [event] = events
        self.assertNotIn("log_failure", event)
        self.assertEqual(event.get("client"), client)
        line = formatEvent(event)
        self.assertTrue(line.isprintable(), line)
        self.assertLess(len(line), 600)
        return line


class HeaderTests(ProxyTestCase):
    def test_good_headers(self):
        """
        Valid v1 and v2 headers serve the connection, under the client's
        address in canonical form; ports 0 and 65535 are ports.
        """
        wrapping = self.wrapping()
        for header, address in [
            (v1("198.51.100.7"), "198.51.100.7"),
            (v1("2001:DB8:0::7"), "2001:db8::7"),
            (v1("::ffff:198.51.100.7"), "198.51.100.7"),
            (v1("198.51.100.7", port=0), "198.51.100.7"),
            (v1("198.51.100.7", port=65535), "198.51.100.7"),
            (v2_tcp4("203.0.113.9"), "203.0.113.9"),
        ]:
            c = Proxied(wrapping)
            c.send(header + frame({"type": "say", "text": "hi"}))
            self.assertEqual(c.types(), ["welcome", "echo"], header)
            self.assertEqual(c.server.address, address)
            self.assertFalse(c.closed)

    def test_bad_headers(self):
        """
        A v1 header whose addresses are not IP addresses of its family, or
        whose ports are not 0-65535, or anything else than a PROXY header,
        closes the connection with one log line that quotes it escaped. (A
        control character in an address went raw into the log; a port that
        is not a number raised an error out of the parser.)
        """
        wrapping = self.wrapping()
        for header in [
            b"PROXY TCP4 \x1b[31mEVIL 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 99999 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 x 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 1 -2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 +1 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 1_0 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 \xd9\xa1 2\r\n",
            b"PROXY TCP4 2001:db8::7 127.0.0.1 1 2\r\n",
            b"PROXY TCP6 198.51.100.7 ::1 1 2\r\n",
            b"PROXY TCP6 fe80::1%\x1b[31m ::1 1 2\r\n",
            b"PROXY TCP4 198.51.100.\xff 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 198.51.100.7 127.0.0.1 1 2 3\r\n",
            b"PROXY TCP4 198.51.100.7  127.0.0.1 1 2\r\n",
            b"PROXY UDP4 198.51.100.7 127.0.0.1 1 2\r\n",
            b"PROXY " + b"9" * 200 + b"\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ]:
            with capturedLogs() as events:
                c = Proxied(wrapping)
                c.send(header + frame({"type": "quit"}))
            self.assertTrue(c.closed, header)
            self.assertIsNone(c.server.address, header)
            self.assertEqual(c.transport.value(), b"", header)
            line = self.assertOneLogLine(events)
            self.assertIn("bad PROXY header", line)
            self.assertIn(repr(header[:20])[:-1], line)

    def test_parser_failure(self):
        """
        However the parser fails, the connection is closed with one line
        that names the failure, and no traceback.
        """
        from twisted.protocols.haproxy._v2parser import V2Parser

        def boom(parser, data):
            raise KeyError("\x1b[31m")

        self.patch(V2Parser, "feed", boom)
        with capturedLogs() as events:
            c = Proxied(self.wrapping())
            c.send(v2_tcp4("203.0.113.9"))
        self.assertTrue(c.closed)
        self.assertIn("KeyError", self.assertOneLogLine(events))

    def test_unknown(self):
        """
        C{PROXY UNKNOWN} (with or without addresses after it) and a v2
        C{LOCAL} header are valid, the spec says: the connection is served,
        under its socket's own addresses (the balancer's).
        """
        wrapping = self.wrapping()
        for header in [
            b"PROXY UNKNOWN\r\n",
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
            v2(0, 0x00),
            v2(0, 0x11, bytes(12)),  # LOCAL: whatever follows is ignored
        ]:
            c = Proxied(wrapping)
            c.send(header + frame({"type": "say", "text": "hi"}))
            self.assertEqual(c.types(), ["welcome", "echo"], header)
            self.assertFalse(c.closed)  # (nor aborted: a reset)
            self.assertEqual(c.server.address, BALANCER)
            self.assertEqual(c.wrapper.getPeer(), c.transport.getPeer())
            self.assertEqual(c.wrapper.getHost(), c.transport.getHost())
            self.assertFalse(IClaimedAddress.providedBy(c.wrapper))

    def test_timeout(self):
        """
        A connection whose header does not come in time is aborted.
        """
        c = Proxied(self.wrapping())
        c.send(b"PROXY TCP4 ")
        self.clock.advance(HEADER_TIMEOUT)
        self.assertTrue(c.transport.disconnecting)


class SplitHeaderTests(ProxyTestCase):
    """
    A header split across reads, down to a byte a read (as a balancer's
    segments may come), connects the echolab protocol once it is whole and
    not before, and the bytes after it reach the echolab protocol whichever
    read brings them. (Twisted's own wrapper drops such a connection.)
    """

    # v1 and v2 headers, with the address each gives the connection.
    HEADERS = [
        (v1("198.51.100.7"), "198.51.100.7"),
        (v1("2001:db8::7"), "2001:db8::7"),
        (b"PROXY UNKNOWN\r\n", BALANCER),
        (v2_tcp4("203.0.113.9"), "203.0.113.9"),
        (v2_tcp6("2001:db8::9"), "2001:db8::9"),
        (v2(0, 0x00), BALANCER),  # LOCAL: the balancer's health check
    ]

    def proxied(self):
        """
        A connection through the wrapper, and the list of the transports
        its echolab protocol was connected to (by C{makeConnection}).
        """
        c = Proxied(self.wrapping())
        made = []
        make_connection = c.server.makeConnection

        def counting(transport):
            made.append(transport)
            make_connection(transport)

        c.server.makeConnection = counting
        return c, made

    def assertWaiting(self, c, made, what):
        """
        C{c} is still waiting for its header: its echolab protocol is not
        connected, nothing was written, it holds a waiting place.
        """
        self.assertEqual(made, [], what)
        self.assertIsNone(c.server.address, what)
        self.assertEqual(c.transport.value(), b"", what)
        self.assertFalse(c.closed, what)
        self.assertEqual(self.factory.connections, set(), what)
        self.assertEqual(self.factory.waiting, {c.wrapper}, what)

    def assertServed(self, c, made, address, what):
        """
        C{c}'s echolab protocol was connected once, to the wrapper, under
        C{address}, and holds a served place instead of a waiting one.
        """
        self.assertEqual(made, [c.wrapper], what)
        self.assertEqual(c.server.address, address, what)
        self.assertEqual(self.factory.connections, {c.server}, what)
        self.assertEqual(self.factory.waiting, set(), what)
        self.assertFalse(c.closed, what)

    def test_byte_by_byte(self):
        """
        A header one byte a read: each read but its last leaves the
        connection waiting; the last connects it, and the message after the
        header in that read is answered. Later reads reach it, and the
        header's timeout no longer applies.
        """
        for header, address in self.HEADERS:
            c, made = self.proxied()
            for i in range(len(header) - 1):
                c.send(header[i : i + 1])
                self.assertWaiting(c, made, (header, i))
            c.send(header[-1:] + frame({"type": "say", "text": "after"}))
            self.assertServed(c, made, address, header)
            self.assertEqual(
                [(r["type"], r.get("text")) for r in c.replies()],
                [("welcome", None), ("echo", "after")],
                header,
            )
            c.send(frame({"type": "say", "text": "later"}))
            self.assertEqual([r["text"] for r in c.replies()], ["later"], header)
            self.clock.advance(HEADER_TIMEOUT)
            self.assertFalse(c.closed, header)
            self.assertEqual(made, [c.wrapper], header)

    def test_two_reads(self):
        """
        A header and two messages in two reads, split anywhere: the
        connection waits while the first read holds part of the header, is
        served once it is whole, and both messages are answered in order.
        """
        messages = frame({"type": "say", "text": "one"}) + frame(
            {"type": "say", "text": "two"}
        )
        for header, address in self.HEADERS:
            data = header + messages
            for split in range(1, len(data)):
                what = (header, split)
                c, made = self.proxied()
                c.send(data[:split])
                if split < len(header):
                    self.assertWaiting(c, made, what)
                else:
                    self.assertServed(c, made, address, what)
                c.send(data[split:])
                self.assertServed(c, made, address, what)
                replies = c.replies()
                self.assertEqual(
                    [(r["type"], r.get("text")) for r in replies],
                    [("welcome", None), ("echo", "one"), ("echo", "two")],
                    what,
                )


class WaitingTests(ProxyTestCase):
    """
    A connection waiting for its header counts toward C{max_connections}.
    """

    def test_counted_while_waiting(self):
        """
        Connections waiting for their header fill the server: one more is
        closed at once, with a line naming its client. A served one counts
        as before, and one that closes gives its place back.
        """
        wrapping = self.wrapping(max_connections=2)
        first, second = Proxied(wrapping), Proxied(wrapping)
        with capturedLogs() as events:
            third = Proxied(wrapping, host="198.51.100.9")
            third.send(v1("198.51.100.9"))
        self.assertTrue(third.closed)
        self.assertEqual(third.transport.value(), b"")
        self.assertIn(
            "too many connections", self.assertOneLogLine(events, "198.51.100.9")
        )
        self.assertFalse(first.closed or second.closed)

        first.send(v1("198.51.100.7"))
        self.assertEqual(first.types(), ["welcome"])
        self.assertTrue(Proxied(wrapping).closed)

        second.lose()
        self.assertEqual(self.factory.waiting, set())
        fourth = Proxied(wrapping)
        self.assertFalse(fourth.closed)
        fourth.send(v1("198.51.100.8"))
        self.assertEqual(fourth.types(), ["welcome"])

    def test_header_takes_the_place(self):
        """
        A connection that held the last place while waiting is served once
        its header comes: its waiting place becomes its place.
        """
        wrapping = self.wrapping(max_connections=1)
        c = Proxied(wrapping)
        c.send(v1("198.51.100.7"))
        self.assertEqual(c.types(), ["welcome"])
        self.assertEqual(len(self.factory.connections), 1)
        self.assertEqual(self.factory.waiting, set())
        c.lose()
        self.assertEqual(self.factory.connections, set())

    def test_bad_header_gives_back(self):
        """
        A connection closed for a bad header gives its place back when it
        is gone.
        """
        wrapping = self.wrapping(max_connections=1)
        c = Proxied(wrapping)
        c.send(b"PROXY nonsense\r\n")
        self.assertTrue(c.closed)
        c.lose()
        self.assertEqual(self.factory.waiting, set())
        self.assertFalse(Proxied(wrapping).closed)

    def test_flood(self):
        """
        A flood of connections refused while the server is full writes one
        line at once, then one line per period with the count and the last
        client, and a last one when the server stops.
        """
        wrapping = self.wrapping(max_connections=1)
        Proxied(wrapping)
        with capturedLogs() as events:
            for i in range(500):
                Proxied(wrapping, host=f"198.51.100.{i % 200}")
            self.assertEqual(len(events), 1)
            self.clock.advance(REFUSAL_LINES_EVERY)
            self.assertEqual(len(events), 2)
            self.assertEqual(events[1]["count"], 499)
            self.assertEqual(events[1]["client"], "198.51.100.99")
            self.clock.advance(REFUSAL_LINES_EVERY)  # nothing more to tell
            self.assertEqual(len(events), 2)
            for _ in range(3):
                Proxied(wrapping)
            Proxied(wrapping, host="203.0.113.1")
            self.assertEqual(len(events), 3)
            wrapping.doStart()
            wrapping.doStop()
            self.clock.advance(2 * REFUSAL_LINES_EVERY)
        self.assertEqual(len(events), 4)
        self.assertEqual(events[3]["count"], 3)
        self.assertEqual(events[3]["client"], "203.0.113.1")


class ClaimedAddressTests(ProxyTestCase):
    """
    Only a client whose socket is on this machine is spared
    C{max_per_address}, not one whose header claims a loopback address.
    """

    def busy(self, c):
        return [r.get("code") for r in c.replies()] == ["busy", None]

    def test_claimed_loopback(self):
        """
        Loopback addresses claimed in a header are limited like any other.
        """
        for header in [v1("127.0.0.1"), v1("::1"), v2_tcp4("127.0.0.5")]:
            wrapping = self.wrapping(max_per_address=1)
            first = Proxied(wrapping)
            first.send(header)
            self.assertEqual(first.types(), ["welcome"])
            again = Proxied(wrapping)
            again.send(header)
            self.assertTrue(self.busy(again), header)
            self.assertTrue(IClaimedAddress.providedBy(first.wrapper))

    def test_claimed_local(self):
        """
        A v2 header with UNIX addresses claims C{local}, a UNIX socket's
        client: limited too.
        """
        wrapping = self.wrapping(max_per_address=1)
        first = Proxied(wrapping)
        first.send(v2_unix())
        self.assertEqual(first.server.address, "local")
        self.assertEqual(first.types(), ["welcome"])
        again = Proxied(wrapping)
        again.send(v2_unix())
        self.assertTrue(self.busy(again))

    def test_real_loopback(self):
        """
        A real loopback peer keeps its exemption: directly, or behind the
        wrapper with an C{UNKNOWN} header (the socket's peer is used).
        """
        wrapping = self.wrapping(max_per_address=1)
        for _ in range(3):
            c = Proxied(wrapping, host="127.0.0.1")
            c.send(b"PROXY UNKNOWN\r\n")
            self.assertEqual(c.types(), ["welcome"])
            self.assertEqual(
                Conversation(self.factory, host="127.0.0.1").types(), ["welcome"]
            )


class DocsTests(SynchronousTestCase):
    def test_haproxy_examples_name_an_interface(self):
        """
        The docs' C{haproxy:} examples listen on a named interface: endpoint
        strings listen on every interface unless they name one, and a PROXY
        port must be reachable by the balancer only.
        """
        for name in ("README.md", "docs/protocol.md"):
            with open(os.path.join(ROOT, name), encoding="utf-8") as f:
                examples = re.findall(r"haproxy:[^\s`]+", f.read())
            self.assertTrue(examples, name)
            for example in examples:
                self.assertIn(":interface=", example, name)
