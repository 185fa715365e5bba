# -*- test-case-name: tests.test_raw -*-
"""
Raw mode: the classic echo service of RFC 862. Every byte received is sent
back as it came: no frames, no JSON, no welcome. It is what the lab's first
plain-socket client expects, and what C{nc} speaks.

Raw connections are counted, timed out and said goodbye to by the server's
L{echotwist.factory.EchoFactory}, with the framed ones: C{--max-connections}
and C{--max-per-address} count them all. A raw connection is served either
because the whole server runs C{--mode raw}, or because it came in on a
C{--raw-listen} listener of its own (L{RawListenerFactory}).
"""

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from echotwist.addresses import peer_host
from echotwist.deadlines import Deadlines
from echotwist.output import close_writing
from echotwist.protocol import describe_peer, no_delay


@implementer(IPushProducer, IHalfCloseableProtocol)
class RawEcho(Protocol):
    """
    One raw echo connection: what arrives is written back.

    It is the producer of what it writes, and the transport is the
    producer of what it reads: when the client does not read, the
    transport's buffer fills, the transport pauses us, and we pause it in
    turn, so the kernel's buffers fill and TCP slows the client down. What
    one connection holds is bounded by the transport's buffer, whatever the
    client sends.

    @ivar address: the client's IP address as text.
    @ivar echoed: bytes echoed so far.
    @ivar closing: whether L{finish} was called or the connection is gone.
    """

    log = Logger()
    address = None
    counted = False
    closing = False
    read_lost = False
    echoed = 0
    _abort_call = None

    def connectionMade(self):
        factory, transport = self.factory, self.transport
        self.clock = factory.clock
        self.address = peer_host(transport.getPeer())
        self._deadlines = Deadlines(factory.settings, self.clock.seconds())
        no_delay(transport)  # an echo is wanted at once, not gathered
        transport.registerProducer(self, True)
        refusal = factory.admit(self)
        if refusal:
            peer = self.address
            self.log.info("refused {peer}: {why}", peer=peer, why=refusal, client=peer)
            self.finish()
            return
        self._note("connection from {peer} (raw)")

    def dataReceived(self, data):
        if self.closing:
            return  # closing: what arrives is discarded
        self._deadlines.last_heard = self.clock.seconds()
        self.echoed += len(data)
        self.transport.write(data)

    def readConnectionLost(self):
        """
        The client is done sending (C{nc -N}, C{shutdown(SHUT_WR)}): close
        once what it sent is echoed, not at once, which would drop the
        echoes still queued.
        """
        self.read_lost = True
        if self.closing:  # already lingering: nothing more to wait for
            self.transport.loseConnection()
        else:
            self.finish()

    def writeConnectionLost(self):
        """Our side is closed (L{finish}); the client's may still send."""

    def connectionLost(self, reason):
        self.closing = True
        call, self._abort_call = self._abort_call, None
        if call is not None and call.active():
            call.cancel()
        if self.counted:
            self._note(
                "disconnected {peer} (raw, {echoed} bytes echoed): {why}",
                echoed=self.echoed,
                why=reason.getErrorMessage(),
            )
            self.factory.release(self)

    def _note(self, text, **fields):
        peer = describe_peer(self.transport.getPeer(), self.address)
        self.log.info(text, peer=peer, client=self.address, **fields)

    # IPushProducer: the transport's buffer is full (the client is not
    # reading what we echo), then drained.

    def pauseProducing(self):
        """
        Stop reading: every byte read would be one more to hold.
        """
        if not self.closing:
            self._deadlines.stalled_since = self.clock.seconds()
            self.transport.pauseProducing()

    def resumeProducing(self):
        self._deadlines.stalled_since = None
        if not self.closing:
            self.transport.resumeProducing()

    def stopProducing(self):
        self.closing = True

    # What the factory asks of every connection.

    def check_timeouts(self, now):
        """
        Close the connection if it was idle, or left our echoes unread, for
        too long (the factory's sweep asks every second). Raw mode has no
        login and no frames, so only those two timeouts apply.
        """
        if self.closing:
            return
        why = self._deadlines.overstayed(now, False)
        if why is not None:
            self._note("timeout for {peer} (raw): {why}", why=why)
            self.finish()

    def finish(self, *messages):
        """
        Close, flushing what was echoed: our side is closed once it is
        written, what arrives meanwhile is read and discarded (unread input
        would turn the close into a reset), and the connection is aborted
        if that takes longer than the linger time.

        @param messages: the C{bye} or C{error} a framed connection would
            send; raw mode has no way to say them, so they are dropped.
        """
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        transport.unregisterProducer()
        if self.read_lost:
            transport.loseConnection()  # both ways, once flushed
        else:
            if self._deadlines.stalled_since is not None:  # reading was paused
                transport.resumeProducing()  # read on, and discard
            close_writing(transport)
        self._abort_call = self.clock.callLater(
            self.factory.settings.linger, transport.abortConnection
        )


class RawListenerFactory(Factory):
    """
    Builds L{RawEcho} connections for a listener, while the server's
    factory counts them, times them out and closes them with its own.

    @ivar server: the L{echotwist.factory.EchoFactory}.
    """

    protocol = RawEcho
    noisy = False

    def __init__(self, server):
        self.server = server
        self.settings = server.settings
        self.clock = server.clock

    def doStart(self):
        self.server.doStart()  # (its timeout sweep runs while a port listens)

    def doStop(self):
        self.server.doStop()

    def admit(self, connection):
        return self.server.admit(connection)

    def release(self, connection):
        self.server.release(connection)

    def admit_waiting(self, waiting):
        return self.server.admit_waiting(waiting)

    def release_waiting(self, waiting):
        self.server.release_waiting(waiting)
