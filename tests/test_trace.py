"""
Tests for L{echotwist.trace}: C{--trace} lines, their redaction, and that
nothing is traced (or wrapped) when it is off.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from echotwist import tap
from echotwist.protocol import ServerProtocol
from echotwist.trace import REDACTED, TracedServerProtocol, Tracer, trace
from tests.helpers import Conversation, frame, make_factory
from tests.test_twistd import Server

PASSWORD = "a fine passphrase"


class TraceTests(SynchronousTestCase):
    def connect(self, mode="auth"):
        self.lines = []
        factory = make_factory(self, mode)
        trace(factory, Tracer(self.lines.append))
        c = Conversation(factory, host="10.0.0.7", port=40000)
        c.replies()
        return c

    def text(self):
        return "\n".join(self.lines)

    def test_frames_in_and_out(self):
        """
        Every frame, both ways, one line each: connection, direction,
        the message.
        """
        c = self.connect("echo")
        c.send({"type": "say", "text": "hi", "repeat": 2})
        self.assertEqual(
            self.lines[-3:],
            [
                '#1 10.0.0.7:40000 in  {"type":"say","text":"hi","repeat":2}',
                '#1 10.0.0.7:40000 out {"type":"echo","text":"hi","n":1,"of":2}',
                '#1 10.0.0.7:40000 out {"type":"echo","text":"hi","n":2,"of":2}',
            ],
        )
        self.assertIn('"type":"welcome"', self.lines[0])
        c.lose()
        self.assertEqual(
            self.lines[-1],
            "#1 10.0.0.7:40000 --- closed: Connection was closed cleanly.",
        )

    def test_the_client_sees_the_same(self):
        """
        Tracing changes nothing the client gets.
        """
        c = self.connect("echo")
        c.send({"type": "say", "text": "x" * 5000}, {"type": "quit"})
        self.assertEqual(c.types(), ["echo", "bye"])
        self.assertIn("... (5000 characters)", self.text())

    def test_passwords_and_tokens_redacted(self):
        """
        Passwords (new or not), tokens in and out: only <redacted>.
        """
        c = self.connect()
        c.send(
            {"type": "answer", "field": "login", "value": "zoe"},
            {"type": "answer", "field": "new_password", "value": PASSWORD},
        )
        token = [r for r in c.replies() if r["type"] == "auth_ok"][0]["token"]
        c.send({"type": "token", "token": token})
        c.lose()
        c = Conversation(c.factory)
        c.send(
            {"type": "answer", "field": "login", "value": "zoe"},
            {"type": "answer", "field": "password", "value": PASSWORD},
        )
        text = self.text()
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn(token, text)
        self.assertIn(f'"field":"new_password","value":"{REDACTED}"', text)
        self.assertIn(f'"field":"password","value":"{REDACTED}"', text)
        self.assertIn(f'"token":"{REDACTED}","expires"', text)
        self.assertIn(f'{{"type":"token","token":"{REDACTED}"}}', text)

    def test_secret_out_of_turn_redacted(self):
        """
        While a password is asked for, any answer may hold one (a client
        confused about the field): its value is redacted too, and so is a
        refused payload that may hold a secret.
        """
        c = self.connect()
        c.send({"type": "answer", "field": "login", "value": "zoe"})
        c.send({"type": "answer", "field": "login", "value": PASSWORD})
        c.send_bytes(
            frame(
                b'{"type":"answer","field":"new_password" "value":"%s"}'
                % PASSWORD.encode()
            )
        )
        self.assertNotIn(PASSWORD, self.text())
        self.assertIn(
            "<redacted> (68 bytes), not a message: JSON syntax error", self.text()
        )

    def test_refused_payload_shown_when_safe(self):
        """
        A refused payload that cannot hold a secret is shown, with why.
        """
        c = self.connect("echo")
        c.send_bytes(frame(b'{"type":"say","text":3}'))
        self.assertIn(
            """in  '{"type":"say","text":3}', not a message: in a 'say' message, """
            "'text' must be a string, not an integer",
            self.text(),
        )

    def test_bad_state_expected(self):
        """
        A message not allowed now: the log says what is expected instead.
        """
        c = self.connect("ident")
        c.send({"type": "say", "text": "hi"})
        self.assertIn(
            '"code":"bad_state","text":"identify first: answer the pending '
            "question; expected now: an answer with field 'name', or quit\"}",
            self.text(),
        )

    def test_headerless(self):
        """
        Bytes without a header: the trace says what they were read as.
        """
        c = self.connect("echo")
        c.send_bytes(b"hello, world!")
        self.assertIn(
            "in  the first 4 bytes 'hell' read as a length of 1,751,477,356: "
            "did you forget the 4-byte header? (the limit is 65,536)",
            self.text(),
        )
        self.assertIn('out {"type":"error","code":"too_large"', self.text())


class OffByDefaultTests(SynchronousTestCase):
    def factory(self, *args):
        options = tap.Options()
        options._stdin = None
        options.parseOptions(
            ["--port", "0", "--mode", "echo", "--data-dir", self.mktemp(), *args]
        )
        return tap.makeService(options).factory

    def test_off(self):
        """
        Without --trace, connections are the plain, untraced protocol.
        """
        self.assertIs(self.factory().protocol, ServerProtocol)

    def test_on(self):
        self.assertIs(self.factory("--trace").protocol, TracedServerProtocol)


class TraceFileTests(SynchronousTestCase):
    def test_trace_file(self):
        """
        --trace-file: the lines go to a file of their own (mode 0600), not
        the log.
        """
        data = os.path.abspath(self.mktemp())
        path = os.path.join(data, "trace.log")
        server = Server(
            self,
            "--port",
            "0",
            "--mode",
            "echo",
            "--data-dir",
            data,
            "--trace-file",
            path,
        )
        with server.connect() as s:
            s.send_message({"type": "say", "text": "traced"})
            s.recv_message()
        server.stop()
        with open(path) as f:
            self.assertIn('in  {"type":"say","text":"traced","repeat":1}', f.read())
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(os.path.join(data, "echolab.log")) as f:
            self.assertNotIn("traced", f.read())
