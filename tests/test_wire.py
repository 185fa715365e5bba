"""
Tests for L{echotwist.wire}: the frame format and L{MessageSocket}, the
plain-socket helpers of lab task 7.
"""

import socket
import threading

from twisted.trial.unittest import SynchronousTestCase

from echotwist.wire import (
    HEADER,
    FrameError,
    IncompleteFrame,
    MessageSocket,
    decode_message,
    encode_message,
    encode_text,
    frame,
    split_frames,
)


def pair():
    """
    Two connected L{MessageSocket}s.
    """
    a, b = socket.socketpair()
    return MessageSocket(fileno=a.detach()), MessageSocket(fileno=b.detach())


class FormatTests(SynchronousTestCase):
    def test_header(self):
        """
        The header is the payload length in 4 bytes, big-endian, unsigned.
        """
        self.assertEqual(frame(b"abc"), b"\x00\x00\x00\x03abc")
        self.assertEqual(HEADER.pack(2**32 - 1), b"\xff\xff\xff\xff")

    def test_text(self):
        """
        Text frames are UTF-8; the length counts bytes, not characters.
        """
        self.assertEqual(encode_text("жук"), b"\x00\x00\x00\x06" + "жук".encode())

    def test_messages(self):
        """
        Messages are compact UTF-8 JSON without \\u escapes, and round-trip.
        """
        message = {"type": "say", "text": "привет 🌍", "repeat": 2}
        payload = encode_message(message)
        self.assertEqual(
            payload, '{"type":"say","text":"привет 🌍","repeat":2}'.encode()
        )
        self.assertEqual(decode_message(payload), message)

    def test_bad_payloads(self):
        """
        Payloads that are not a JSON object with a string type are refused.
        """
        for payload in [b"\xff", b"[]", b'{"type":1}', b"{}", b"nope", b"[" * 10_000]:
            self.assertRaises(FrameError, decode_message, payload)


class MessageSocketTests(SynchronousTestCase):
    def setUp(self):
        self.a, self.b = pair()
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)

    def test_text_round_trip(self):
        """
        C{send_text} and C{recv_text} carry a C{str}, whatever its bytes.
        """
        for text in ["", "hello", "привет 🌍", "x" * 100_000]:
            self.a.send_text(text)
            self.assertEqual(self.b.recv_text(), text)

    def test_message_round_trip(self):
        """
        C{send_message} and C{recv_message} carry a JSON object.
        """
        self.a.send_message({"type": "say", "text": "hi"})
        self.assertEqual(self.b.recv_message(), {"type": "say", "text": "hi"})

    def test_short_reads(self):
        """
        A frame arriving a byte at a time is received whole.
        """
        data = frame("по байту".encode()) * 3

        def trickle():
            for i in range(len(data)):
                self.a.sendall(data[i : i + 1])

        thread = threading.Thread(target=trickle)
        thread.start()
        received = [self.b.recv_text() for _ in range(3)]
        thread.join()
        self.assertEqual(received, ["по байту"] * 3)

    def test_eof_mid_frame(self):
        """
        The connection ending inside a frame (in its header or its payload)
        raises L{IncompleteFrame}, saying how much arrived.
        """
        for partial in [b"\x00\x00", b"\x00\x00\x00\x05ab"]:
            a, b = pair()
            a.sendall(partial)
            a.close()
            e = self.assertRaises(IncompleteFrame, b.recv_bytes)
            self.assertIn("connection closed after", str(e))
            b.close()

    def test_eof_between_frames(self):
        """
        The connection ending between frames raises L{EOFError} (of which
        L{IncompleteFrame} is a kind), not L{IncompleteFrame}.
        """
        self.a.send_text("last")
        self.a.close()
        self.assertEqual(self.b.recv_text(), "last")
        e = self.assertRaises(EOFError, self.b.recv_text)
        self.assertNotIsInstance(e, IncompleteFrame)

    def test_too_large(self):
        """
        A frame longer than C{max_frame} is refused before it is read.
        """
        self.b.max_frame = 10
        self.a.sendall(HEADER.pack(11))
        self.assertRaises(FrameError, self.b.recv_bytes)

    def test_welcome_raises_limit(self):
        """
        A server's welcome raises the frame limit to 8 x its max_message,
        so its long echoes are accepted.
        """
        self.a.send_message(
            {
                "type": "welcome",
                "server": "echolab",
                "mode": "echo",
                "max_message": 10**6,
            }
        )
        self.b.recv_message()
        self.assertEqual(self.b.max_frame, 8 * 10**6)

    def test_not_utf8(self):
        """
        C{recv_text} refuses a payload that is not UTF-8.
        """
        self.a.send_bytes(b"\xff\xfe")
        self.assertRaises(FrameError, self.b.recv_text)

    def test_accept(self):
        """
        A listening L{MessageSocket} accepts L{MessageSocket}s, and
        C{connect_to} connects one.
        """
        with MessageSocket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            with MessageSocket.connect_to(server.getsockname(), timeout=5) as client:
                peer, _ = server.accept()
                with peer:
                    self.assertIsInstance(peer, MessageSocket)
                    client.send_message({"type": "quit"})
                    self.assertEqual(peer.recv_message(), {"type": "quit"})


class SplitFramesTests(SynchronousTestCase):
    def test_split(self):
        """
        Frames written back to back split into their payloads, empty ones
        included.
        """
        data = frame(b"one") + frame(b"") + frame("два".encode())
        self.assertEqual(split_frames(data), [b"one", b"", "два".encode()])

    def test_incomplete(self):
        """
        Data that ends inside a prefix or a payload is refused.
        """
        for cut in (2, 6):
            with self.assertRaises(IncompleteFrame):
                split_frames(frame(b"payload")[:cut])
