# -*- test-case-name: tests.test_trace -*-
"""
C{--trace}: every frame in and out of each framed connection, decoded and
written as a line a person can read, with passwords and tokens shown only
as C{<redacted>}, and protocol mistakes explained (L{echotwist.explain}).

It costs nothing when off: only with C{--trace} does the factory build
L{TracedServerProtocol}s, whose transport is wrapped to see what they
write. The plain L{echotwist.protocol.ServerProtocol} has no trace code.
"""

import time

from twisted.logger import Logger, formatTime
from twisted.python.logfile import LogFile
from zope.interface import directlyProvides, providedBy

from echotwist import messages as m
from echotwist.explain import headerless
from echotwist.output import close_writing
from echotwist.protocol import ServerProtocol, describe_peer
from echotwist.wire import (
    HEADER,
    HEADER_SIZE,
    FrameError,
    decode_message,
    encode_message,
)

REDACTED = "<redacted>"
SHOWN = 200  # characters of a text (or bytes of a refused payload) shown
# Words that make a refused payload unsafe to show: it may hold a secret.
_SECRET_WORDS = (b"password", b"token", b"value")


class Tracer:
    """
    Where trace lines go: the server's log, or a file of their own.

    @ivar write: writes one line.
    """

    def __init__(self, write):
        self.write = write
        self._connections = 0

    @classmethod
    def to_log(cls):
        log = Logger(namespace="echotwist.trace")
        return cls(lambda line: log.info("{line}", line=line))

    @classmethod
    def to_file(cls, path, rotate_bytes, keep):
        """
        Lines in C{path} (mode 0600), rotated as the log is.

        @return: the L{Tracer} and its L{LogFile}, to close at the end.
        """
        logfile = LogFile.fromFullPath(
            path, rotateLength=rotate_bytes, maxRotatedFiles=keep, defaultMode=0o600
        )

        def write(line):
            logfile.write(f"{formatTime(time.time())} {line}\n".encode("utf-8"))

        return cls(write), logfile

    def number(self):
        """A number for a new connection, telling its lines apart."""
        self._connections += 1
        return self._connections


def _short(text):
    if len(text) <= SHOWN:
        return text
    return f"{text[:SHOWN]}... ({len(text)} characters)"


def _shown(message):
    """One message as compact JSON, long texts cut."""
    shown = {k: _short(v) if isinstance(v, str) else v for k, v in message.items()}
    return encode_message(shown).decode("utf-8")


def _secret_pending(session):
    return session is not None and session.pending in m.SECRET_FIELDS


def client_message(message, session):
    """
    A decoded client message (a L{m.ClientMessage}) as a dict, its secrets
    redacted: a token, and the value of an answer to a password question
    (or of any answer while one is pending: it may be a password typed
    out of turn).
    """
    shown = {"type": message.__struct_config__.tag}
    for name in message.__struct_fields__:
        shown[name] = getattr(message, name)
    if isinstance(message, m.Token):
        shown["token"] = REDACTED
    elif isinstance(message, m.Answer):
        if message.field in m.SECRET_FIELDS or _secret_pending(session):
            shown["value"] = REDACTED
    return shown


def refused_payload(payload, session):
    """
    A payload that is not a message, shown as bytes if it cannot hold a
    secret, else only its size.
    """
    lowered = payload.lower()
    if _secret_pending(session) or any(w in lowered for w in _SECRET_WORDS):
        return f"{REDACTED} ({len(payload)} bytes)"
    text = payload[:SHOWN].decode("utf-8", "backslashreplace")
    more = f"... ({len(payload)} bytes)" if len(payload) > SHOWN else ""
    return repr(text) + more


class ConnectionTrace:
    """
    The trace of one connection: its frames in (from the protocol) and out
    (from its transport, re-split into frames).
    """

    def __init__(self, tracer, protocol):
        self._tracer = tracer
        self._protocol = protocol
        self._number = tracer.number()
        self._peer = None
        self._out = bytearray()

    def line(self, direction, text):
        if self._peer is None:
            protocol = self._protocol
            peer = protocol.transport.getPeer()
            self._peer = describe_peer(peer, protocol.address or "?")
        self._tracer.write(f"#{self._number} {self._peer} {direction} {text}")

    def incoming(self, payload, session):
        try:
            message = m.decode_client_message(payload)
        except m.BadMessage as e:
            shown = refused_payload(payload, session)
            self.line("in ", f"{shown}, not a message: {e}")
            return
        self.line("in ", _shown(client_message(message, session)))

    def too_large(self, length, limit):
        hint = headerless(length)
        if hint is None:
            hint = f"a header announcing {length:,} bytes"
        self.line("in ", f"{hint} (the limit is {limit:,})")

    def outgoing(self, data):
        """
        Bytes written: trace each frame they complete.
        """
        out = self._out
        out += data
        while len(out) >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(out)
            end = HEADER_SIZE + length
            if len(out) < end:
                return
            payload = bytes(out[HEADER_SIZE:end])
            del out[:end]
            self._frame_out(payload)

    def _frame_out(self, payload):
        try:
            message = decode_message(payload)
        except FrameError as e:  # (never from this server)
            self.line("out", f"{len(payload)} bytes, not a message: {e}")
            return
        if "token" in message:
            message["token"] = REDACTED
        self.line("out", _shown(message))


class TracingTransport:
    """
    A connection's transport, seen through: what is written is traced,
    everything else is the transport's own (its interfaces included).
    """

    def __init__(self, transport, trace):
        self._transport = transport
        self._trace = trace
        directlyProvides(self, providedBy(transport))

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def write(self, data):
        self._trace.outgoing(data)
        self._transport.write(data)

    def writeSequence(self, pieces):
        for data in pieces:
            self._trace.outgoing(data)
        self._transport.writeSequence(pieces)

    def loseWriteConnection(self):
        close_writing(self._transport)  # (its own choice, as if unwrapped)


class TracedServerProtocol(ServerProtocol):
    """
    A L{ServerProtocol} whose frames are traced.
    """

    def makeConnection(self, transport):
        self._trace = ConnectionTrace(self.factory.tracer, self)
        ServerProtocol.makeConnection(self, TracingTransport(transport, self._trace))

    def stringReceived(self, payload):
        self._trace.incoming(payload, self.session)
        ServerProtocol.stringReceived(self, payload)

    def lengthLimitExceeded(self, length):
        self._trace.too_large(length, self.MAX_LENGTH)
        ServerProtocol.lengthLimitExceeded(self, length)

    def connectionLost(self, reason):
        self._trace.line("---", f"closed: {reason.getErrorMessage()}")
        ServerProtocol.connectionLost(self, reason)


def trace(factory, tracer):
    """
    Make C{factory} (an L{echotwist.factory.EchoFactory}) build traced
    connections, their lines going to C{tracer}.
    """
    factory.protocol = TracedServerProtocol
    factory.tracer = tracer
