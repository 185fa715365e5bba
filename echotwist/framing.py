# -*- test-case-name: tests.test_framing -*-
"""
Frames in and out for Twisted peers: L{FrameReceiver}, an
L{Int32StringReceiver} with a linear buffer and a limit that fires once.

Twisted's own receiver rebuilds its buffer (C{_unprocessed + data}) on every
read, so a large frame trickled in small reads costs quadratic copying
(Twisted #6358), and after C{lengthLimitExceeded} later reads fire it again
(#8105). This one appends to a C{bytearray}, delivers frames straight from
the read when nothing is buffered, and stops at the first oversized length.
"""

from twisted.protocols.basic import Int32StringReceiver

from echotwist.wire import DEFAULT_MAX_MESSAGE, HEADER, HEADER_SIZE

_unpack_from = HEADER.unpack_from


class FrameReceiver(Int32StringReceiver):
    """
    Receive length-prefixed frames, the same however they are split.

    Subclasses implement C{stringReceived(payload)} and may override
    C{lengthLimitExceeded(length)}, which is called at most once: after it
    the receiver discards whatever arrives. Setting C{paused} (as
    C{pauseProducing} does) stops delivery until C{resumeProducing}; calling
    those from inside C{stringReceived} is safe.

    @ivar MAX_LENGTH: the largest payload accepted.
    @ivar discarding: true once input is being thrown away unread.
    """

    structFormat = HEADER.format  # (Twisted's sendString writes it)
    prefixLength = HEADER_SIZE
    MAX_LENGTH = DEFAULT_MAX_MESSAGE
    discarding = False
    _buffer = b""
    _delivering = False

    def dataReceived(self, data):
        """
        Buffer C{data} and deliver every complete frame, in order.
        """
        if self.discarding:
            return
        if self._buffer:
            self._buffer += data
        elif data:
            # Nothing buffered: parse the read itself, buffering only its
            # unfinished tail (most reads hold whole frames).
            self._buffer = data
        if not self._delivering:
            self._delivering = True
            try:
                self._deliver()
            finally:
                self._delivering = False

    def _deliver(self):
        buffer = self._buffer
        size = len(buffer)
        offset = 0
        while not self.paused and size - offset >= HEADER_SIZE:
            (length,) = _unpack_from(buffer, offset)
            if length > self.MAX_LENGTH:
                self.discard()
                self.lengthLimitExceeded(length)
                return
            end = offset + HEADER_SIZE + length
            if end > size:
                break
            payload = buffer[offset + HEADER_SIZE : end]
            offset = end
            self.stringReceived(payload if type(payload) is bytes else bytes(payload))
            if self.discarding:
                return
            buffer = self._buffer  # a nested dataReceived may have grown it
            size = len(buffer)
        if offset == size:
            self._buffer = b""  # (the usual case: the read held whole frames)
        else:
            self._keep(buffer, offset)

    def _keep(self, buffer, offset):
        """
        Keep the unprocessed tail C{buffer[offset:]} for the next read, in a
        C{bytearray} that later reads extend in place.
        """
        if type(buffer) is bytes:
            self._buffer = bytearray(memoryview(buffer)[offset:])
        elif offset:
            del buffer[:offset]  # O(1) amortized: CPython moves the start

    def discard(self):
        """
        Drop buffered input and ignore all further input.
        """
        self.discarding = True
        self._buffer = b""
