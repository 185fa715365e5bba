"""
Tests for L{echotwist.output}: what a connection writes, in how many
writes, and no faster than its client reads, over a L{StringTransport}.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from echotwist.deadlines import Deadlines
from echotwist.flow import BUSY, ECHOING, OUTPUT, Flow
from echotwist.output import Output, close_writing
from echotwist.settings import Settings
from echotwist.wire import frame, header
from tests.helpers import HalfCloseableTransport, unframe
from tests.test_flow import Receiver


class RecordingTransport(HalfCloseableTransport):
    """
    A transport that keeps each write, and can fill up (call its
    producer's C{pauseProducing}) after a number of them.
    """

    full_after = None

    def __init__(self):
        HalfCloseableTransport.__init__(self)
        self.writes = []

    def write(self, data):
        self.writes.append([data])
        HalfCloseableTransport.write(self, data)
        self._maybe_full()

    def writeSequence(self, pieces):
        pieces = list(pieces)
        self.writes.append(pieces)
        HalfCloseableTransport.write(self, b"".join(pieces))
        self._maybe_full()

    def _maybe_full(self):
        if self.full_after is not None and len(self.writes) >= self.full_after:
            self.full_after = None
            self.full()

    def full(self):
        """
        The buffer is full: what a transport tells its producer.
        """


class OutputTestCase(SynchronousTestCase):
    def setUp(self):
        self.transport = RecordingTransport()
        self.receiver = Receiver()
        self.receiver.makeConnection(self.transport)
        self.clock = Clock()
        self.flow = Flow(self.receiver, self.transport, self.clock)
        self.deadlines = Deadlines(Settings(), self.clock.seconds())
        self.output = Output(
            self.transport, self.flow, self.deadlines, self.clock, linger=5
        )
        self.transport.full = self.output.pauseProducing

    def replies(self):
        data = self.transport.value()
        self.transport.clear()
        return unframe(data)


class GatheringTests(OutputTestCase):
    def test_not_gathering(self):
        """
        Outside a read or a message's work, a message is written at once.
        """
        self.output.send({"type": "bye", "text": "x"})
        self.assertEqual(len(self.transport.writes), 1)
        self.assertEqual(self.replies(), [{"type": "bye", "text": "x"}])

    def test_gathered_one_write(self):
        """
        While gathering, messages wait; a flush writes them in one write,
        in order, and stops gathering.
        """
        self.output.gathered = []
        self.output.send({"type": "ask", "field": "login"})
        self.output.send_echoes("hi", 1)
        self.assertEqual(self.transport.writes, [])
        self.output.flush()
        self.assertEqual(len(self.transport.writes), 1)
        self.assertEqual(
            self.replies(),
            [{"type": "ask", "field": "login"}, {"type": "echo", "text": "hi"}],
        )
        self.assertIsNone(self.output.gathered)

    def test_gathered_during_work(self):
        """
        While a message's work is under way (C{BUSY}), what it sends is
        gathered until it is done.
        """
        self.flow.hold(BUSY)
        self.output.send_echoes("a", 1)
        self.output.send({"type": "greet", "name": "a", "known": True})
        self.assertEqual(self.transport.writes, [])
        self.output.flush()
        self.assertEqual(len(self.transport.writes), 1)
        self.assertEqual(len(self.replies()), 2)

    def test_large_payload_not_copied(self):
        """
        A large payload is written as its own piece, after its header.
        """
        payload = b'"' + b"x" * 5000 + b'"'
        self.output.gathered = []
        self.output.send_payload(payload)
        self.output.flush()
        [pieces] = self.transport.writes
        self.assertEqual(pieces, [header(len(payload)), payload])

    def test_send_now(self):
        """
        C{send_now} writes what is gathered and its messages, together.
        """
        self.output.gathered = []
        self.output.send({"type": "echo", "text": "first"})
        self.output.send_now([{"type": "bye", "text": "Goodbye."}])
        self.assertEqual(len(self.transport.writes), 1)
        self.assertEqual([r["type"] for r in self.replies()], ["echo", "bye"])
        self.assertIsNone(self.output.gathered)


class EchoTests(OutputTestCase):
    def test_numbered_echoes(self):
        """
        A C{repeat} of 3 gives three numbered echoes, after what was
        gathered before them, and releases its hold once written.
        """
        self.output.gathered = []
        self.output.send({"type": "echo", "text": "before"})
        self.output.send_echoes("x", 3)
        self.assertEqual(
            self.replies(),
            [{"type": "echo", "text": "before"}]
            + [{"type": "echo", "text": "x", "n": n, "of": 3} for n in (1, 2, 3)],
        )
        self.assertEqual(self.flow.holds, 0)

    def test_client_not_reading(self):
        """
        While the transport is full, echoes wait (and messages with them);
        resuming writes the rest, then lets messages go on.
        """
        self.transport.full_after = 2
        self.output.send_echoes("x", 5)
        self.assertEqual(len(self.transport.writes), 2)
        self.assertEqual(self.flow.holds, OUTPUT | ECHOING)
        self.assertTrue(self.receiver.paused)
        self.receiver.dataReceived(frame(b"waits"))
        self.assertEqual(self.receiver.frames, [])
        self.output.resumeProducing()
        self.assertEqual(len(self.transport.writes), 5)
        self.assertEqual(self.flow.holds, 0)
        self.assertEqual(self.receiver.frames, [b"waits"])
        self.assertEqual([r["n"] for r in self.replies()], [1, 2, 3, 4, 5])

    def test_full_again(self):
        """
        Echoes resumed stop again when the transport fills again.
        """
        self.transport.full_after = 1
        self.output.send_echoes("x", 5)
        self.transport.full_after = 3
        self.output.resumeProducing()
        self.assertEqual(len(self.transport.writes), 3)
        self.assertEqual(self.flow.holds, OUTPUT | ECHOING)

    def test_resume_without_echoes(self):
        """
        Resuming with no echoes waiting just lets messages go on.
        """
        self.flow.hold(OUTPUT)
        self.receiver.dataReceived(frame(b"waits"))
        self.output.resumeProducing()
        self.assertEqual(self.receiver.frames, [b"waits"])
        self.assertEqual(self.transport.writes, [])

    def test_stop(self):
        """
        Stopped, the echoes not yet written are dropped.
        """
        self.transport.full_after = 1
        self.output.send_echoes("x", 5)
        self.output.stopProducing()
        self.output.resumeProducing()
        self.assertEqual(len(self.transport.writes), 1)


class CloseTests(OutputTestCase):
    def setUp(self):
        OutputTestCase.setUp(self)
        self.transport.registerProducer(self.receiver, True)

    def test_close(self):
        """
        Closing stops producing (Twisted would wait for a paused producer
        before closing), reads on if reading was stopped, and half-closes.
        """
        self.flow.reading_paused = True
        self.transport.pauseProducing()
        self.output.close()
        self.assertIsNone(self.transport.producer)
        self.assertEqual(self.transport.producerState, "producing")
        self.assertTrue(self.transport.write_closed)
        self.assertFalse(self.transport.disconnecting)

    def test_abort_after_linger(self):
        """
        A connection that is not gone the linger time after closing is
        aborted.
        """
        self.output.close()
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)

    def test_lost_cancels_abort(self):
        """
        A connection gone before the linger time is not aborted.
        """
        self.output.close()
        self.output.lost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_writing_without_half_close(self):
        """
        A transport that cannot half-close itself (TLS) gets a plain close.
        """
        transport = StringTransport()
        close_writing(transport)
        self.assertTrue(transport.disconnecting)


class ProducerTests(OutputTestCase):
    def test_interface(self):
        """
        The output is the transport's push producer.
        """
        from twisted.internet.interfaces import IPushProducer
        from zope.interface.verify import verifyObject

        self.assertTrue(verifyObject(IPushProducer, self.output))

    def test_pause_starts_stall_timeout(self):
        """
        A paused output holds the messages and starts the stall clock;
        resuming stops it.
        """
        self.clock.advance(7)
        self.output.pauseProducing()
        self.assertEqual(self.deadlines.stalled_since, 7)
        self.assertEqual(self.flow.holds, OUTPUT)
        self.output.resumeProducing()
        self.assertIsNone(self.deadlines.stalled_since)
        self.assertEqual(self.flow.holds, 0)

    def test_pause_after_close(self):
        """
        Once closing, a pause holds nothing: the connection reads on, to
        discard what arrives.
        """
        self.transport = HalfCloseableTransport()
        output = Output(self.transport, self.flow, self.deadlines, self.clock, 5)
        self.transport.registerProducer(output, True)
        output.close()
        output.pauseProducing()
        self.assertIsNone(self.deadlines.stalled_since)
        self.assertEqual(self.flow.holds, 0)
