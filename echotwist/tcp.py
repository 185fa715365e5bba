# -*- test-case-name: tests.test_tcp -*-
"""
TCP connections that send a reply at once when nothing is queued.

Twisted's transports queue every write and send it on the reactor's next
turn: a reply costs two changes to the poll set, a wake-up and the send,
and reaches the client a reactor iteration late. asyncio's transports try
the send first and queue only what the socket does not take; these
connections do the same, and send the pieces of a C{writeSequence} with one
C{sendmsg} rather than joining them first. What cannot go at once (a full
socket buffer, an error) takes Twisted's usual path, which also pauses
producers and reports errors as before.
"""

from twisted.internet import tcp

# Pieces one sendmsg takes (Linux's IOV_MAX is 1024).
MAX_PIECES = 1024


class WriteThroughServer(tcp.Server):
    """
    A server connection whose writes go straight to the socket when its
    queue is empty.
    """

    def _queue_empty(self):
        return not (
            self._tempDataLen
            or self.offset != len(self.dataBuffer)
            or not self.connected
            or self.disconnecting
            or self._writeDisconnecting
        )

    def write(self, data):
        if self._queue_empty():  # (ping-pong's every reply: kept to one call)
            try:
                sent = self.socket.send(data)
            except OSError:  # a full buffer, or an error doWrite will report
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec):
        if len(iovec) > MAX_PIECES:
            iovec = [b"".join(iovec)]
        if self._queue_empty():
            try:
                sent = self.socket.sendmsg(iovec)
            except OSError:  # a full buffer, or an error doWrite will report
                sent = 0
            iovec = _after(iovec, sent)
            if not iovec:
                return
        super().writeSequence(iovec)


def _after(pieces, sent):
    """
    What remains of C{pieces} once their first C{sent} bytes are gone.
    """
    if not sent:
        return pieces
    for i, piece in enumerate(pieces):
        if sent < len(piece):
            return [piece[sent:], *pieces[i + 1 :]]
        sent -= len(piece)
    return []


class WriteThroughPort(tcp.Port):
    transport = WriteThroughServer


def listen_tcp(reactor, port, factory, backlog=50, interface=""):
    """
    L{IReactorTCP.listenTCP}, with L{WriteThroughServer} connections.
    """
    listening = WriteThroughPort(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening
