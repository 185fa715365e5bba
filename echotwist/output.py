# -*- test-case-name: tests.test_output -*-
"""
What one server connection writes (L{Output}), and the producer its
transport pauses when the client does not read.
"""

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from echotwist.flow import BUSY, ECHOING, OUTPUT
from echotwist.messages import echo_payload, echo_payloads, encode
from echotwist.wire import header


def close_writing(transport):
    """
    Half-close C{transport} where it can itself (TCP). A wrapper such as TLS
    would pass the call through to the socket under it, bypassing its own
    buffers, so it gets a plain close.
    """
    if getattr(type(transport), "loseWriteConnection", None):
        transport.loseWriteConnection()
    else:
        transport.loseConnection()


@implementer(IPushProducer)
class Output:
    """
    The frames one connection writes, framed and written with as few
    system calls as it can, and no faster than its client reads them.

    It exists for two costs. A write per reply would be a system call per
    reply: replies are gathered while a read is handled (or a message's
    work is under way) and written together. And a C{say} with C{repeat}
    100 of a large text is megabytes: its echoes are made one at a time,
    and wait here, not in memory, while the transport's buffer is full
    (the L{echotwist.flow.Flow}'s C{OUTPUT} hold); the connection's
    messages wait with them (C{ECHOING}).

    It is the transport's producer (L{IPushProducer}): when the
    transport's buffer is full it pauses the output, which holds the
    connection's messages (their replies would pile up) and starts the
    stall timeout, until the transport resumes it.

    @ivar gathered: the frames gathered for one write, or L{None} when
        not gathering. The connection starts gathering for each read.
    """

    # (Slots: every connection has one, and a dict would cost it memory.)
    __slots__ = (
        "_transport",
        "_flow",
        "_deadlines",
        "_clock",
        "_linger",
        "gathered",
        "_echoes",
        "_abort_call",
        "_ended",
    )

    def __init__(self, transport, flow, deadlines, clock, linger):
        """
        @param transport: where to write (looked up on each write: tests
            replace its methods).
        @param flow: the connection's L{echotwist.flow.Flow}.
        @param deadlines: the connection's L{echotwist.deadlines.Deadlines}
            (a paused output starts its stall timeout).
        @param clock: an C{IReactorTime}.
        @param linger: how long, once closing, what was written may take
            to be flushed before the connection is aborted.
        """
        self._transport = transport
        self._flow = flow
        self._deadlines = deadlines
        self._clock = clock
        self._linger = linger
        self.gathered = None
        self._echoes = None
        self._abort_call = None
        self._ended = False  # closing or lost: written nothing more

    def send(self, message):
        """
        Send one message (a L{dict}).
        """
        self.send_payload(encode(message))

    def send_now(self, messages):
        """
        Send C{messages} and write them now, with the replies gathered so
        far: one write.
        """
        if self.gathered is None:
            self.gathered = []
        for message in messages:
            self.send(message)
        self.flush()

    def send_payload(self, payload):
        """
        Frame C{payload} and write it, or gather it with the other replies
        of the read being handled (or of the message being worked on,
        which are written when its work is done).
        """
        out = self.gathered
        if out is None:
            if not self._flow.holds & BUSY:
                self._transport.writeSequence((header(len(payload)), payload))
                return
            out = self.gathered = []  # written when the work is done
        if len(payload) < 2048:  # fewer, larger pieces for small replies
            out.append(header(len(payload)) + payload)
        else:  # a large payload is not copied to join its header
            out += (header(len(payload)), payload)

    def flush(self):
        """
        Write the frames gathered so far, and stop gathering. (Writing
        early keeps their order.)
        """
        out, self.gathered = self.gathered, None
        if out:
            if len(out) == 1:
                self._transport.write(out[0])
            else:
                self._transport.writeSequence(out)

    def send_echoes(self, text, repeat):
        """
        Answer a C{say}: C{repeat} echoes of C{text}, numbered if more than
        one. Many or large echoes are written only as fast as the client
        reads them, and messages wait until they are.
        """
        if repeat == 1:  # (the hot path: send_payload's body, inline)
            payload = echo_payload(text)
            out = self.gathered
            if out is None:
                if not self._flow.holds & BUSY:
                    self._transport.writeSequence((header(len(payload)), payload))
                    return
                out = self.gathered = []
            if len(payload) < 2048:
                out.append(header(len(payload)) + payload)
            else:
                out += (header(len(payload)), payload)
            return
        self.flush()
        self._echoes = echo_payloads(text, repeat)
        self._flow.hold(ECHOING)
        self._write_echoes()

    def _write_echoes(self):
        flow = self._flow
        write = self._transport.writeSequence
        for payload in self._echoes:
            write((header(len(payload)), payload))
            if flow.holds & OUTPUT:  # (set by the write: the buffer is full)
                return
        self._echoes = None
        flow.release(ECHOING)

    # IPushProducer: not the frame receiver's methods of the same names,
    # which would stop reading input (reading stops only through the Flow).

    def pauseProducing(self):
        """
        The transport's buffer is full: write nothing more, and hold the
        connection's messages until L{resumeProducing}. The stall timeout
        runs meanwhile.
        """
        if not self._ended:
            self._deadlines.stalled_since = self._clock.seconds()
            self._flow.hold(OUTPUT)

    def resumeProducing(self):
        """
        The transport takes writes again: release the C{OUTPUT} hold, and
        write the echoes that wait, if any.
        """
        self._deadlines.stalled_since = None
        if self._ended or not self._flow.holds & OUTPUT:
            return
        echoing = self._echoes is not None
        self._flow.release(OUTPUT)  # (while echoing, ECHOING still holds)
        if echoing:
            self._write_echoes()

    def stopProducing(self):
        """
        Write no more echoes: the connection is closing or gone.
        """
        self._echoes = None

    def close(self):
        """
        Write nothing more, and close our side of the connection once what
        was written is flushed; abort it if that takes longer than the
        linger time.
        """
        self._ended = True
        self.stopProducing()
        transport = self._transport
        # No more producing: while a producer is registered (and paused)
        # Twisted would wait for it instead of closing once flushed.
        transport.unregisterProducer()
        # Reading goes on first, if it was stopped: what arrives is
        # discarded, not left unread to turn the close into a reset (and
        # once closing, a transport may no longer resume reading).
        self._flow.close()
        close_writing(transport)
        self._abort_call = self._clock.callLater(
            self._linger, transport.abortConnection
        )

    def lost(self):
        """
        The connection is gone: write nothing more, and abort nothing.
        """
        self._ended = True
        self.stopProducing()
        call, self._abort_call = self._abort_call, None
        if call is not None and call.active():
            call.cancel()
