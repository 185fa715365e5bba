# -*- test-case-name: tests.test_service -*-
"""
TCP connections that send a reply at once when nothing is queued.

Twisted's transports queue every write and send it on the reactor's next
turn: a reply costs two changes to the poll set, a wake-up and the send,
and reaches the client a reactor iteration late. asyncio's transports try
the send first and queue only what the socket does not take; these
connections do the same. What cannot go at once (a full socket buffer,
an error) takes Twisted's usual path, which also pauses producers and
reports errors as before.
"""

from twisted.internet import tcp


class WriteThroughServer(tcp.Server):
    """
    A server connection whose writes go straight to the socket when its
    queue is empty.
    """

    def write(self, data):
        if (
            self._tempDataLen
            or self.offset != len(self.dataBuffer)
            or not self.connected
            or self.disconnecting
            or self._writeDisconnecting
        ):
            super().write(data)  # keep the order behind what is queued
            return
        sent = self.writeSomeData(data)
        if not isinstance(sent, int):
            sent = 0  # an error: the queued write will meet and report it
        if sent < len(data):
            super().write(data[sent:])

    def writeSequence(self, iovec):
        self.write(b"".join(iovec))


class WriteThroughPort(tcp.Port):
    transport = WriteThroughServer


def listen_tcp(reactor, port, factory, backlog=50, interface=""):
    """
    L{IReactorTCP.listenTCP}, with L{WriteThroughServer} connections.
    """
    listening = WriteThroughPort(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening
