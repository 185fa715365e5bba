# -*- test-case-name: tests.test_check -*-
"""
One connection of the checker to the server under test: a
L{echotwist.wire.MessageSocket} (the project's one frame codec) that never
waits past its check's deadline, and remembers what it sent and what came
back, for the report.

Whatever the server does (hangs, closes, sends garbage or a frame without
its header), a call here returns or raises L{CheckFailed} by the deadline:
every read and write sets the socket's timeout to the time left.
"""

import json
import secrets
import select
import socket
import ssl
import time

from echotwist.wire import (
    HEADER,
    FrameError,
    IncompleteFrame,
    MessageSocket,
    decode_message,
    encode_message,
    frame,
)

LARGEST_FRAME = 8 * 1024 * 1024
"""
The largest frame the checker reads, whatever the server's welcome claims:
a broken server cannot make it allocate more.
"""

SECRET_MEMBERS = {"token": "<token>"}
SECRET_FIELDS = ("password", "new_password")


class CheckFailed(Exception):
    """
    The server did not do what the check expected.

    @ivar expected: what the contract asks for, in words.
    @ivar got: what came back instead, in words.
    """

    def __init__(self, expected, got):
        super().__init__(f"expected {expected}; got {got}")
        self.expected = expected
        self.got = got


class Skip(Exception):
    """
    The check cannot run here; the message says why.
    """


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


def describe(message):
    """
    A message in one short line of JSON, secrets replaced by placeholders
    and long strings cut, for the report.
    """
    if not isinstance(message, dict):
        return repr(message)
    shown = {}
    for key, value in message.items():
        if key in SECRET_MEMBERS and isinstance(value, str):
            value = SECRET_MEMBERS[key]
        elif key == "value" and message.get("field") in SECRET_FIELDS:
            value = "<password>" if len(str(value)) <= 1024 else "<long password>"
        elif isinstance(value, str) and len(value) > 100:
            value = f"{value[:60]}... ({len(value)} characters)"
        shown[key] = value
    return json.dumps(shown, ensure_ascii=False)


def _describe_bytes(data):
    if len(data) > 60:
        return f"{data[:40]!r}... ({len(data)} bytes)"
    return repr(data)


class Connection:
    """
    A conversation with the server, as a check sees it.

    @ivar welcome: the server's C{welcome}, once read.
    @ivar ready: whether the session is ready (C{say} allowed); kept
        connections are reused by later checks.
    """

    welcome = None
    ready = False

    def __init__(self, sock, transcript):
        self.sock = sock
        self.transcript = transcript

    @classmethod
    def open(cls, target, deadline, transcript, source=None):
        """
        Connect to C{target} (a L{Target}) and read its C{welcome}.

        @param source: the local IP address to connect from, or L{None}.
        @raise CheckFailed: if connecting fails or no welcome comes.
        """
        family, address = target.family, target.sockaddr
        sock = PlainSocket(family, socket.SOCK_STREAM)
        sock.deadline = deadline
        try:
            if source:
                sock.bind((source, 0))
            sock.settimeout(sock._time_left())
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                sock.settimeout(sock._time_left())
                sock = target.tls.wrap_socket(sock, server_hostname=target.host)
                sock.deadline = deadline
        except (OSError, ssl.SSLError) as e:
            sock.close()
            transcript.got.append(f"connecting failed: {_reason(e)}")
            raise CheckFailed(
                f"a connection to {target.where}", f"connecting failed: {_reason(e)}"
            ) from None
        connection = cls(sock, transcript)
        transcript.sent.append(
            f"(connect to {target.where}" + (f" from {source})" if source else ")")
        )
        connection.welcome = connection.expect("welcome")
        return connection

    def close(self):
        self.sock.close()

    def idle(self):
        """
        Whether nothing has arrived (no message, no close) since the last
        read: a kept session is reused only then.
        """
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        return not readable

    def send(self, message):
        """
        Send one message (a dict).
        """
        self.transcript.sent.append(describe(message))
        self._write(frame(encode_message(message)))

    def send_raw(self, data, note=None):
        """
        Send bytes as they are (no header added), described by C{note}.
        """
        self.transcript.sent.append(note or _describe_bytes(data))
        self._write(data)

    def send_pieces(self, pieces, gap, note):
        """
        Send C{pieces} of bytes one by one, C{gap} seconds apart (bounded
        by the deadline), so they reach the server in separate reads.
        """
        self.transcript.sent.append(note)
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(max(0.0, min(gap, self.sock.deadline - time.monotonic())))
            self._write(piece)

    def send_payload(self, payload, note=None):
        """
        Send C{payload} (bytes, maybe not JSON) as one frame.
        """
        if note is None:
            note = (
                f"frame of {_describe_bytes(payload)}"
                if payload
                else ("a zero-length frame (header 00 00 00 00)")
            )
        self.transcript.sent.append(note)
        self._write(frame(payload))

    def _write(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise CheckFailed("the server to read what was sent", _reason(e)) from None

    def receive(self, expecting):
        """
        The next message, raw payload included.

        @param expecting: what the check waits for, in words, for the report.
        @return: (message, payload bytes).
        @raise CheckFailed: on a close, a time-out or something not a message.
        """
        try:
            payload = self.sock.recv_bytes()
        except IncompleteFrame:
            got = "the connection closed in the middle of a frame"
        except EOFError:
            got = "the connection closed"
        except FrameError as e:
            got = self._bad_header(str(e))
        except TimeoutError:
            got = "nothing before the check's time limit"
        except OSError as e:
            got = _reason(e)
        else:
            try:
                message = decode_message(payload)
            except FrameError as e:
                got = f"a frame that is not a message ({e}): {_describe_bytes(payload)}"
            else:
                self.transcript.got.append(describe(message))
                if message["type"] == "welcome":
                    self._limit_frames(message.get("max_message"))
                return message, payload
        self.transcript.got.append(got)
        raise CheckFailed(expecting, got)

    def _limit_frames(self, max_message):
        self.sock.max_frame = LARGEST_FRAME
        if type(max_message) is int and max_message > 0:
            self.sock.max_frame = min(8 * max_message, LARGEST_FRAME)

    def _bad_header(self, reason):
        return (
            f"{reason} (a length header that makes no sense: did the server "
            "forget the 4-byte header, or send text instead of a frame?)"
        )

    def expect(self, kind, **members):
        """
        The next message, which must be of type C{kind} with C{members}.
        """
        wanted = _wanted(kind, members)
        message, _ = self.receive(wanted)
        if message["type"] != kind or any(
            message.get(k, _MISSING) != v for k, v in members.items()
        ):
            raise CheckFailed(wanted, describe(message))
        return message

    def expect_error(self, code):
        return self.expect("error", code=code)

    def expect_ask(self, field):
        return self.expect("ask", field=field)

    def expect_asked_again(self, code, field):
        """
        C{error} C{code}, then the pending C{ask} for C{field} sent again
        (the connection stays open).
        """
        self.expect_error(code)
        return self.expect_ask(field)

    def expect_closed(self, without="bye"):
        """
        The connection must close now, with nothing more sent.
        """
        try:
            message, _ = self.receive("the connection to close")
        except CheckFailed as e:
            if e.got in CLOSED:
                return
            raise
        raise CheckFailed(f"the connection to close (no {without})", describe(message))

    def expect_bye_and_close(self):
        self.expect("bye")
        self.expect_closed(without="more messages")

    def send_probe(self):
        """
        Send a C{say} right behind the message under test (pipelined): its
        echo must be the next reply after the ones expected, so a reply
        missing, or one too many, shows at once instead of as a wait.

        @return: the text to expect back (L{expect_probe}).
        """
        text = f"still there? {secrets.token_hex(2)}"
        self.send({"type": "say", "text": text})
        return text

    def expect_probe(self, text):
        """
        The probe's echo: the connection stayed open and owed nothing more.
        """
        self.expect("echo", text=text)

    def send_quit(self):
        """
        Send C{quit}, maybe right behind the message under test: its
        C{bye} must come after the replies expected.
        """
        self.send({"type": "quit"})

    def quit(self):
        """
        End the conversation as a client does: C{quit}, then C{bye} and a
        close.
        """
        self.send_quit()
        self.expect_bye_and_close()


_MISSING = object()
_RESET = "the connection was reset by the server"
CLOSED = ("the connection closed", _RESET)


def _wanted(kind, members):
    shown = ", ".join(
        f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in members.items()
    )
    return f"{kind} ({shown})" if shown else kind


def _reason(error):
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
        return _RESET
    return error.strerror or str(error)


def header_of(length):
    """
    A bare length header (for framing checks).
    """
    return HEADER.pack(length)
