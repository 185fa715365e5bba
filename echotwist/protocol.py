# -*- test-case-name: tests.test_protocol -*-
"""
One server connection: frames in and out, the limits on them, and how the
connection closes. What the messages mean is the session's business
(L{echotwist.session}).

Messages are held back (C{paused}) for as long as any reason holds: a
message is still being worked on (a password hash, a database write), the
client is not reading what we send (we are the transport's streaming
producer), or echoes of a C{say} are still being written. Reading from the
socket stops once a bounded amount of input waits behind a hold. So memory
per connection stays bounded, and messages are handled one at a time, in
order.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IHandshakeListener, IPushProducer, ISSLTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from echotwist import messages as m
from echotwist.addresses import peer_host
from echotwist.framing import FrameReceiver
from echotwist.prompts import format_address
from echotwist.wire import header


# Reasons to hold messages back, as bits of ServerProtocol._holds.
BUSY = 1  # a message's work is under way
OUTPUT = 2  # the transport's buffer is full: the client is not reading
ECHOING = 4  # echoes of a say are still being written
TRICKLE = 8  # a frame is trickling in: read it less often

# A frame arriving in many tiny reads costs a system call and a Python call
# per read, whatever its size: a trickle of one byte per TCP segment makes a
# 64 KiB frame cost over half a second of CPU. After a few such reads of one
# frame, reading waits a little between reads, so the kernel gathers more.
# Ordinary clients fill their segments and are never slowed.
SMALL_READ = 512
FREE_SMALL_READS = 8
TRICKLE_PAUSE = 0.01

# Input read ahead while messages are held back, before reading stops.
READ_AHEAD = 65536


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


@implementer(IPushProducer, IHandshakeListener)
class ServerProtocol(FrameReceiver):
    """
    The server side of one echolab connection.

    @ivar session: the conversation (L{echotwist.session.Session}).
    @ivar address: the client's IP address as text.
    @ivar closing: true once C{finish} began closing the connection.
    @ivar lost: true once the connection is gone.
    """

    log = Logger()
    session = None
    address = None
    closing = False
    lost = False
    counted = False
    _holds = 0
    _reading_paused = False
    _echoes = None
    _abort_call = None
    _partial_since = None
    _small_reads = 0
    _trickle_call = None
    _stalled_since = None
    _out = None
    _work = None
    handshaking = False

    def connectionMade(self):
        factory = self.factory
        self.clock = factory.clock
        self.MAX_LENGTH = factory.settings.max_message
        self.address = peer_host(self.transport.getPeer())
        self.connected_at = self.last_heard = self.clock.seconds()
        self.handshaking = ISSLTransport.providedBy(self.transport)
        self._no_delay()
        self.transport.registerProducer(self, True)
        refusal = factory.admit(self)
        if refusal:
            self.log.info(
                "refused {peer}: {why}",
                peer=self.address,
                why=refusal,
                client=self.address,
            )
            self.finish(m.error(m.BUSY, refusal), m.bye("Server busy; try later."))
            return
        self.log.info(
            "connection from {peer}", peer=self._peer_text(), client=self.address
        )
        self.session = factory.session_for(self)
        self._out = []  # welcome and what follows: one write
        self._run(self.session.start)
        self._write_gathered()

    def _no_delay(self):
        """
        Turn off Nagle's algorithm (as asyncio does): replies are written
        whole, and a small one held back until the client acknowledges the
        previous one can wait for its delayed acknowledgement, 40 ms.
        """
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            try:
                no_delay(True)
            except OSError:  # not TCP (a UNIX socket)
                pass

    def connectionLost(self, reason):
        self.lost = True
        for call in (self._abort_call, self._trickle_call):
            if call is not None and call.active():
                call.cancel()
        self._echoes = self._abort_call = self._trickle_call = None
        if self._work is not None:
            self._work.cancel()
        if self.session is not None:
            # Drop our end of the session's cycle (session.peer is us): the
            # connection's objects are then freed at once, not left for the
            # garbage collector, whose passes on a busy server delay replies.
            self.session = None
        if self.counted:
            self.log.info(
                "disconnected {peer}: {why}",
                peer=self._peer_text(),
                why=reason.getErrorMessage(),
                client=self.address,
            )
            self.factory.release(self)  # last: it may let the server stop

    def _peer_text(self):
        peer = self.transport.getPeer()
        port = getattr(peer, "port", None)
        if port is None:
            return self.address
        return format_address(self.address, port)

    def handshakeCompleted(self):
        """
        TLS is up (L{IHandshakeListener}): the login timeout, which counts
        the handshake in, no longer waits for it.
        """
        self.handshaking = False

    # Frames in.

    def dataReceived(self, data):
        if self._delivering:  # nested (a hold released): the outer call goes on
            FrameReceiver.dataReceived(self, data)
            return
        started = self._out is None
        if started:
            self._out = []  # this read's replies, written together
        try:
            FrameReceiver.dataReceived(self, data)
        finally:
            if started:
                self._write_gathered()
        if self.closing:
            return
        if data:  # (empty: a resumed delivery, not the client)
            self.last_heard = self.clock.seconds()
        if self._buffer and not self.paused:  # a frame is unfinished
            if self._partial_since is None:
                self._partial_since = self.clock.seconds()
                self._small_reads = 0
            if 0 < len(data) < SMALL_READ:  # (empty: a resumed delivery)
                self._small_reads += 1
                if self._small_reads > FREE_SMALL_READS:
                    self._hold(TRICKLE)
                    self._trickle_call = self.clock.callLater(
                        TRICKLE_PAUSE, self._release, TRICKLE
                    )
                    return
        if self.paused or self._reading_paused:  # (else nothing to settle)
            self._settle_reading()

    def stringReceived(self, payload):
        self._partial_since = None
        session = self.session
        try:
            try:
                message = m.decode_client_message(payload)
            except m.BadMessage as e:
                result = session.refuse(m.BAD_MESSAGE, str(e))
            else:
                result = session.handle(message)
        except Exception:
            self._failed(Failure())
            return
        if result is not None:  # a Deferred (an isinstance check costs more)
            self._wait(result)

    def lengthLimitExceeded(self, length):
        self.log.info(
            "closing {peer}: frame of {length} bytes is over the limit",
            peer=self._peer_text(),
            length=length,
            client=self.address,
        )
        self.finish(
            m.error(m.TOO_LARGE, f"a message may have at most {self.MAX_LENGTH} bytes")
        )

    def _run(self, handler):
        """
        Call a session handler, which returns L{None} or a L{Deferred}.
        (L{stringReceived} does the same, inline: it is the hot path.)
        """
        try:
            result = handler()
        except Exception:
            self._failed(Failure())
            return
        if result is not None:
            self._wait(result)

    def _wait(self, result):
        """
        Hold the following messages until the L{Deferred} C{result} fires.
        The work is the connection's: if the client goes first, it is
        cancelled (a hash not yet started is dropped).
        """
        self._hold(BUSY)
        self._work = result
        result.addErrback(self._failed)
        result.addBoth(self._done)

    def _done(self, _):
        """
        A message's work is done: write its replies, go on with the next.
        """
        self._work = None
        self._write_gathered()
        self._release(BUSY)

    def _failed(self, failure):
        if self.lost and failure.check(CancelledError):
            return  # the client went; its work was dropped
        self.log.failure(
            "internal error serving {peer}",
            failure,
            peer=self.address,
            client=self.address,
        )
        if not self.closing and self.session is not None:
            self.session.refuse(m.SERVER_ERROR, "internal error; please try again")

    # Frames out.

    def send(self, message):
        """
        Send one message.
        """
        self._write_payload(m.encode(message))

    def _write_payload(self, payload):
        """
        Frame C{payload} and write it, or gather it with the other replies
        of the read being handled (or of the message being worked on),
        which are written together: one system call, not one per message.
        """
        out = self._out
        if out is None:
            if not self._holds & BUSY:
                self.transport.writeSequence((header(len(payload)), payload))
                return
            out = self._out = []  # written when the work is done (_done)
        if len(payload) < 2048:  # fewer, larger pieces for small replies
            out.append(header(len(payload)) + payload)
        else:  # a large payload is not copied to join its header
            out += (header(len(payload)), payload)

    def _write_gathered(self):
        """
        Write the replies gathered so far. (Writing early keeps their order.)
        """
        out, self._out = self._out, None
        if out:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writeSequence(out)

    def send_echoes(self, text, repeat):
        """
        Answer a C{say}. Many or large echoes are written only as fast as the
        client reads them.
        """
        if repeat == 1:
            self._write_payload(m.echo_payload(text))
            return
        self._write_gathered()
        self._echoes = m.echo_payloads(text, repeat)
        self._hold(ECHOING)
        self._write_echoes()

    def _write_echoes(self):
        write = self.transport.writeSequence
        for payload in self._echoes:
            write((header(len(payload)), payload))
            if self._holds & OUTPUT:
                return
        self._echoes = None
        self._release(ECHOING)

    # IPushProducer: the transport tells us when the client stops reading.

    def pauseProducing(self):
        if not self.closing:
            self._stalled_since = self.clock.seconds()
            self._hold(OUTPUT)

    def resumeProducing(self):
        self._stalled_since = None
        if self.closing or not self._holds & OUTPUT:
            return
        self._holds &= ~OUTPUT
        if self._echoes is not None:
            self._write_echoes()
        else:
            self._release(0)

    def stopProducing(self):
        self._echoes = None

    # Holding back reading.

    def _hold(self, reason):
        self._holds |= reason
        self.paused = True
        if not self._delivering:
            self._settle_reading()

    def _release(self, reason):
        self._holds &= ~reason
        if self._holds or self.closing or self.lost:
            return
        self.paused = False
        if not self._delivering:  # (inside one, its loop just goes on)
            self.dataReceived(b"")  # deliver what was held back

    def _settle_reading(self):
        """
        Stop reading from the socket once messages are held back and
        C{READ_AHEAD} bytes of them wait (or while a trickle is paced), and
        restart when they may go on. Reading on while little waits keeps
        system calls off short holds, and lets TLS finish its handshake
        while the C{welcome} it holds back waits for it.
        """
        if self.closing:
            return
        stop = bool(self._holds & TRICKLE) or (
            self.paused and len(self._buffer) >= READ_AHEAD
        )
        if stop != self._reading_paused:
            self._reading_paused = stop
            if stop:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    # Closing.

    def finish(self, *messages):
        """
        Send C{messages}, then close in stages so they reach a client that
        is still sending (a plain close with unread input resets the
        connection and destroys them): discard further input unread, close
        our side once the output is flushed, and abort if that takes longer
        than the linger time.
        """
        if self.closing or self.lost:  # (work done after a hang-up)
            return
        if self._out is None:
            self._out = []  # the messages: one write
        for message in messages:
            self.send(message)
        self._write_gathered()
        self.closing = True
        self._echoes = None
        self.discard()
        self.paused = True
        # No more producing: while a producer is registered (and paused)
        # Twisted would wait for it instead of closing once flushed.
        self.transport.unregisterProducer()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()  # read, to discard, not to reset
        close_writing(self.transport)
        self._abort_call = self.clock.callLater(
            self.factory.settings.linger, self.transport.abortConnection
        )

    def check_timeouts(self, now):
        """
        Close the connection if it overstayed one of its timeouts.
        """
        if self.closing:
            return
        settings = self.factory.settings
        why = None
        if (
            self._stalled_since is not None
            and now - self._stalled_since >= settings.stall_timeout
        ):
            why = "not reading what the server sends"
        elif self.handshaking or (self.session is not None and not self.session.ready):
            if now - self.connected_at >= settings.login_timeout:
                why = "took too long to identify or log in"
        if why is None:
            if self._partial_since is not None:
                if now - self._partial_since >= settings.frame_timeout:
                    why = "a message was left incomplete"
            elif now - self.last_heard >= settings.idle_timeout:
                why = "idle for too long"
        if why is not None:
            self.log.info(
                "timeout for {peer}: {why}",
                peer=self._peer_text(),
                why=why,
                client=self.address,
            )
            self.finish(m.error(m.TIMEOUT, why), m.bye("Timed out; closing."))
