"""
Tests for L{echotwist.tcp}: writes that go straight to the socket keep
their order with whatever had to be queued, and still pause producers.
"""

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from echotwist.tcp import WriteThroughServer, listen_tcp


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
