"""
Tests for L{echotwist.raw}: raw echo (RFC 862) over a L{StringTransport},
and served by the real server process to a plain socket, as C{nc} is.
"""

import os
import socket
import time

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from echotwist.raw import RawListenerFactory
from tests.helpers import Conversation, HalfCloseableTransport, make_factory
from tests.test_twistd import Server


class RawConnection:
    """
    One raw connection over a L{StringTransport}.
    """

    def __init__(self, raw_factory, host="10.0.0.7", port=40000):
        self.transport = HalfCloseableTransport(
            peerAddress=IPv4Address("TCP", host, port)
        )
        self.transport.aborted = False
        self.transport.abortConnection = lambda: setattr(
            self.transport, "aborted", True
        )
        self.protocol = raw_factory.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def send(self, data):
        self.protocol.dataReceived(data)

    def received(self):
        data = self.transport.value()
        self.transport.clear()
        return data

    def lose(self):
        self.protocol.connectionLost(Failure(ConnectionDone()))


def raw_setup(testcase, **settings):
    clock = Clock()
    server = make_factory(testcase, "echo", clock=clock, **settings)
    server.startFactory()
    testcase.addCleanup(server.stopFactory)
    return clock, server, RawListenerFactory(server)


class RawEchoTests(SynchronousTestCase):
    def setUp(self):
        self.clock, self.server, self.raw = raw_setup(self)
        self.c = RawConnection(self.raw)

    def test_nothing_first(self):
        """
        No welcome, no framing: a raw connection says nothing until spoken to.
        """
        self.assertEqual(self.c.received(), b"")

    def test_bytes_back_as_they_came(self):
        """
        Every byte is sent back unchanged: text without a header, bytes
        that are not UTF-8, a lone newline.
        """
        for data in [b"hello, world!", b"\xff\x00\xfe", "привет\n".encode(), b"\n"]:
            self.c.send(data)
            self.assertEqual(self.c.received(), data)

    def test_half_close_echoes_then_closes(self):
        """
        When the client is done sending (C{nc -N}), the connection closes
        once its echoes are written, not before.
        """
        self.c.send(b"last words")
        self.c.protocol.readConnectionLost()
        self.assertEqual(self.c.received(), b"last words")
        self.assertTrue(self.c.transport.disconnecting)

    def test_counted_and_released(self):
        """
        A raw connection counts among the server's connections until it goes.
        """
        self.assertEqual(self.server.connections, {self.c.protocol})
        self.c.lose()
        self.assertEqual(self.server.connections, set())

    def test_logged(self):
        """
        Connections and disconnections are logged, with the bytes echoed.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        c = RawConnection(self.raw, port=40001)
        c.send(b"12345")
        c.lose()
        lines = [e["log_format"].format(**e) for e in events if "log_format" in e]
        self.assertIn("connection from 10.0.0.7:40001 (raw)", lines)
        self.assertIn(
            "disconnected 10.0.0.7:40001 (raw, 5 bytes echoed): "
            "Connection was closed cleanly.",
            lines,
        )


class RawBoundsTests(SynchronousTestCase):
    def test_idle_timeout(self):
        """
        A raw connection silent for C{idle_timeout} is closed (half-closed,
        then aborted after the linger time); data keeps it open.
        """
        clock, server, raw = raw_setup(self, idle_timeout=300, linger=5)
        c = RawConnection(raw)
        clock.pump([1] * 299)
        c.send(b"still here")
        clock.pump([1] * 299)
        self.assertFalse(c.transport.write_closed)
        clock.pump([1, 1])
        self.assertTrue(c.transport.write_closed)
        self.assertFalse(c.transport.aborted)
        c.send(b"too late")
        self.assertEqual(c.received(), b"still here")  # discarded once closing
        clock.advance(5)
        self.assertTrue(c.transport.aborted)

    def test_backpressure(self):
        """
        When the transport's buffer is full (the client does not read), the
        connection stops reading; it reads again once the buffer drains.
        """
        clock, server, raw = raw_setup(self)
        c = RawConnection(raw)
        self.assertTrue(c.transport.streaming)
        self.assertIs(c.transport.producer, c.protocol)
        c.protocol.pauseProducing()
        self.assertEqual(c.transport.producerState, "paused")
        c.protocol.resumeProducing()
        self.assertEqual(c.transport.producerState, "producing")

    def test_stall_timeout(self):
        """
        A client that leaves the echoes unread for C{stall_timeout} is
        closed, and reading resumes so what it sends is discarded, not left
        to turn the close into a reset.
        """
        clock, server, raw = raw_setup(self, stall_timeout=60, idle_timeout=600)
        c = RawConnection(raw)
        c.protocol.pauseProducing()
        clock.pump([1] * 59)
        self.assertFalse(c.transport.write_closed)
        clock.pump([1, 1])
        self.assertTrue(c.transport.write_closed)
        self.assertEqual(c.transport.producerState, "producing")
        self.assertIsNone(c.transport.producer)

    def test_max_connections_shared(self):
        """
        C{max_connections} counts framed and raw connections together; a
        raw connection over it is closed at once.
        """
        clock, server, raw = raw_setup(self, max_connections=2)
        Conversation(server)
        RawConnection(raw, port=1)
        third = RawConnection(raw, port=2)
        self.assertTrue(third.transport.write_closed)
        self.assertEqual(third.received(), b"")
        self.assertEqual(len(server.connections), 2)

    def test_goodbye_closes_raw(self):
        """
        The server stopping closes raw connections too, saying nothing.
        """
        clock, server, raw = raw_setup(self)
        c = RawConnection(raw)
        server.say_goodbye()
        self.assertTrue(c.transport.write_closed)
        self.assertEqual(c.received(), b"")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RawProcessTests(SynchronousTestCase):
    """
    The server process, with a raw listener next to its framed port, and
    with C{--mode raw}, talked to with a plain socket as C{nc} does.
    """

    def server(self, *args):
        data = os.path.abspath(self.mktemp())
        server = Server(self, "--data-dir", data, *args)
        self.assertIn("listening on", server.first_line)
        server.data = data
        return server

    def test_raw_listener_next_to_framed(self):
        """
        C{--raw-listen} serves raw echo while C{--port} serves frames; the
        listening lines say which is which.
        """
        server = self.server(
            "--port", "0", "--mode", "echo", "--raw-listen", "tcp:0:interface=127.0.0.1"
        )
        raw_line = server._read_line(30)
        self.assertRegex(raw_line, r"listening on 127\.0\.0\.1:\d+ \(tcp, raw\)")
        raw_port = int(raw_line.split(":")[1].split()[0])
        with server.connect() as s:
            s.send_message({"type": "say", "text": "framed"})
            self.assertEqual(s.recv_message()["text"], "framed")
        with socket.create_connection(("127.0.0.1", raw_port), timeout=10) as s:
            s.sendall(b"hello, world!\n")
            s.shutdown(socket.SHUT_WR)  # as nc -N does
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        self.assertEqual(got, b"hello, world!\n")
        server.stop()
        with open(os.path.join(server.data, "echolab.log")) as f:
            log = f.read()
        self.assertIn("(raw, 14 bytes echoed)", log)

    def test_mode_raw_backpressure(self):
        """
        With C{--mode raw}, a client that sends without reading is not
        read from once the server's buffer is full: its sends block, and
        the server's memory stays flat. What it reads afterwards is what
        it sent.
        """
        server = self.server("--port", "0", "--mode", "raw")
        self.assertRegex(server.first_line, r"listening on \S+:\d+ \(raw\)")
        before = rss_kib(server.process.pid)
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.setblocking(False)
        chunk = bytes(range(256)) * 256
        sent, blocked_since = 0, None
        limit = 256 * 1024 * 1024
        while sent < limit:
            try:
                sent += s.send(chunk)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1.0:
                    break
                time.sleep(0.01)
        self.assertLess(sent, limit, "the server kept reading")
        grew = rss_kib(server.process.pid) - before
        self.assertLess(grew, 16 * 1024, f"the server grew by {grew} KiB")
        s.setblocking(True)
        got = bytearray()
        while len(got) < sent:
            got += s.recv(1 << 20)
        self.assertEqual(bytes(got[:65536]), chunk)
        self.assertEqual(len(got), sent)
