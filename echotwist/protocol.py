# -*- test-case-name: tests.test_protocol -*-
"""
One server connection (L{ServerProtocol}): frames in, the limits on them,
and how the connection closes. It is made of small parts, each with one
job: what the messages mean is the session's (L{echotwist.session}), what
the connection writes is its L{Output}, when its messages wait and when
its socket is read is its L{Flow}, and its timeouts are its L{Deadlines}.
"""

from enum import Enum

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from echotwist import messages as m
from echotwist.addresses import peer_host
from echotwist.deadlines import Deadlines
from echotwist.explain import too_large
from echotwist.flow import BUSY, Flow
from echotwist.framing import FrameReceiver
from echotwist.output import Output
from echotwist.prompts import format_address
from echotwist.session import ISessionPeer
from echotwist.i18n import _


def describe_peer(peer, host):
    """
    The client's address for the log: C{host} (its canonical text), with
    the port of C{peer} (an C{IAddress}) if it has one.
    """
    port = getattr(peer, "port", None)
    if port is None:
        return host
    return format_address(host, port)


def no_delay(transport):
    """
    Turn off Nagle's algorithm (as asyncio does): replies are written
    whole, and a small one held back until the client acknowledges the
    previous one can wait for its delayed acknowledgement, 40 ms.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:  # not TCP (a UNIX socket)
            pass


class Stage(Enum):
    """
    Where a connection is in its life: serving messages (C{OPEN}); closing
    after L{ServerProtocol.finish} (C{CLOSING}: its last messages written,
    what arrives discarded, our side closed once they are flushed, and the
    connection aborted if it is not gone after the linger time); gone
    (C{LOST}).
    """

    OPEN = "open"
    CLOSING = "closing"
    LOST = "lost"


OPEN, CLOSING, LOST = Stage


@implementer(ISessionPeer, IHandshakeListener)
class ServerProtocol(FrameReceiver):
    """
    The server side of one echolab connection.

    @ivar session: the conversation (L{echotwist.session.Session}).
    @ivar address: the client's IP address as text.
    @ivar stage: a L{Stage}.
    @ivar handshaking: whether a TLS handshake is still to complete.
    """

    log = Logger()
    session = None
    address = None
    stage = OPEN
    counted = False
    handshaking = False
    _work = None  # the Deferred of the message being worked on

    # ISessionPeer: finish and address are the connection's own; send and
    # send_echoes are its Output's, bound in connectionMade (a reply costs
    # no call of ours).

    closing = property(lambda self: self.stage is not OPEN)  # closing, or gone
    last_heard = property(lambda self: self._deadlines.last_heard)

    def connectionMade(self):
        factory, transport = self.factory, self.transport
        settings = factory.settings
        self.clock = clock = factory.clock
        self.MAX_LENGTH = settings.max_message
        self.address = peer_host(transport.getPeer())
        self.handshaking = ISSLTransport.providedBy(transport)
        self._deadlines = deadlines = Deadlines(settings, clock.seconds())
        self._flow = flow = Flow(self, transport, clock)
        self._output = output = Output(
            transport, flow, deadlines, clock, settings.linger
        )
        self.send, self.send_echoes = output.send, output.send_echoes
        no_delay(transport)
        transport.registerProducer(output, True)  # the client's reading paces it
        refusal = factory.admit(self)
        if refusal:
            peer = self.address
            self.log.info("refused {peer}: {why}", peer=peer, why=refusal, client=peer)
            self.finish(
                m.error(m.BUSY, _(refusal)), m.bye(_("Server busy; try later."))
            )
            return
        self._note("connection from {peer}")
        self.session = factory.session_for(self)
        output.gathered = []  # welcome and what follows: one write
        try:
            result = self.session.start()
        except Exception:
            self._failed(Failure())
        else:
            if result is not None:
                self._wait(result)
        output.flush()

    def connectionLost(self, reason):
        self.stage = LOST
        self._flow.stop()  # first: the work's end below must not deliver
        self._output.lost()
        if self._work is not None:
            self._work.cancel()
        # Drop our end of the session's cycle (session.peer is us): the
        # connection's objects are then freed at once, not left for the
        # garbage collector, whose passes on a busy server delay replies.
        self.session = None
        if self.counted:
            self._note("disconnected {peer}: {why}", why=reason.getErrorMessage())
            self.factory.release(self)  # last: it may let the server stop

    def _note(self, text, **fields):
        """Log C{text} about this connection (its client's log budget counts it)."""
        peer = describe_peer(self.transport.getPeer(), self.address)
        self.log.info(text, peer=peer, client=self.address, **fields)

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
        output = self._output
        started = output.gathered is None
        if started:
            output.gathered = []  # this read's replies, written together
        try:
            FrameReceiver.dataReceived(self, data)
        finally:
            if started:
                output.flush()
        if self.stage is not OPEN:
            return
        if data:  # (empty: a resumed delivery, not the client)
            self._deadlines.last_heard = self.clock.seconds()
        flow = self._flow
        if self._buffer and not self.paused:  # a frame is unfinished
            deadlines = self._deadlines
            first = deadlines.unfinished_since is None
            if first:
                deadlines.unfinished_since = self.clock.seconds()
            if flow.paced(len(data), first):
                return
        if self.paused or flow.reading_paused:  # (else nothing to settle)
            flow.settle_reading()

    def stringReceived(self, payload):
        self._deadlines.unfinished_since = None
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
        self._note(
            "closing {peer}: frame of {length} bytes is over the limit", length=length
        )
        self.finish(m.error(m.TOO_LARGE, too_large(length, self.MAX_LENGTH)))

    def _wait(self, result):
        """
        Hold the following messages until the L{Deferred} C{result} fires.
        The work is the connection's: if the client goes first, it is
        cancelled (a hash not yet started is dropped).
        """
        self._flow.hold(BUSY)
        self._work = result
        result.addErrback(self._failed)
        result.addBoth(self._done)

    def _done(self, _):
        """
        A message's work is done: write its replies, go on with the next.
        """
        self._work = None
        self._output.flush()
        self._flow.release(BUSY)

    def _failed(self, failure):
        if self.stage is LOST and failure.check(CancelledError):
            return  # the client went; its work was dropped
        peer = self.address
        self.log.failure(
            "internal error serving {peer}", failure, peer=peer, client=peer
        )
        if self.stage is OPEN and self.session is not None:
            self.session.refuse(m.SERVER_ERROR, _("internal error; please try again"))

    # Closing.

    def finish(self, *messages):
        """
        Send C{messages}, then close in stages so they reach a client that
        is still sending (a plain close with unread input resets the
        connection and destroys them): discard further input unread, close
        our side once the output is flushed, and abort if that takes longer
        than the linger time.
        """
        if self.stage is not OPEN:  # (work done after a hang-up)
            return
        self._output.send_now(messages)
        self.stage = CLOSING
        self.discard()
        self.paused = True
        self._output.close()

    def check_timeouts(self, now):
        """
        Close the connection if it overstayed one of its timeouts (the
        factory's sweep asks every second).
        """
        if self.stage is not OPEN:
            return
        session = self.session
        logging_in = self.handshaking or (session is not None and not session.ready)
        why = self._deadlines.overstayed(now, logging_in)
        if why is not None:
            self._note("timeout for {peer}: {why}", why=why)
            self.finish(m.error(m.TIMEOUT, _(why)), m.bye(_("Timed out; closing.")))
