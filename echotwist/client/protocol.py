# -*- test-case-name: tests.test_client_protocol -*-
"""
The client's end of one connection: frames in, decoded messages out to a
handler; messages in, frames out. Framing is the package's own
L{FrameReceiver}, the one the server uses; what the messages mean is the
conversation's business (L{echotwist.client.conversation}).

Until a handler is attached (the client waits for the server's first
message before it starts its console) what arrives is kept, in order.
"""

from twisted.internet import defer

from echotwist.framing import FrameReceiver
from echotwist.wire import (
    CLIENT_FRAME_FACTOR,
    DEFAULT_MAX_MESSAGE,
    FrameError,
    decode_message,
    encode_message,
)


class ClientProtocol(FrameReceiver):
    """
    Decode the server's frames and hand them to a handler, which provides
    C{message_received(message)}, C{garbled(reason)},
    C{too_large(length)} and C{connection_lost(reason)}.

    @ivar max_message: the server's limit on what we send (from its
        C{welcome}), so the console can refuse too long lines itself.
    @ivar connected: true until the connection is lost.
    """

    MAX_LENGTH = DEFAULT_MAX_MESSAGE * CLIENT_FRAME_FACTOR
    max_message = DEFAULT_MAX_MESSAGE
    handler = None

    def __init__(self):
        self._early = []
        self._heard = []

    def stringReceived(self, payload):
        try:
            message = decode_message(payload)
        except FrameError as e:
            self._hand_over("garbled", str(e))
            return
        if message["type"] == "welcome":
            limit = message.get("max_message")
            if type(limit) is int and limit > 0:
                self.max_message = limit
                self.MAX_LENGTH = max(DEFAULT_MAX_MESSAGE, limit) * CLIENT_FRAME_FACTOR
        self._hand_over("message_received", message)

    def lengthLimitExceeded(self, length):
        self._hand_over("too_large", length)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.connected = False
        self._hand_over("connection_lost", reason)

    def send(self, message):
        """
        Send one message (a L{dict} with a string C{type}).
        """
        if self.connected:
            self.sendString(encode_message(message))

    def payload_size(self, message):
        """
        @return: how many bytes C{message} takes on the wire, without the
            length prefix (what the server's limit counts).
        """
        return len(encode_message(message))

    def close(self):
        """
        Close the connection once what was sent is written.
        """
        if self.connected:
            self.transport.loseConnection()

    def abort(self):
        """
        Close the connection at once.
        """
        if self.connected:
            self.transport.abortConnection()

    def when_heard(self):
        """
        @return: a L{Deferred} that fires with this protocol as soon as
            anything arrived (a message, or a garbled frame), or fails with
            the reason if the connection is lost first.
        """
        d = defer.Deferred(self._give_up)
        if self._early:
            self._settle(d)
        else:
            self._heard.append(d)
        return d

    def _give_up(self, d):
        """
        Cancel a L{when_heard}: the caller waited long enough.
        """
        if d in self._heard:
            self._heard.remove(d)
        self.abort()

    def attach(self, handler):
        """
        Hand what arrived so far, and all that follows, to C{handler}.
        """
        self.handler = handler
        early, self._early = self._early, []
        for kind, argument in early:
            getattr(handler, kind)(argument)

    def _hand_over(self, kind, argument):
        if self.handler is not None:
            getattr(self.handler, kind)(argument)
            return
        self._early.append((kind, argument))
        heard, self._heard = self._heard, []
        for d in heard:
            self._settle(d)

    def _settle(self, d):
        kind, argument = self._early[0]
        if kind == "connection_lost":
            d.errback(argument)
        else:
            d.callback(self)
