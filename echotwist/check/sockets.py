# -*- test-case-name: tests.test_check -*-
"""
The checker's sockets: L{echotwist.wire.MessageSocket} (the project's one
frame codec) over TCP or TLS, never waiting past a deadline, and what
their errors mean in words.

Every read and write sets the socket's timeout to the time left until
C{deadline}, so whatever the server does (hangs, trickles, closes) a call
returns or raises by then.
"""

import socket
import ssl
import time

from echotwist.wire import MessageSocket

LARGEST_FRAME = 8 * 1024 * 1024
"""
The largest frame the checker reads, whatever the server's welcome claims:
a broken server cannot make it allocate more.
"""

RESET = "the connection was reset by the server"


class _Deadlined:
    """
    Socket methods that wait at most until C{deadline} (a
    L{time.monotonic} value), so no read or write outlives its check.
    """

    deadline = float("inf")

    def _time_left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the check's time limit was reached")
        return left

    def recv_into(self, buffer, nbytes=0, flags=0):
        self.settimeout(self._time_left())
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data, flags=0):
        self.settimeout(self._time_left())
        return super().send(data, flags)

    def sendall(self, data, flags=0):
        self.settimeout(self._time_left())
        return super().sendall(data, flags)


class PlainSocket(_Deadlined, MessageSocket):
    """
    A deadlined L{MessageSocket} over TCP.
    """


class TLSSocket(_Deadlined, ssl.SSLSocket, MessageSocket):
    """
    A deadlined L{MessageSocket} over TLS: L{ssl.SSLSocket} reads and
    writes, L{MessageSocket} frames.
    """


def connect_socket(target, deadline, source=None):
    """
    A socket connected to C{target} (TLS handshake done, if asked).

    @param source: the local IP address to connect from, or L{None}.
    @raise OSError: if connecting fails (L{ssl.SSLError} included).
    """
    sock = PlainSocket(target.family, socket.SOCK_STREAM)
    sock.deadline = deadline
    try:
        if source:
            sock.bind((source, 0))
        sock.settimeout(sock._time_left())
        sock.connect(target.sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            sock.settimeout(sock._time_left())
            sock = target.tls.wrap_socket(sock, server_hostname=target.host)
            sock.deadline = deadline
    except OSError:
        sock.close()
        raise
    return sock


def limit_frames(sock, max_message):
    """
    Accept frames of 8 x the server's C{max_message} (the contract's
    rule), never more than L{LARGEST_FRAME}.
    """
    sock.max_frame = LARGEST_FRAME
    if type(max_message) is int and max_message > 0:
        sock.max_frame = min(8 * max_message, LARGEST_FRAME)


def reason(error):
    """
    What went wrong with a socket, in words.
    """
    if isinstance(error, TimeoutError):
        return "nothing before the check's time limit"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            "TLS failed: the server's certificate could not be verified "
            f"(certificate verify failed: {error.verify_message})"
        )
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running on that port?)"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return RESET
    return error.strerror or str(error)
