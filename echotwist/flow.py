# -*- test-case-name: tests.test_flow -*-
"""
Flow control for one server connection: when its messages wait, and when
reading from its socket stops (L{Flow}).

A connection handles its messages one at a time, in order, and not while
any reason to hold them back holds: a message's work is under way, the
client is not reading what we send, the echoes of a C{say} are still being
written, or a frame trickles in. Input keeps being read behind a hold, but
only up to C{READ_AHEAD} bytes: so memory per connection stays bounded,
whatever the client sends.
"""

# Reasons to hold messages back, as bits of Flow.holds.
BUSY = 1  # a message's work is under way
OUTPUT = 2  # the transport's buffer is full: the client is not reading
ECHOING = 4  # echoes of a say are still being written
TRICKLE = 8  # a frame is trickling in: read it less often

# A frame arriving in many tiny reads costs a system call and a Python call
# per read, whatever its size, so a trickle of one byte per TCP segment
# makes a large frame cost a great deal of CPU (docs/reliability.md). After
# a few such reads of one frame, reading waits a little between reads, so
# the kernel gathers more. Ordinary clients fill their segments and are
# never slowed.
SMALL_READ = 512
FREE_SMALL_READS = 8
TRICKLE_PAUSE = 0.01

# Input read ahead while messages are held back, before reading stops.
READ_AHEAD = 65536


class Flow:
    """
    The reasons one connection's messages are held back, and what follows
    from them: whether its frames are delivered (its C{paused}), and
    whether its socket is read.

    It exists so that the reasons to wait (work, a full transport, echoes,
    a trickle) are bits of one set with one rule, instead of flags each
    part of the connection tests on its own: messages go on when the last
    reason is released, reading stops when enough input waits behind them.

    @ivar holds: the reasons holding messages back (C{BUSY}, C{OUTPUT},
        C{ECHOING}, C{TRICKLE}), as bits.
    @ivar reading_paused: whether we asked the transport to stop reading.
    """

    # (Slots: every connection has one, and a dict would cost it memory.)
    __slots__ = (
        "_receiver",
        "_transport",
        "_clock",
        "holds",
        "reading_paused",
        "_small_reads",
        "_trickle_call",
    )

    def __init__(self, receiver, transport, clock):
        """
        @param receiver: the connection, a L{echotwist.framing.FrameReceiver}:
            its C{paused} stops delivery, C{dataReceived(b"")} delivers what
            waits, and its C{_delivering} and C{_buffer} say whether it is
            delivering and how much waits.
        @param transport: its transport, asked to stop and resume reading.
        @param clock: an C{IReactorTime}, to pace a trickle.
        """
        self._receiver = receiver
        self._transport = transport
        self._clock = clock
        self.holds = 0
        self.reading_paused = False
        self._small_reads = 0
        self._trickle_call = None

    def hold(self, reason):
        """
        Hold messages back for C{reason} (a bit) until it is released.
        """
        self.holds |= reason
        receiver = self._receiver
        if receiver is None:  # stopped
            return
        receiver.paused = True
        if not receiver._delivering:  # (inside one, it settles when done)
            self.settle_reading()

    def release(self, reason):
        """
        C{reason} no longer holds; the last one released lets messages go
        on, delivering those that wait, and reading resume.
        """
        self.holds &= ~reason
        receiver = self._receiver
        if self.holds or receiver is None:
            return
        receiver.paused = False
        if not receiver._delivering:  # (inside one, its loop just goes on)
            receiver.dataReceived(b"")  # deliver what was held back
            self.settle_reading()

    def settle_reading(self):
        """
        Stop reading from the socket once messages are held back and
        C{READ_AHEAD} bytes of them wait (or while a trickle is paced), and
        restart when they may go on. Reading on while little waits keeps
        system calls off short holds, and lets TLS finish its handshake
        while the C{welcome} it holds back waits for it.
        """
        receiver = self._receiver
        if receiver is None:
            return
        stop = bool(self.holds & TRICKLE) or (
            receiver.paused and len(receiver._buffer) >= READ_AHEAD
        )
        if stop != self.reading_paused:
            self.reading_paused = stop
            if stop:
                self._transport.pauseProducing()
            else:
                self._transport.resumeProducing()

    def paced(self, size, first):
        """
        A read of C{size} bytes left a frame unfinished. Past the first
        C{FREE_SMALL_READS} small reads of a frame, reading stops for
        C{TRICKLE_PAUSE} after each.

        @param first: whether the frame was newly left unfinished (its
            count of small reads starts again).
        @return: whether reading stopped.
        """
        if first:
            self._small_reads = 0
        if not 0 < size < SMALL_READ:  # (0: a resumed delivery)
            return False
        self._small_reads += 1
        if self._small_reads <= FREE_SMALL_READS:
            return False
        self.hold(TRICKLE)
        self._trickle_call = self._clock.callLater(TRICKLE_PAUSE, self.release, TRICKLE)
        return True

    def close(self):
        """
        The connection is closing: messages are no longer held or
        delivered, and reading goes on if it was stopped (what arrives is
        discarded; input left unread would turn the close into a reset).
        """
        self.stop()
        if self.reading_paused:
            self.reading_paused = False
            self._transport.resumeProducing()

    def stop(self):
        """
        The connection is closing or gone: no more holding or delivering.
        This also drops our reference to it, so that it is freed as soon
        as it closes, not left for the garbage collector.
        """
        self._receiver = None
        call, self._trickle_call = self._trickle_call, None
        if call is not None and call.active():
            call.cancel()
