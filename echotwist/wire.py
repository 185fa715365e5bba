# -*- test-case-name: tests.test_wire -*-
"""
The echolab frame, shared by every peer: a 4-byte unsigned big-endian
length, then that many bytes of UTF-8 JSON holding one object (lab task 7).

This module needs no Twisted, so a plain blocking client can use it:
L{MessageSocket} is a C{socket.socket} that sends and receives whole
frames, as text (C{str}) or as JSON messages (C{dict}).
"""

import socket
import struct

import msgspec

HEADER = struct.Struct("!I")
"""The length prefix: 4 bytes, unsigned, network (big-endian) order."""

HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 2**32 - 1
"""The largest payload a 4-byte length can describe."""

DEFAULT_MAX_MESSAGE = 65536
"""The server's default limit on an incoming payload (C{--max-message})."""

CLIENT_FRAME_FACTOR = 8
"""
A server's own frames are not bound by its C{max_message} (escaping can make
an echo longer than the say); clients accept this many times more.
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class FrameError(Exception):
    """
    A frame or its payload breaks the wire format.
    """


class IncompleteFrame(FrameError, EOFError):
    """
    The connection ended in the middle of a frame.
    """


header = HEADER.pack
"""
C{header(length)}: the length prefix of a payload of C{length} bytes, for
writers that send it and the payload as two pieces (no copy of the payload).
"""


def frame(payload):
    """
    Prefix C{payload} with its length.

    @type payload: L{bytes}
    @rtype: L{bytes}
    """
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(f"payload of {len(payload)} bytes does not fit a frame")
    return header(len(payload)) + payload


def split_frames(data):
    """
    The payloads of C{data}, a whole number of frames.

    @type data: L{bytes}
    @rtype: L{list} of L{bytes}
    @raise IncompleteFrame: if C{data} ends in the middle of a frame.
    """
    payloads = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_SIZE:
            raise IncompleteFrame("the data ends inside a length prefix")
        (length,) = HEADER.unpack_from(data, offset)
        start = offset + HEADER_SIZE
        offset = start + length
        if offset > len(data):
            raise IncompleteFrame("the data ends inside a payload")
        payloads.append(data[start:offset])
    return payloads


def encode_text(text):
    """
    Encode C{text} as a framed UTF-8 payload.

    @type text: L{str}
    @rtype: L{bytes}
    """
    return frame(text.encode("utf-8"))


def encode_message(message):
    """
    Encode a message as compact UTF-8 JSON, non-ASCII text left unescaped.

    @param message: a JSON object, with a string C{type}.
    @type message: L{dict}
    @rtype: L{bytes} (the payload, without the length prefix)
    """
    return _encode(message)


def decode_message(payload):
    """
    Decode one payload into a message, checking only what every message
    shares: UTF-8 JSON (RFC 8259) holding an object with a string C{type}.

    @type payload: L{bytes}
    @rtype: L{dict}
    @raise FrameError: for anything else.
    """
    try:
        message = _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FrameError(f"not UTF-8 JSON: {e}") from None
    if not isinstance(message, dict):
        raise FrameError("not a JSON object")
    if not isinstance(message.get("type"), str):
        raise FrameError("no string member 'type'")
    return message


class MessageSocket(socket.socket):
    """
    A TCP socket speaking echolab frames (lab task 7).

    Use it as any socket; the extra methods send and receive whole frames::

        with MessageSocket.connect_to(("127.0.0.1", 9090)) as s:
            print(s.recv_message())          # the welcome
            s.send_message({"type": "say", "text": "hi"})
            print(s.recv_message())          # the echo

    @ivar max_frame: the largest payload C{recv_*} accepts; bigger frames
        raise L{FrameError} before anything is allocated for them.
    """

    max_frame = DEFAULT_MAX_MESSAGE * CLIENT_FRAME_FACTOR

    @classmethod
    def connect_to(cls, address, timeout=None):
        """
        Connect to C{address} (host, port), trying each address the host
        name resolves to, like L{socket.create_connection}.
        """
        host, port = address
        error = None
        for family, type_, proto, _, sockaddr in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        ):
            sock = cls(family, type_, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                error = e
                sock.close()
        raise error or OSError(f"cannot resolve {host!r}")

    def accept(self):
        """
        Accept a connection as a L{MessageSocket} too.
        """
        fd, address = self._accept()
        sock = type(self)(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, address

    def send_bytes(self, payload):
        """
        Send C{payload} as one frame.
        """
        self.sendall(frame(payload))

    def recv_bytes(self):
        """
        Receive one frame's payload.

        @raise IncompleteFrame: if the peer closed in mid-frame.
        @raise EOFError: if the peer closed between frames.
        @raise FrameError: if the frame is larger than L{max_frame}.
        """
        header = self._recv_exactly(HEADER_SIZE, between_frames=True)
        (length,) = HEADER.unpack(header)
        if length > self.max_frame:
            raise FrameError(f"frame of {length} bytes is over {self.max_frame}")
        return self._recv_exactly(length)

    def send_text(self, text):
        """
        Send C{text} (a L{str}) as one UTF-8 frame.
        """
        self.sendall(encode_text(text))

    def recv_text(self):
        """
        Receive one frame and decode it from UTF-8.

        @rtype: L{str}
        """
        payload = self.recv_bytes()
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FrameError(f"payload is not UTF-8: {e}") from None

    def send_message(self, message):
        """
        Send a message (a L{dict} with a string C{type}) as one frame.
        """
        self.send_bytes(encode_message(message))

    def recv_message(self):
        """
        Receive one message. A server's C{welcome} raises L{max_frame} to
        what that server may send (8 x its C{max_message}).

        @rtype: L{dict}
        """
        message = decode_message(self.recv_bytes())
        limit = message.get("max_message")
        if message["type"] == "welcome" and type(limit) is int and limit > 0:
            self.max_frame = max(self.max_frame, limit * CLIENT_FRAME_FACTOR)
        return message

    def _recv_exactly(self, size, between_frames=False):
        """
        Read exactly C{size} bytes, however the network splits them.
        """
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = self.recv_into(view[got:])
            if n == 0:
                if between_frames and got == 0:
                    raise EOFError("connection closed")
                raise IncompleteFrame(
                    f"connection closed after {got} of {size} bytes of a frame"
                )
            got += n
        return bytes(buffer)
