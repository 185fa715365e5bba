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

Bytes never go around TLS: once C{startTLS} is called, every write takes
the inherited path, which encrypts it. The write queue and socket are read
through L{echotwist.twisted_internals}; when its start-up check fails,
L{listen_tcp} listens with Twisted's own transports.
"""

from twisted.internet import tcp

from echotwist.twisted_internals import fast_socket, usable

# Pieces one sendmsg takes (Linux's IOV_MAX is 1024).
MAX_PIECES = 1024


class WriteThroughServer(tcp.Server):
    """
    A server connection whose writes go straight to the socket when its
    queue is empty.
    """

    def write(self, data):
        sock = fast_socket(self)  # (ping-pong's every reply: kept to one call)
        if sock is not None:
            try:
                sent = sock.send(data)
            except OSError:  # a full buffer, or an error doWrite will report
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec):
        if len(iovec) > MAX_PIECES:
            iovec = [b"".join(iovec)]
        sock = fast_socket(self)
        if sock is not None:
            try:
                sent = sock.sendmsg(iovec)
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
    L{IReactorTCP.listenTCP}, with L{WriteThroughServer} connections, or
    Twisted's own if the running Twisted fails the check of what they use
    of its internals (the first call runs it, logging one warning if so).
    """
    if not usable("tcp"):
        return reactor.listenTCP(port, factory, backlog, interface)
    listening = WriteThroughPort(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening
