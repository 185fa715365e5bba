"""
Tests for L{echotwist.protocol}: one connection in echo mode over a
L{StringTransport}: what it answers, what it refuses, and how it closes.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from echotwist import __version__, i18n
from echotwist.flow import READ_AHEAD
from echotwist.protocol import CLOSING, LOST, OPEN
from echotwist.session import ISessionPeer
from echotwist.wire import HEADER
from tests.helpers import Conversation, frame, make_factory


class EchoModeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(self, "echo", clock=self.clock)
        self.c = Conversation(self.factory)

    def test_welcome_first(self):
        """
        The first frame of every connection is C{welcome}, at once.
        """
        self.assertEqual(
            self.c.replies(),
            [
                {
                    "type": "welcome",
                    "server": "echolab",
                    "version": __version__,
                    "mode": "echo",
                    "max_message": 65536,
                }
            ],
        )

    def test_say_echo(self):
        """
        Each C{say} gets one C{echo} with its text, in order.
        """
        self.c.replies()
        self.c.send(
            {"type": "say", "text": "one"}, {"type": "say", "text": "привет 🌍"}
        )
        self.assertEqual(
            self.c.replies(),
            [{"type": "echo", "text": "one"}, {"type": "echo", "text": "привет 🌍"}],
        )

    def test_repeat(self):
        """
        One C{say} with C{repeat} 4 gets four numbered echoes (lab task 8).
        """
        self.c.replies()
        self.c.send({"type": "say", "text": "four", "repeat": 4})
        self.assertEqual(
            self.c.replies(),
            [{"type": "echo", "text": "four", "n": n, "of": 4} for n in range(1, 5)],
        )

    def test_repeat_one(self):
        """
        C{repeat} 1 is the same as no C{repeat}: no C{n}, no C{of}.
        """
        self.c.replies()
        self.c.send({"type": "say", "text": "x", "repeat": 1})
        self.assertEqual(self.c.replies(), [{"type": "echo", "text": "x"}])

    def test_repeat_bounds(self):
        """
        C{repeat} outside 1..100 is C{bad_value}; 100 is fine.
        """
        self.c.replies()
        for repeat in (0, -5, 101, 10**30):
            self.c.send({"type": "say", "text": "x", "repeat": repeat})
            [reply] = self.c.replies()
            self.assertEqual((reply["type"], reply["code"]), ("error", "bad_value"))
        self.c.send({"type": "say", "text": "x", "repeat": 100})
        self.assertEqual(len(self.c.replies()), 100)
        self.assertFalse(self.c.closing)

    def test_bad_messages_keep_connection(self):
        """
        Malformed messages get C{bad_message} and the connection stays open.
        """
        self.c.replies()
        for payload in [b"", b"\xff", b"[1]", b'{"type":"nope"}', b'{"type":"say"}']:
            self.c.send_bytes(frame(payload))
            [reply] = self.c.replies()
            self.assertEqual(reply["code"], "bad_message", payload)
        self.c.send({"type": "say", "text": "still here"})
        self.assertEqual(self.c.replies(), [{"type": "echo", "text": "still here"}])

    def test_out_of_turn(self):
        """
        In echo mode C{answer}, C{token} and C{logout} are C{bad_state}.
        """
        self.c.replies()
        for message in [
            {"type": "answer", "field": "name", "value": "x"},
            {"type": "token", "token": "abc"},
            {"type": "logout"},
        ]:
            self.c.send(message)
            [reply] = self.c.replies()
            self.assertEqual(reply["code"], "bad_state")

    def test_message_before_state(self):
        """
        A malformed message is C{bad_message} even where its type would be
        out of turn (well-formedness is judged first).
        """
        self.c.replies()
        self.c.send({"type": "token", "token": 5})
        self.assertEqual(self.c.replies()[0]["code"], "bad_message")

    def test_quit(self):
        """
        C{quit} gets C{bye}, then the server closes.
        """
        self.c.replies()
        self.c.send({"type": "quit"}, {"type": "say", "text": "ignored"})
        self.assertEqual(self.c.types(), ["bye"])
        self.assertTrue(self.c.closing)

    def test_too_large(self):
        """
        A length over the limit gets C{too_large} and a close, no C{bye};
        what follows is not read.
        """
        for length in (65537, 2**31, 2**32 - 1):
            c = Conversation(self.factory)
            c.replies()
            c.send_bytes(HEADER.pack(length) + b"x" * 100)
            c.send_bytes(frame({"type": "say", "text": "late"}))
            [reply] = c.replies()
            self.assertEqual(reply["code"], "too_large")
            self.assertTrue(c.closing)

    def test_limit_from_settings(self):
        """
        The limit is C{max_message}; a payload of exactly that size is
        accepted.
        """
        factory = make_factory(self, "echo", max_message=100)
        c = Conversation(factory)
        self.assertEqual(c.replies()[0]["max_message"], 100)
        payload = b'{"type":"say","text":"' + b"x" * 76 + b'"}'
        self.assertEqual(len(payload), 100)
        c.send_bytes(frame(payload))
        self.assertEqual(c.types(), ["echo"])
        c.send_bytes(frame(payload + b" "))
        self.assertEqual(c.replies()[0]["code"], "too_large")

    def test_split_anywhere(self):
        """
        Messages split at every byte offset give the same replies.
        """
        stream = frame({"type": "say", "text": "ab"}) + frame(
            {"type": "say", "text": "cd"}
        )
        for cut in range(len(stream) + 1):
            c = Conversation(self.factory)
            c.replies()
            c.send_bytes(stream[:cut])
            c.send_bytes(stream[cut:])
            self.assertEqual(
                [r["text"] for r in c.replies()], ["ab", "cd"], f"cut at {cut}"
            )

    def test_too_many_bad_messages(self):
        """
        After C{max_bad_messages} refusals the connection is closed.
        """
        factory = make_factory(self, "echo", max_bad_messages=3)
        c = Conversation(factory)
        c.replies()
        c.send_bytes(frame(b"x") * 2)
        self.assertFalse(c.closing)
        c.send_bytes(frame(b"x"))
        self.assertEqual(c.types(), ["error", "error", "error", "error", "bye"])
        self.assertTrue(c.closing)


class PeerTests(SynchronousTestCase):
    def test_session_peer(self):
        """
        The connection is its session's peer, and provides all a session
        may ask of it (L{ISessionPeer}).
        """
        c = Conversation(make_factory(self, "echo"))
        self.assertIs(c.protocol.session.peer, c.protocol)
        self.assertTrue(verifyObject(ISessionPeer, c.protocol))


class ClosingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(self, "echo", clock=self.clock, linger=5)
        self.c = Conversation(self.factory)
        self.c.replies()

    def test_half_close_then_abort(self):
        """
        Closing flushes our side and waits for the client; a client that
        does not close is aborted after the linger time.
        """
        self.c.send({"type": "quit"})
        self.assertEqual(self.c.transport.disconnecting, False)
        self.clock.advance(4.9)
        self.assertFalse(self.c.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.c.transport.disconnecting)

    def test_closing_unregisters_producer(self):
        """
        Closing stops producing, so the transport half-closes once flushed
        even if it had paused the connection (it would otherwise wait for
        its producer).
        """
        self.c.protocol.transport.producer.pauseProducing()
        self.c.protocol.finish({"type": "bye", "text": "closing"})
        self.assertIsNone(self.c.transport.producer)
        self.assertTrue(self.c.transport.write_closed)

    def test_input_discarded_while_closing(self):
        """
        What a closing connection receives is read and discarded.
        """
        self.c.send({"type": "quit"})
        self.c.replies()
        self.c.send({"type": "say", "text": "more"})
        self.assertEqual(self.c.replies(), [])

    def test_stages(self):
        """
        A connection is open, then closing once it finishes (later calls to
        C{finish} send nothing), then lost.
        """
        protocol = self.c.protocol
        self.assertIs(protocol.stage, OPEN)
        self.assertFalse(self.c.closing)
        protocol.finish({"type": "bye", "text": "one"})
        self.assertIs(protocol.stage, CLOSING)
        self.assertTrue(self.c.closing)
        self.assertEqual(self.c.types(), ["bye"])
        protocol.finish({"type": "bye", "text": "two"})
        self.assertEqual(self.c.types(), [])
        self.c.lose()
        self.assertIs(protocol.stage, LOST)
        protocol.finish({"type": "bye", "text": "three"})
        self.assertEqual(self.c.types(), [])

    def test_lost_while_open(self):
        """
        A client that goes first leaves the connection lost, with nothing
        scheduled and no more holds on it.
        """
        self.c.send({"type": "say", "text": "x", "repeat": 3})
        self.c.lose()
        self.assertIs(self.c.protocol.stage, LOST)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lost_cancels_abort(self):
        """
        When the client closes first, no abort stays scheduled.
        """
        self.c.send({"type": "quit"})
        self.c.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class HoldTests(SynchronousTestCase):
    """
    Messages wait while one is being worked on, and reading stops while
    the client does not read.
    """

    def setUp(self):
        self.factory = make_factory(self, "echo")
        self.c = Conversation(self.factory)
        self.c.replies()

    def test_waits_for_slow_work(self):
        """
        While a handler's L{Deferred} is pending, later messages wait, and
        are answered in order once it fires.
        """
        slow = self.slow_say()
        self.c.send({"type": "say", "text": "slow"}, {"type": "say", "text": "next"})
        self.assertEqual(self.c.replies(), [])
        slow.callback(None)
        self.assertEqual(
            self.c.replies(), [{"type": "done"}, {"type": "echo", "text": "next"}]
        )

    def test_resumed_delivery_not_client_activity(self):
        """
        Delivering held messages is not the client being active: the idle
        clock keeps the time the client last sent something.
        """
        slow = self.slow_say()
        self.c.send({"type": "say", "text": "slow"}, {"type": "say", "text": "next"})
        heard = self.c.protocol.last_heard
        self.factory.clock.advance(100)
        slow.callback(None)
        self.assertEqual(len(self.c.replies()), 2)
        self.assertEqual(self.c.protocol.last_heard, heard)

    def test_read_ahead_bounded(self):
        """
        While messages wait, reading goes on until C{READ_AHEAD} bytes are
        buffered, then stops until they may go on.
        """
        slow = self.slow_say()
        self.c.send({"type": "say", "text": "slow"})
        chunk = frame({"type": "say", "text": "x" * 1000})
        while len(self.c.protocol._buffer) < READ_AHEAD:
            self.assertEqual(self.c.transport.producerState, "producing")
            self.c.send_bytes(chunk)
        self.assertEqual(self.c.transport.producerState, "paused")
        slow.callback(None)
        self.assertEqual(self.c.transport.producerState, "producing")
        self.assertEqual(len(self.c.replies()), 1 + READ_AHEAD // len(chunk) + 1)

    def slow_say(self):
        """
        Make a C{say} of "slow" take until the returned L{Deferred} fires.
        """
        slow = defer.Deferred()
        session = self.c.protocol.session
        original = session.handle

        def handle(message):
            if message.text == "slow":
                return slow.addCallback(lambda _: session.peer.send({"type": "done"}))
            return original(message)

        session.handle = handle
        return slow

    def test_client_not_reading(self):
        """
        When the transport says its buffer is full, echoes stop being written
        and messages wait; both go on when it drains.
        """
        protocol = self.c.protocol
        written = []

        def write(data):
            written.append(data)
            if len(written) == 3:
                protocol.transport.producer.pauseProducing()

        protocol.transport.write = write
        protocol.transport.writeSequence = lambda pieces: write(b"".join(pieces))
        self.c.send(
            {"type": "say", "text": "x", "repeat": 10}, {"type": "say", "text": "after"}
        )
        self.assertEqual(len(written), 3)
        protocol.transport.producer.resumeProducing()
        self.assertEqual(len(written), 11)

    def test_server_error(self):
        """
        An internal failure answers C{server_error}; the connection stays
        open and the next message is served.
        """
        session = self.c.protocol.session
        original = session.handle
        session.handle = lambda message: 1 / 0
        self.c.send({"type": "say", "text": "boom"})
        self.assertEqual(self.c.replies()[0]["code"], "server_error")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        session.handle = original
        self.c.send({"type": "say", "text": "fine"})
        self.assertEqual(self.c.replies(), [{"type": "echo", "text": "fine"}])


class TimeoutTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(
            self,
            "echo",
            clock=self.clock,
            idle_timeout=300,
            frame_timeout=60,
        )
        self.factory.startFactory()
        self.addCleanup(self.factory.stopFactory)
        self.c = Conversation(self.factory)
        self.c.replies()

    def test_idle(self):
        """
        A connection silent for C{idle_timeout} gets C{timeout} and C{bye}.
        """
        self.clock.advance(299)
        self.c.send({"type": "say", "text": "still here"})
        self.c.replies()
        self.clock.pump([1] * 299)
        self.assertFalse(self.c.closing)
        self.clock.pump([1, 1])
        self.assertEqual(
            [(r["type"], r.get("code")) for r in self.c.replies()],
            [("error", "timeout"), ("bye", None)],
        )
        self.assertTrue(self.c.closing)

    def test_incomplete_frame(self):
        """
        Half a message held for C{frame_timeout} gets C{timeout}.
        """
        self.c.send_bytes(frame({"type": "say", "text": "abc"})[:7])
        self.clock.pump([1] * 59)
        self.assertFalse(self.c.closing)
        self.clock.pump([1, 1])
        self.assertEqual(self.c.replies()[0]["code"], "timeout")


class LoginTimeoutTests(SynchronousTestCase):
    """
    The login timeout runs from accept, whatever else holds the connection.
    """

    def conversation(self, mode, tls=False):
        self.clock = Clock()
        factory = make_factory(self, mode, clock=self.clock, login_timeout=10)
        factory.startFactory()
        self.addCleanup(factory.stopFactory)
        c = Conversation(factory, tls=tls)
        c.replies()
        return c

    def test_silent_before_tls_handshake(self):
        """
        The attack: a client connects to a TLS port and never starts the
        handshake. Even in echo mode, where nothing else is asked, it is
        closed after the login timeout.
        """
        c = self.conversation("echo", tls=True)
        self.clock.pump([1] * 9)
        self.assertFalse(c.closing)
        self.clock.pump([1, 1])
        self.assertTrue(c.closing)
        self.assertEqual(c.replies()[0]["code"], "timeout")

    def test_handshake_done(self):
        """
        Once the handshake completes, an echo-mode connection has no login
        to wait for.
        """
        c = self.conversation("echo", tls=True)
        c.protocol.handshakeCompleted()
        self.clock.pump([1] * 20)
        self.assertFalse(c.closing)

    def test_stalled_output_hides_nothing(self):
        """
        A client that neither reads (so the server's output is held back,
        as TLS holds it before the handshake) nor logs in is closed after
        the login timeout, not the longer stall timeout.
        """
        c = self.conversation("auth")
        c.protocol.transport.producer.pauseProducing()
        self.clock.pump([1] * 11)
        self.assertTrue(c.closing)


class LimitTests(SynchronousTestCase):
    def test_busy_total(self):
        """
        A connection over C{max_connections} gets C{busy} and C{bye}
        instead of C{welcome}; a freed slot is reused.
        """
        factory = make_factory(self, "echo", max_connections=2)
        first = Conversation(factory)
        Conversation(factory)
        third = Conversation(factory)
        self.assertEqual(
            [(r["type"], r.get("code")) for r in third.replies()],
            [("error", "busy"), ("bye", None)],
        )
        first.lose()
        third.lose()
        self.assertEqual(Conversation(factory).types(), ["welcome"])

    def test_busy_in_the_servers_language(self):
        """
        The busy and timeout replies follow the server's language (--lang),
        while the log keeps its English reason.
        """
        self.addCleanup(i18n.install, "en")
        i18n.install("ru")
        factory = make_factory(self, "echo", max_connections=1)
        Conversation(factory)
        self.assertEqual(
            Conversation(factory).replies(),
            [
                {"type": "error", "code": "busy", "text": "слишком много соединений"},
                {"type": "bye", "text": "Сервер занят; попробуйте позже."},
            ],
        )

    def test_busy_per_address(self):
        """
        More than C{max_per_address} from one address are refused; other
        addresses and loopback are not.
        """
        factory = make_factory(self, "echo", max_per_address=2)
        for _ in range(2):
            Conversation(factory, host="192.0.2.1")
        self.assertEqual(
            Conversation(factory, host="192.0.2.1").replies()[0]["code"], "busy"
        )
        self.assertEqual(Conversation(factory, host="192.0.2.2").types(), ["welcome"])
        for _ in range(3):
            self.assertEqual(
                Conversation(factory, host="127.0.0.1").types(), ["welcome"]
            )


class TrickleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(self, "echo", clock=self.clock)
        self.c = Conversation(self.factory)
        self.c.replies()
        self.stream = frame({"type": "say", "text": "t" * 20_000})

    def test_tiny_reads_paced(self):
        """
        A frame arriving a few bytes per read is read less often after its
        first few reads, and still arrives whole.
        """
        for i in range(9):
            self.c.send_bytes(self.stream[i : i + 1])
        self.assertEqual(self.c.transport.producerState, "paused")
        self.clock.advance(0.01)
        self.assertEqual(self.c.transport.producerState, "producing")
        self.c.send_bytes(self.stream[9:])
        self.assertEqual(self.c.replies()[0]["text"], "t" * 20_000)

    def test_full_segments_not_paced(self):
        """
        A frame arriving in network-sized segments is never slowed.
        """
        for i in range(0, len(self.stream), 1448):
            self.c.send_bytes(self.stream[i : i + 1448])
            self.assertEqual(self.c.transport.producerState, "producing")
        self.assertEqual(self.c.types(), ["echo"])

    def test_split_header(self):
        """
        Frames sent as header and payload in two writes are not slowed.
        """
        for _ in range(20):
            message = frame({"type": "say", "text": "x"})
            self.c.send_bytes(message[:4])
            self.c.send_bytes(message[4:])
            self.assertEqual(self.c.transport.producerState, "producing")
        self.assertEqual(len(self.c.replies()), 20)
