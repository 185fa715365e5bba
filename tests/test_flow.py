"""
Tests for L{echotwist.flow}: the holds on a connection's messages, and
when its socket is read, over a L{StringTransport} and a L{Clock}.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from echotwist.flow import (
    BUSY,
    ECHOING,
    FREE_SMALL_READS,
    OUTPUT,
    READ_AHEAD,
    SMALL_READ,
    TRICKLE,
    TRICKLE_PAUSE,
    Flow,
)
from echotwist.framing import FrameReceiver
from echotwist.wire import frame


class Receiver(FrameReceiver):
    """
    A L{FrameReceiver} that keeps the frames it is given.
    """

    def __init__(self):
        self.frames = []

    def stringReceived(self, payload):
        self.frames.append(payload)


class FlowTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.transport = StringTransport()
        self.receiver = Receiver()
        self.receiver.makeConnection(self.transport)
        self.flow = Flow(self.receiver, self.transport, self.clock)


class HoldTests(FlowTestCase):
    def test_hold_pauses_delivery(self):
        """
        A hold stops the delivery of frames; releasing it delivers those
        that arrived meanwhile, in order.
        """
        self.flow.hold(BUSY)
        self.assertTrue(self.receiver.paused)
        self.receiver.dataReceived(frame(b"one") + frame(b"two"))
        self.assertEqual(self.receiver.frames, [])
        self.flow.release(BUSY)
        self.assertFalse(self.receiver.paused)
        self.assertEqual(self.receiver.frames, [b"one", b"two"])

    def test_last_release_resumes(self):
        """
        Messages go on only once every reason holding them is released.
        """
        self.flow.hold(BUSY)
        self.flow.hold(OUTPUT)
        self.receiver.dataReceived(frame(b"x"))
        self.flow.release(BUSY)
        self.assertEqual((self.receiver.frames, self.flow.holds), ([], OUTPUT))
        self.flow.release(OUTPUT)
        self.assertEqual((self.receiver.frames, self.flow.holds), ([b"x"], 0))

    def test_release_inside_delivery(self):
        """
        A hold released while frames are being delivered lets that delivery
        go on, without a nested one.
        """
        flow = self.flow
        delivered = []

        def stringReceived(payload):
            delivered.append(payload)
            if payload == b"hold":
                flow.hold(ECHOING)
                flow.release(ECHOING)

        self.receiver.stringReceived = stringReceived
        self.receiver.dataReceived(frame(b"hold") + frame(b"next"))
        self.assertEqual(delivered, [b"hold", b"next"])
        self.assertFalse(self.receiver.paused)


class ReadingTests(FlowTestCase):
    def test_read_ahead(self):
        """
        Reading goes on behind a hold until C{READ_AHEAD} bytes wait, then
        stops until the hold is released.
        """
        self.flow.hold(BUSY)
        self.receiver.dataReceived(b"\x00\x01\x00\x00" + b"x" * (READ_AHEAD - 5))
        self.flow.settle_reading()
        self.assertEqual(self.transport.producerState, "producing")
        self.receiver.dataReceived(b"x")
        self.flow.settle_reading()
        self.assertEqual(self.transport.producerState, "paused")
        self.assertTrue(self.flow.reading_paused)
        self.flow.release(BUSY)
        self.flow.settle_reading()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertFalse(self.flow.reading_paused)

    def test_hold_settles(self):
        """
        A hold outside a delivery stops reading at once when enough input
        waits already.
        """
        self.receiver.paused = True
        self.receiver.dataReceived(b"\x00\x01\x00\x00" + b"x" * READ_AHEAD)
        self.receiver.paused = False
        self.flow.hold(BUSY)
        self.assertEqual(self.transport.producerState, "paused")


class PacingTests(FlowTestCase):
    def test_small_reads_paced(self):
        """
        After C{FREE_SMALL_READS} small reads of one frame, reading stops
        for C{TRICKLE_PAUSE} after each; then it goes on.
        """
        for _ in range(FREE_SMALL_READS):
            self.assertFalse(self.flow.paced(1, first=False))
        self.assertTrue(self.flow.paced(1, first=False))
        self.assertEqual(self.flow.holds, TRICKLE)
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(TRICKLE_PAUSE)
        self.assertEqual(self.flow.holds, 0)
        self.assertEqual(self.transport.producerState, "producing")

    def test_large_reads_free(self):
        """
        Reads of C{SMALL_READ} bytes or more, and resumed deliveries (no
        bytes), are never paced.
        """
        for _ in range(FREE_SMALL_READS * 3):
            self.assertFalse(self.flow.paced(SMALL_READ, first=False))
            self.assertFalse(self.flow.paced(0, first=False))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_new_frame_counts_again(self):
        """
        A newly unfinished frame has its own free small reads.
        """
        for _ in range(FREE_SMALL_READS):
            self.flow.paced(1, first=False)
        self.assertFalse(self.flow.paced(1, first=True))


class StopTests(FlowTestCase):
    def test_close_reads_on(self):
        """
        Closing resumes reading where it was stopped (what arrives is then
        discarded), cancels a pending pause, and holds no longer deliver.
        """
        for _ in range(FREE_SMALL_READS + 1):
            self.flow.paced(1, first=False)
        self.assertEqual(self.transport.producerState, "paused")
        self.flow.close()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.receiver.dataReceived(frame(b"late"))
        self.flow.release(TRICKLE)
        self.assertEqual(self.receiver.frames, [])

    def test_stop_forgets_the_connection(self):
        """
        Stopped, the flow holds no reference to its connection (so that
        the connection is freed as soon as it is lost), and holding or
        releasing does nothing more.
        """
        self.flow.hold(BUSY)
        self.flow.stop()
        self.assertIsNone(self.flow._receiver)
        self.flow.hold(OUTPUT)
        self.flow.release(BUSY)
        self.flow.release(OUTPUT)
        self.flow.settle_reading()
        self.assertTrue(self.receiver.paused)
        self.assertEqual(self.transport.producerState, "producing")
