# -*- test-case-name: tests.test_check -*-
"""
One connection of the checker to the server under test, as a check sees
it: messages sent, replies expected, and a transcript of both for the
report (secrets shown as placeholders).

Whatever the server does (hangs, closes, sends garbage or a frame without
its header), a call here returns or raises L{CheckFailed} by the check's
deadline (L{echotwist.check.sockets}).
"""

import json
import re
import secrets
import select
import ssl
import time

from echotwist.check.sockets import RESET, connect_socket, limit_frames, reason
from echotwist.wire import (
    HEADER,
    FrameError,
    IncompleteFrame,
    decode_message,
    encode_message,
    frame,
)

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


def _absurd_header(error, limit):
    """
    Why a frame's header was refused, for a person: its 4 bytes, the
    length they make, and the likely mistake.
    """
    found = re.match(r"frame of (\d+) bytes", str(error))
    if not found:
        return str(error)
    length = int(found.group(1))
    return (
        f"a header whose 4 bytes {HEADER.pack(length)!r} read as a length of "
        f"{length:,}, over the {limit:,} a client accepts: did the server "
        "forget the 4-byte header, or send text instead of a frame?"
    )


def _describe_bytes(data):
    if len(data) > 60:
        return f"{data[:40]!r}... ({len(data)} bytes)"
    return repr(data)


class Connection:
    """
    A conversation with the server, as a check sees it.

    @ivar welcome: the server's C{welcome}, once read.
    """

    welcome = None

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
        try:
            sock = connect_socket(target, deadline, source)
        except OSError as e:
            transcript.got.append(f"connecting failed: {reason(e)}")
            raise CheckFailed(
                f"a connection to {target.where}", f"connecting failed: {reason(e)}"
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
            raise CheckFailed("the server to read what was sent", reason(e)) from None

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
            got = _absurd_header(e, self.sock.max_frame)
        except TimeoutError:
            got = "nothing before the check's time limit"
        except OSError as e:
            got = reason(e)
        else:
            try:
                message = decode_message(payload)
            except FrameError as e:
                got = f"a frame that is not a message ({e}): {_describe_bytes(payload)}"
            else:
                self.transcript.got.append(describe(message))
                if message["type"] == "welcome":
                    limit_frames(self.sock, message.get("max_message"))
                return message, payload
        self.transcript.got.append(got)
        raise CheckFailed(expecting, got)

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
        try:
            return self.expect_ask(field)
        except CheckFailed as e:
            raise CheckFailed(
                f"{e.expected} again: after an error that leaves the connection "
                "open, the pending question is sent again",
                e.got,
            ) from None

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
CLOSED = ("the connection closed", RESET)


def _wanted(kind, members):
    shown = ", ".join(
        f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in members.items()
    )
    return f"{kind} ({shown})" if shown else kind


def header_of(length):
    """
    A bare length header (for framing checks).
    """
    return HEADER.pack(length)
