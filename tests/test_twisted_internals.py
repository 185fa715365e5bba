"""
Tests for L{echotwist.twisted_internals}: the running Twisted passes the
check of the private names echolab uses; when it does not (simulated here
by making the accessors read an attribute Twisted does not have, as after
a rename), one warning is logged and stock Twisted serves, end to end.
"""

import os
import select
import struct
import sys

from twisted.internet import defer, reactor, tcp
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel, globalLogPublisher
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v2parser import V2Parser as TwistedV2Parser
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from echotwist import proxy_v2, twisted_internals
from echotwist import reactor as echolab_reactor
from echotwist.tcp import WriteThroughPort, listen_tcp
from tests import test_twistd


def _renamed_epoll_parts(reactor):
    return reactor._poller_renamed  # (AttributeError: as if Twisted renamed it)


def _renamed_fast_socket(transport):
    return transport._tempDataLen_renamed


# Run before twistd in a process, to simulate the same there.
SIMULATE_RENAMED = (
    "import echotwist.twisted_internals as t; "
    "t.epoll_parts = lambda r: r._poller_renamed; "
    "t.fast_socket = lambda c: c._tempDataLen_renamed; "
)


def forget_check(testcase):
    twisted_internals._forget()
    testcase.addCleanup(twisted_internals._forget)


def warnings(testcase):
    events = []

    def observe(event):
        if event.get("log_level") == LogLevel.warn:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return events


class CheckTests(SynchronousTestCase):
    def test_passes(self):
        """
        The Twisted the tests run on passes every part of the check, and
        Twisted's own v2 parser is used.
        """
        forget_check(self)
        logged = warnings(self)
        self.assertEqual(twisted_internals.problems(), {})
        self.assertTrue(twisted_internals.usable("reactor"))
        self.assertTrue(twisted_internals.usable("tcp"))
        self.assertIs(twisted_internals.V2Parser, TwistedV2Parser)
        self.assertEqual(logged, [])

    def test_missing_attribute(self):
        """
        With an attribute missing, the check says which part fails, and
        logs one warning however often it is asked.
        """
        forget_check(self)
        self.patch(twisted_internals, "epoll_parts", _renamed_epoll_parts)
        self.patch(twisted_internals, "fast_socket", _renamed_fast_socket)
        logged = warnings(self)
        found = twisted_internals.problems()
        self.assertEqual(sorted(found), ["reactor", "tcp"])
        self.assertIn("_poller_renamed", found["reactor"])
        self.assertIn("_tempDataLen_renamed", found["tcp"])
        self.assertFalse(twisted_internals.usable("tcp"))
        self.assertFalse(echolab_reactor.usable())
        self.assertEqual(len(logged), 1)
        self.assertIn("stock Twisted", logged[0]["log_format"])

    def test_names_listed(self):
        """
        What is used is listed, with the Twisted versions checked.
        """
        self.assertEqual(len(twisted_internals.CHECKED_VERSIONS), 2)
        for area in ("reactor", "tcp", "proxy"):
            self.assertTrue(twisted_internals.PRIVATE_NAMES[area])


class FallbackTests(TestCase):
    @defer.inlineCallbacks
    def test_stock_transports_serve(self):
        """
        When the check fails, L{listen_tcp} listens with stock Twisted
        transports, which echo over loopback.
        """
        forget_check(self)
        self.patch(twisted_internals, "fast_socket", _renamed_fast_socket)
        logged = warnings(self)

        class Echo(Protocol):
            def dataReceived(self, data):
                self.transport.write(data)

        port = listen_tcp(reactor, 0, Factory.forProtocol(Echo), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertIs(type(port), tcp.Port)
        self.assertNotIsInstance(port, WriteThroughPort)
        self.assertEqual(len(logged), 1)

        received = defer.Deferred()

        class Client(Protocol):
            data = b""

            def connectionMade(self):
                self.transport.write(b"ping " * 1000)

            def dataReceived(self, data):
                self.data += data
                if len(self.data) >= 5000:
                    received.callback(self.data)
                    self.transport.loseConnection()

        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Client()
        )
        data = yield received
        self.assertEqual(data, b"ping " * 1000)


class ProcessFallbackTests(SynchronousTestCase):
    def test_twistd_falls_back(self):
        """
        C{twistd -n echolab} on a Twisted whose internals fail the check
        runs on Twisted's own epoll reactor and transports, serves, and
        says why once in its log.
        """
        if not hasattr(select, "epoll"):
            raise SkipTest("no epoll")
        self.patch(
            test_twistd,
            "TWISTD",
            [sys.executable, "-c", SIMULATE_RENAMED + test_twistd.TWISTD[2]],
        )
        data = os.path.abspath(self.mktemp())
        server = test_twistd.Server(
            self, "--port", "0", "--mode", "echo", "--data-dir", data
        )
        self.assertIsNotNone(server.port, server.first_line)
        with server.connect() as s:
            s.send_message({"type": "say", "text": "stock"})
            self.assertEqual(s.recv_message()["text"], "stock")
        server.stop()
        with open(os.path.join(data, "echolab.log")) as f:
            log = f.read()
        self.assertIn("reactor class: twisted.internet.epollreactor.EPollReactor", log)
        self.assertEqual(log.count("stock Twisted is used instead"), 1, log)


def v2(command, family, body=b""):
    return (
        proxy_v2.PREFIX
        + bytes([0x20 | command, family])
        + struct.pack("!H", len(body))
        + body
    )


V2_HEADERS = [
    v2(1, 0x11, bytes([203, 0, 113, 9, 10, 0, 0, 1]) + struct.pack("!HH", 5555, 80)),
    v2(1, 0x12, bytes([203, 0, 113, 9, 10, 0, 0, 1]) + struct.pack("!HH", 1, 2)),
    v2(1, 0x21, bytes(range(16)) + bytes(15) + b"\x01" + struct.pack("!HH", 7, 8)),
    v2(1, 0x31, b"/a".ljust(108, b"\x00") + b"/b".ljust(108, b"\x00")),
    v2(0, 0x00),
    v2(0, 0x11, bytes(12)),
    v2(1, 0x00),
    v2(1, 0x11, bytes(12) + b"tlv"),
]

BAD_V2 = [
    v2(1, 0x11, bytes(5)),  # addresses cut short
    v2(2, 0x11, bytes(12)),  # no such command
    v2(1, 0x41, bytes(12)),  # no such family
    b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00",  # wrong signature
]


def _addresses(info):
    return [
        None if a is None else (type(a), *vars(a).items())
        for a in (info.source, info.destination)
    ]


class V2ParserTests(SynchronousTestCase):
    """
    echolab's own v2 parser, used when Twisted's is missing, answers as
    Twisted's does.
    """

    def test_same_answers(self):
        for header in V2_HEADERS:
            for split in (16, len(header)):
                answers = []
                for parser in (TwistedV2Parser(), proxy_v2.V2Parser()):
                    first = parser.feed(header[:split])
                    if split < len(header):
                        self.assertEqual(first, (None, None))
                        first = parser.feed(header[split:] + b"rest")
                    info, rest = first
                    answers.append((_addresses(info), rest))
                self.assertEqual(answers[0], answers[1], header)

    def test_same_refusals(self):
        for header in BAD_V2:
            self.assertRaises(InvalidProxyHeader, TwistedV2Parser().feed, header)
            self.assertRaises(
                proxy_v2.InvalidV2Header, proxy_v2.V2Parser().feed, header
            )
        self.assertRaises(proxy_v2.InvalidV2Header, proxy_v2.V2Parser().feed, b"short")
