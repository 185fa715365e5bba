"""
Tests for L{echotwist.framing}: frames come out the same however the
network splits or joins them, and an oversized length stops reading at once.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from echotwist.framing import FrameReceiver
from echotwist.wire import frame, header


class Recorder(FrameReceiver):
    MAX_LENGTH = 100

    def __init__(self):
        self.frames = []
        self.exceeded = []

    def stringReceived(self, payload):
        self.frames.append(payload)

    def lengthLimitExceeded(self, length):
        self.exceeded.append(length)


def framed(*payloads):
    return b"".join(frame(p) for p in payloads)


def receiver():
    r = Recorder()
    r.makeConnection(StringTransport())
    return r


PAYLOADS = [b"hello", b"", b"x" * 100, "привет".encode(), b"\x00\xff"]


class SplitTests(SynchronousTestCase):
    def test_every_split_point(self):
        """
        A stream cut in two at any byte offset gives the same frames.
        """
        stream = framed(*PAYLOADS)
        for cut in range(len(stream) + 1):
            r = receiver()
            r.dataReceived(stream[:cut])
            r.dataReceived(stream[cut:])
            self.assertEqual(r.frames, PAYLOADS, f"cut at {cut}")

    def test_one_byte_at_a_time(self):
        """
        Bytes arriving one by one give the same frames.
        """
        stream = framed(*PAYLOADS)
        r = receiver()
        for i in range(len(stream)):
            r.dataReceived(stream[i : i + 1])
        self.assertEqual(r.frames, PAYLOADS)

    def test_coalesced(self):
        """
        A thousand frames in one read are all delivered, in order.
        """
        payloads = [b"%d" % i for i in range(1000)]
        r = receiver()
        r.dataReceived(framed(*payloads))
        self.assertEqual(r.frames, payloads)

    def test_payloads_are_bytes(self):
        """
        Payloads are L{bytes}, also when they were buffered across reads.
        """
        r = receiver()
        stream = framed(b"abc", b"def")
        r.dataReceived(stream[:5])
        r.dataReceived(stream[5:])
        self.assertEqual([type(f) for f in r.frames], [bytes, bytes])

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(
        st.lists(st.binary(max_size=120), max_size=12),
        st.lists(st.integers(min_value=1, max_value=40), min_size=1),
    )
    def test_any_split(self, payloads, cuts):
        """
        Any stream of valid frames, cut into any pieces, gives its frames
        (frames over the limit excepted, which stop the stream).
        """
        payloads = [p for p in payloads if len(p) <= Recorder.MAX_LENGTH]
        stream = framed(*payloads)
        r = receiver()
        offset = 0
        i = 0
        while offset < len(stream):
            size = cuts[i % len(cuts)]
            r.dataReceived(stream[offset : offset + size])
            offset += size
            i += 1
        self.assertEqual(r.frames, payloads)
        self.assertEqual(r.exceeded, [])


class LimitTests(SynchronousTestCase):
    def test_limit_is_inclusive(self):
        """
        A payload of exactly C{MAX_LENGTH} bytes is accepted.
        """
        r = receiver()
        r.dataReceived(framed(b"y" * 100))
        self.assertEqual(r.frames, [b"y" * 100])

    def test_over_limit_once(self):
        """
        A length of MAX_LENGTH + 1 is reported once, from the header alone,
        and everything after it is discarded unread.
        """
        r = receiver()
        r.dataReceived(framed(b"ok") + header(101))
        r.dataReceived(b"z" * 50)
        r.dataReceived(framed(b"later"))
        self.assertEqual(r.frames, [b"ok"])
        self.assertEqual(r.exceeded, [101])
        self.assertTrue(r.discarding)
        self.assertEqual(r._buffer, b"")

    def test_huge_lengths(self):
        """
        Lengths of 2**31 and 2**32 - 1 are simply over the limit.
        """
        for length in (2**31, 2**32 - 1):
            r = receiver()
            r.dataReceived(header(length))
            self.assertEqual(r.exceeded, [length])

    def test_header_split(self):
        """
        An oversized length is noticed when its fourth byte arrives.
        """
        r = receiver()
        prefix = header(5000)
        for i in range(3):
            r.dataReceived(prefix[i : i + 1])
            self.assertEqual(r.exceeded, [])
        r.dataReceived(prefix[3:])
        self.assertEqual(r.exceeded, [5000])


class PauseTests(SynchronousTestCase):
    def test_pause_inside_delivery(self):
        """
        Pausing inside C{stringReceived} stops delivery; resuming delivers
        the rest exactly once (Twisted #5075 re-delivered frames here).
        """
        seen = []

        class Pausing(Recorder):
            def stringReceived(self, payload):
                seen.append(payload)
                self.pauseProducing()

        r = Pausing()
        r.makeConnection(StringTransport())
        r.dataReceived(framed(b"a", b"b", b"c"))
        self.assertEqual(seen, [b"a"])
        r.resumeProducing()
        self.assertEqual(seen, [b"a", b"b"])
        r.resumeProducing()
        r.resumeProducing()
        self.assertEqual(seen, [b"a", b"b", b"c"])

    def test_resume_inside_delivery(self):
        """
        Resuming from inside C{stringReceived} (a result that came at once)
        delivers every frame exactly once, in order.
        """
        seen = []

        class Bouncing(Recorder):
            def stringReceived(self, payload):
                seen.append(payload)
                self.pauseProducing()
                self.resumeProducing()

        r = Bouncing()
        r.makeConnection(StringTransport())
        r.dataReceived(framed(b"a", b"b", b"c") + b"\x00")
        r.dataReceived(b"\x00\x00\x01d")
        self.assertEqual(seen, [b"a", b"b", b"c", b"d"])
