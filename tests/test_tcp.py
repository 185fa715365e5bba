"""
Tests for L{echotwist.tcp}: writes that go straight to the socket keep
their order with whatever had to be queued, and still pause producers.
"""

import errno
import socket
import sys
from types import SimpleNamespace

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from echotwist.tcp import WriteThroughServer, _after, listen_tcp

# Pieces Linux's sendmsg takes (its IOV_MAX; RealSocketTests checks it),
# independent of the module's own constant.
IOV_MAX = 1024


class Collector(Protocol):
    def connectionMade(self):
        self.chunks = []
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self.chunks))


class Writer(Protocol):
    """
    Writes a numbered stream in many writes of mixed sizes as soon as it
    connects, registering as a producer to see pauses.
    """

    paused = 0

    def connectionMade(self):
        self.transport.registerProducer(self, True)
        self.factory.connected.callback(self)

    def pauseProducing(self):
        self.paused += 1

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class WriteThroughTests(TestCase):
    @defer.inlineCallbacks
    def test_order_and_backpressure(self):
        """
        Megabytes written in mixed-size writes to a client that is slow to
        read arrive whole and in order, and the producer was paused while
        the socket was full.
        """
        factory = Factory.forProtocol(Writer)
        factory.connected = defer.Deferred()
        port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Collector()
        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client
        )
        writer = yield factory.connected
        self.assertIsInstance(writer.transport, WriteThroughServer)
        client.transport.pauseProducing()  # read nothing for now
        expected = []
        for i in range(20000):
            chunk = (b"%06d" % i) * (1 + (i * 37) % 400)
            expected.append(chunk)
            if i % 3:
                writer.transport.write(chunk)
            else:
                writer.transport.writeSequence([chunk[:5], chunk[5:]])
        writer.transport.unregisterProducer()
        writer.transport.loseConnection()
        client.transport.resumeProducing()
        received = yield client.done
        self.assertEqual(received, b"".join(expected))
        self.assertGreater(writer.paused, 0)


class FakeSocket:
    """
    A connected non-blocking socket whose send buffer has C{room} bytes
    free: C{send} and C{sendmsg} take what fits and raise C{EAGAIN} when
    nothing does, and C{sendmsg} refuses more than C{IOV_MAX} pieces
    with C{EMSGSIZE}, as Linux does (L{RealSocketTests} checks that).

    @ivar sent: the bytes the socket took, in order.
    @ivar calls: C{("send", 1)} or C{("sendmsg", pieces)} for each call.
    """

    def __init__(self, room):
        self.room = room
        self.sent = bytearray()
        self.calls = []

    def setblocking(self, flag):
        pass

    def fileno(self):
        return 99

    def _take(self, data):
        if not self.room:
            raise BlockingIOError(errno.EAGAIN, "full")
        taken = bytes(data[: self.room])
        self.sent += taken
        self.room -= len(taken)
        return len(taken)

    def send(self, data):
        self.calls.append(("send", 1))
        return self._take(data)

    def sendmsg(self, pieces):
        pieces = list(pieces)
        self.calls.append(("sendmsg", len(pieces)))
        if len(pieces) > IOV_MAX:
            raise OSError(errno.EMSGSIZE, "Message too long")
        return self._take(b"".join(pieces))


def fake_connection(room):
    """
    A L{WriteThroughServer} on a L{FakeSocket} with C{room} bytes free and a
    L{MemoryReactorClock}, whose writers show whether data waits in its
    queue for the socket to drain.
    """
    memory = MemoryReactorClock()
    sock = FakeSocket(room)
    port = SimpleNamespace(_realPortNumber=9090)
    connection = WriteThroughServer(
        sock, Protocol(), ("127.0.0.1", 40000), port, 1, memory
    )
    return connection, sock, memory


PIECES = [b"ab", b"", b"cde", b"f", b"ghij"]


class AfterTests(SynchronousTestCase):
    def test_after(self):
        """
        L{_after} gives what remains of the pieces once their first C{sent}
        bytes are gone, for any C{sent}: a piece cut in two, a cut between
        pieces (an empty piece included), nothing sent, everything sent.
        """
        whole = b"".join(PIECES)
        for sent in range(len(whole) + 1):
            remaining = _after(PIECES, sent)
            self.assertEqual(b"".join(remaining), whole[sent:], sent)
        self.assertEqual(_after(PIECES, 0), PIECES)
        self.assertEqual(_after(PIECES, 1), [b"b", b"", b"cde", b"f", b"ghij"])
        self.assertEqual(_after(PIECES, 2), [b"cde", b"f", b"ghij"])
        self.assertEqual(_after(PIECES, 3), [b"de", b"f", b"ghij"])
        self.assertEqual(_after(PIECES, 6), [b"ghij"])
        self.assertEqual(_after(PIECES, len(whole)), [])


class FakeSocketTests(SynchronousTestCase):
    """
    L{WriteThroughServer} on a socket whose free space the test sets: what
    the socket takes goes at once, the rest waits in Twisted's queue, and
    the client gets every byte once, in order.
    """

    def assertQueued(self, connection, memory, queued, what):
        """
        C{connection} has bytes waiting for the socket to drain (it waits to
        be writable) if C{queued}, else none.
        """
        self.assertEqual(connection in memory.getWriters(), queued, what)

    def drain(self, connection, sock, memory):
        """
        The socket drains: the reactor calls C{doWrite} while data waits.
        """
        sock.room = 1 << 20
        for _ in range(10):
            if connection not in memory.getWriters():
                return
            connection.doWrite()
        self.fail("the queue did not empty")

    def test_partial_sendmsg(self):
        """
        However many bytes of a C{writeSequence} the socket takes, those go
        at once in one C{sendmsg}, the rest is queued, a later write waits
        behind it, and the client gets all of it in order.
        """
        whole = b"".join(PIECES)
        for room in range(len(whole) + 1):
            connection, sock, memory = fake_connection(room)
            connection.writeSequence(PIECES)
            self.assertEqual(bytes(sock.sent), whole[:room], room)
            self.assertEqual(sock.calls, [("sendmsg", len(PIECES))], room)
            self.assertQueued(connection, memory, room < len(whole), room)
            connection.write(b"<after>")
            connection.writeSequence([b"<and", b" more>"])
            if room < len(whole):  # behind the queue: not tried at once
                self.assertEqual(len(sock.calls), 1, room)
            self.drain(connection, sock, memory)
            self.assertEqual(bytes(sock.sent), whole + b"<after><and more>", room)

    def test_partial_send(self):
        """
        However many bytes of a C{write} the socket takes, those go at once,
        the rest is queued, and the client gets all of it in order.
        """
        data = b"0123456789"
        for room in range(len(data) + 1):
            connection, sock, memory = fake_connection(room)
            connection.write(data)
            self.assertEqual(bytes(sock.sent), data[:room], room)
            self.assertQueued(connection, memory, room < len(data), room)
            connection.write(b"!")
            self.drain(connection, sock, memory)
            self.assertEqual(bytes(sock.sent), data + b"!", room)

    def test_many_pieces(self):
        """
        A C{writeSequence} of more pieces than one C{sendmsg} takes (1,024
        on Linux) still goes at once, whole and in order, in one call, when
        the socket has room; up to 1,024 pieces are passed as they are.
        """
        for count in (IOV_MAX - 1, IOV_MAX, IOV_MAX + 1, 5000):
            pieces = [b"%05d," % i for i in range(count)]
            connection, sock, memory = fake_connection(1 << 20)
            connection.writeSequence(pieces)
            self.assertEqual(bytes(sock.sent), b"".join(pieces), count)
            self.assertEqual(len(sock.calls), 1, count)
            self.assertLessEqual(sock.calls[0][1], IOV_MAX, count)
            if count <= IOV_MAX:
                self.assertEqual(sock.calls, [("sendmsg", count)])
            self.assertQueued(connection, memory, False, count)

    def test_many_pieces_partly(self):
        """
        Of more than 1,024 pieces, what the socket takes goes at once and
        the rest is queued, in order.
        """
        pieces = [b"%05d," % i for i in range(IOV_MAX + 500)]
        whole = b"".join(pieces)
        for room in (0, 1, 6, 3000, len(whole) - 1):
            connection, sock, memory = fake_connection(room)
            connection.writeSequence(pieces)
            self.assertEqual(bytes(sock.sent), whole[:room], room)
            self.assertQueued(connection, memory, True, room)
            self.drain(connection, sock, memory)
            self.assertEqual(bytes(sock.sent), whole, room)


class RealSocketTests(SynchronousTestCase):
    """
    The same over a real (local) socket pair, whose sizes the test sets:
    what L{FakeSocket} assumes of Linux holds, and many pieces written to
    a socket with room are readable at the other end at once.
    """

    def setUp(self):
        if not sys.platform.startswith("linux"):
            raise SkipTest("IOV_MAX is Linux's")
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)
        for s in (self.ours, self.theirs):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.theirs.setblocking(False)

    def received(self):
        data = b""
        while True:
            try:
                chunk = self.theirs.recv(1 << 20)
            except BlockingIOError:
                return data
            data += chunk

    def test_linux_refuses_many_pieces(self):
        """
        Linux's C{sendmsg} takes 1,024 pieces and refuses more with
        C{EMSGSIZE}, as L{FakeSocket} does.
        """
        self.ours.setblocking(False)
        self.assertEqual(self.ours.sendmsg([b"x"] * IOV_MAX), IOV_MAX)
        with self.assertRaises(OSError) as raised:
            self.ours.sendmsg([b"x"] * (IOV_MAX + 1))
        self.assertEqual(raised.exception.errno, errno.EMSGSIZE)

    def test_many_pieces_at_once(self):
        """
        More than 1,024 pieces written to a socket with room are at the
        other end before the reactor runs again, whole and in order.
        """
        memory = MemoryReactorClock()
        port = SimpleNamespace(_realPortNumber=9090)
        connection = WriteThroughServer(
            self.ours, Protocol(), ("127.0.0.1", 40000), port, 1, memory
        )
        for count in (IOV_MAX + 1, 3000):
            pieces = [b"%05d," % i for i in range(count)]
            connection.writeSequence(pieces)
            self.assertEqual(self.received(), b"".join(pieces), count)
            self.assertNotIn(connection, memory.getWriters(), count)


class StartTLSServer(Protocol):
    """
    Answers the line C{STARTTLS} with C{OK} in clear text, starts TLS and
    at once writes a secret, by C{write} and by C{writeSequence}.
    """

    def connectionMade(self):
        self.factory.connected.callback(self)

    def dataReceived(self, data):
        if data == b"STARTTLS\n":
            self.transport.write(b"OK\n")
            self.transport.startTLS(self.factory.tls)
            self.transport.write(b"secret-1,")
            self.transport.writeSequence([b"secret-", b"2"])


class StartTLSClient(Protocol):
    """
    Records what arrives before it starts TLS (clear text) and after
    (decrypted), starting TLS once C{OK} is in.
    """

    def __init__(self, tls):
        self.tls = tls
        self.clear = b""
        self.decrypted = b""
        self.started = False
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(b"STARTTLS\n")

    def dataReceived(self, data):
        if self.started:
            self.decrypted += data
            if len(self.decrypted) >= len(b"secret-1,secret-2"):
                self.transport.loseConnection()
            return
        self.clear += data
        if len(self.clear) > 3:  # clear text after OK: the test fails
            self.transport.abortConnection()
        elif self.clear == b"OK\n":
            self.started = True
            self.transport.startTLS(self.tls)

    def connectionLost(self, reason):
        self.done.callback(None)


class StartTLSTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_writes_go_through_tls(self):
        """
        Once a write-through connection has called C{startTLS}, its writes
        go through TLS: the peer receives no clear text after C{OK}, and
        reads the secret once its own TLS is started (a real handshake on
        loopback, with a self-signed certificate).
        """
        from twisted.internet import ssl

        from tests.test_transport import write_certificate

        cert, key = write_certificate(self)
        with open(cert, "rb") as c, open(key, "rb") as k:
            server_cert = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
        factory = Factory.forProtocol(StartTLSServer)
        factory.connected = defer.Deferred()
        factory.tls = server_cert.options()
        port = listen_tcp(reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        trust = ssl.Certificate.loadPEM(server_cert.dumpPEM())
        client = StartTLSClient(ssl.optionsForClientTLS("localhost", trustRoot=trust))
        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client
        )
        server = yield factory.connected
        self.assertIsInstance(server.transport, WriteThroughServer)
        yield client.done
        self.assertEqual(client.clear, b"OK\n")
        self.assertEqual(client.decrypted, b"secret-1,secret-2")
