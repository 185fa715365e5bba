"""
Tests for L{echotwist.client.protocol}: the server's frames become
messages for a handler, however they are split, and what arrives before
the handler is attached is kept.
"""

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from echotwist.client.protocol import ClientProtocol
from echotwist.wire import header

from .helpers import frame, unframe

WELCOME = {
    "type": "welcome",
    "server": "echolab",
    "version": "1",
    "mode": "echo",
    "max_message": 100,
}


class Recorder:
    """
    A handler that records what it is handed.
    """

    def __init__(self):
        self.events = []

    def message_received(self, message):
        self.events.append(("message", message))

    def garbled(self, reason):
        self.events.append(("garbled", reason))

    def too_large(self, length):
        self.events.append(("too_large", length))

    def connection_lost(self, reason):
        self.events.append(("lost", reason.type))


class ClientProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.protocol = ClientProtocol()
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.handler = Recorder()

    def test_split_and_coalesced(self):
        """
        Frames fed a byte at a time, or many in one read, give the same
        messages in order.
        """
        self.protocol.attach(self.handler)
        data = frame(WELCOME) + frame({"type": "echo", "text": "héllo"})
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        self.protocol.dataReceived(data)
        texts = [event[1]["type"] for event in self.handler.events]
        self.assertEqual(texts, ["welcome", "echo", "welcome", "echo"])
        self.assertEqual(self.handler.events[1][1]["text"], "héllo")

    def test_early_messages_kept(self):
        """
        Messages that arrive before a handler is attached are handed to it,
        in order, when it is.
        """
        heard = self.protocol.when_heard()
        self.assertNoResult(heard)
        self.protocol.dataReceived(
            frame(WELCOME)
            + frame(
                {"type": "ask", "field": "login", "text": "Login:", "secret": False}
            )
        )
        self.assertIs(self.successResultOf(heard), self.protocol)
        self.protocol.attach(self.handler)
        self.assertEqual(
            [e[1]["type"] for e in self.handler.events], ["welcome", "ask"]
        )

    def test_lost_before_heard(self):
        """
        A connection lost before any message fails L{when_heard} with the
        reason.
        """
        heard = self.protocol.when_heard()
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(heard, ConnectionDone)

    def test_garbled(self):
        """
        A frame that is not a JSON object with a type is reported, and the
        frames after it still arrive.
        """
        self.protocol.attach(self.handler)
        self.protocol.dataReceived(frame(b"[1]") + frame({"type": "bye", "text": "x"}))
        self.assertEqual(self.handler.events[0][0], "garbled")
        self.assertEqual(self.handler.events[1][1]["type"], "bye")

    def test_limit_from_welcome(self):
        """
        The client takes frames up to 8 times the server's max_message (at
        least the default), and reports a longer one once, closing.
        """
        self.protocol.attach(self.handler)
        self.protocol.dataReceived(frame(dict(WELCOME, max_message=100_000)))
        self.assertEqual(self.protocol.max_message, 100_000)
        self.assertEqual(self.protocol.MAX_LENGTH, 800_000)
        self.protocol.dataReceived(header(800_001) + b"x" * 10)
        self.protocol.dataReceived(header(800_001))
        self.assertEqual(self.handler.events[1:], [("too_large", 800_001)])
        self.assertTrue(self.transport.disconnecting)

    def test_send(self):
        """
        Messages go out as one frame each.
        """
        self.protocol.send({"type": "say", "text": "hi", "repeat": 2})
        self.assertEqual(
            unframe(self.transport.value()),
            [{"type": "say", "text": "hi", "repeat": 2}],
        )
        self.assertEqual(self.protocol.payload_size({"type": "quit"}), 15)
