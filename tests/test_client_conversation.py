"""
Tests for L{echotwist.client.conversation}: what the client sends and
shows for each server message and each line, with a fake connection and
console (the end-to-end tests in L{tests.test_client} run the real ones).
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from echotwist.client import connect
from echotwist.client.conversation import Conversation, printable
from echotwist.client.ending import EXIT_REFUSED
from echotwist.client.presets import Presets
from echotwist.client.profile import Profile
from echotwist.client.protocol import ClientProtocol
from echotwist.wire import encode_message

from .helpers import frame, unframe

KEY = "localhost:9090"


def welcome(mode="auth"):
    return {
        "type": "welcome",
        "server": "echolab",
        "version": "1.0.0",
        "mode": mode,
        "max_message": 200,
    }


def ask(field, secret=False):
    return {
        "type": "ask",
        "field": field,
        "text": field.capitalize() + ":",
        "secret": secret,
    }


class FakePeer:
    max_message = 200

    def __init__(self):
        self.sent = []
        self.closed = self.aborted = False

    def send(self, message):
        self.sent.append(message)

    def payload_size(self, message):
        return len(encode_message(message))

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


class FakeConsole:
    def __init__(self, interactive):
        self.interactive = interactive
        self.output = []
        self.hidden = False
        self.hidden_at_prompt = []

    def show(self, line):
        self.output.append(line)

    def prompt(self, text, recording=False):
        self.output.append(text)
        self.hidden_at_prompt.append((text, self.hidden))

    def hide_input(self, hidden):
        self.hidden = hidden

    @property
    def text(self):
        return "\n".join(self.output)


class ConversationTests(SynchronousTestCase):
    def start(self, interactive=False, secure=True, token=None, presets=None):
        self.profile = Profile(self.mktemp(), clock=lambda: 1000)
        if token is not None:
            self.profile.save_token(KEY, "alice", token, 2000)
        self.peer = FakePeer()
        self.console = FakeConsole(interactive)
        self.conversation = Conversation(
            self.peer,
            self.console,
            self.profile,
            KEY,
            KEY,
            secure,
            "10.1.2.3 is not this machine and the connection is not encrypted",
            presets=presets,
        )
        return self.conversation

    def receive(self, *messages):
        for message in messages:
            self.conversation.message_received(message)

    def test_token_sent_at_once(self):
        """
        In auth mode a saved token goes out right after welcome, and the
        server's login question is not put to the person meanwhile.
        """
        self.start(interactive=True, token="T")
        self.receive(welcome(), ask("login"))
        self.assertEqual(self.peer.sent, [{"type": "token", "token": "T"}])
        self.assertNotIn("Login: ", self.console.output)
        self.receive(
            {"type": "auth_ok", "login": "alice", "via": "token"},
            {
                "type": "greet",
                "name": "alice",
                "known": True,
                "text": "Welcome back, alice!",
            },
        )
        self.assertTrue(self.conversation.ready)
        self.assertIn("Welcome back, alice!", self.console.output)

    def test_bad_token_forgotten(self):
        """
        A refused token is deleted from the profile, and the login question
        the server asks again is put to the person.
        """
        self.start(interactive=True, token="T")
        self.receive(
            welcome(),
            ask("login"),
            {"type": "error", "code": "bad_token", "text": "unknown token"},
            ask("login"),
        )
        self.assertIsNone(self.profile.entry(KEY))
        self.assertEqual(self.console.output.count("Login: "), 1)
        self.assertIn(
            "error (bad_token): the token is not valid (revoked, expired or unknown)",
            self.console.output,
        )

    def test_token_saved(self):
        """
        The token of every auth_ok that carries one is saved for the server.
        """
        self.start()
        self.receive(
            welcome(),
            {
                "type": "auth_ok",
                "login": "Bob",
                "via": "register",
                "token": "NEW",
                "expires": 1500,
            },
        )
        self.assertEqual(self.profile.entry(KEY)["token"], "NEW")
        self.assertIn("Registered Bob; token saved for next time.", self.console.output)

    def test_secret_hidden(self):
        """
        On a terminal, echo is off before a secret question shows and back
        on once it is answered; the answer goes out as typed.
        """
        self.start(interactive=True)
        self.receive(welcome(), ask("login"))
        self.conversation.line_received(" alice ")
        self.receive(ask("password", secret=True))
        self.assertEqual(self.console.hidden_at_prompt[-1], ("Password: ", True))
        self.conversation.line_received(" pass word ")
        self.assertFalse(self.console.hidden)
        self.assertEqual(
            self.peer.sent,
            [
                {"type": "answer", "field": "login", "value": "alice"},
                {"type": "answer", "field": "password", "value": " pass word "},
            ],
        )

    def test_password_field_hidden_whatever_the_flag(self):
        """
        A password question is read with echo off, and its answer goes out
        as typed, even when the server marks it C{secret: false}: the field
        says what the answer is, not the flag.
        """
        self.start(interactive=True)
        self.receive(welcome("ident"), ask("password", secret=False))
        self.assertEqual(self.console.hidden_at_prompt[-1], ("Password: ", True))
        self.conversation.line_received(" pass word ")
        self.assertFalse(self.console.hidden)
        self.assertEqual(
            self.peer.sent,
            [{"type": "answer", "field": "password", "value": " pass word "}],
        )

    def test_new_password_twice(self):
        """
        On a terminal, a new password is typed twice; when the two differ
        the question is asked again and nothing is sent.
        """
        self.start(interactive=True)
        self.receive(welcome(), ask("login"))
        self.conversation.line_received("bob")
        self.receive(ask("new_password", secret=True))
        self.assertIn("is a new login on this server", self.console.text)
        for line in ["first-try-1", "first-try-2", "same-secret", "same-secret"]:
            self.conversation.line_received(line)
        self.assertIn("  The two passwords differ; try again.", self.console.output)
        self.assertEqual(
            self.peer.sent[-1],
            {"type": "answer", "field": "new_password", "value": "same-secret"},
        )
        self.assertEqual(len(self.peer.sent), 2)

    def test_bad_login_asked_again(self):
        """
        A login the server would refuse gets a reason and the question
        again, without a round trip.
        """
        self.start(interactive=True)
        self.receive(welcome(), ask("login"))
        self.conversation.line_received("no spaces please")
        self.assertEqual(self.peer.sent, [])
        self.assertEqual(
            self.console.output[-2:],
            ["  a login may hold only A-Z a-z 0-9 . _ -; try again.", "Login: "],
        )

    def test_insecure_refused(self):
        """
        Over plain TCP to a host that is not loopback, no token and no
        password is sent: the client says why and leaves.
        """
        self.start(secure=False, token="T")
        self.receive(welcome())
        self.assertEqual(self.peer.sent, [{"type": "quit"}])
        self.assertIn(
            "Refusing to send a password or a token in clear text: "
            "10.1.2.3 is not this machine",
            self.console.text,
        )
        self.assertEqual(self.conversation.code, EXIT_REFUSED)

    def test_insecure_echo_mode_fine(self):
        """
        Echo mode sends no secret, so it works over plain TCP anywhere.
        """
        self.start(secure=False)
        self.receive(welcome("echo"))
        self.conversation.line_received("hi")
        self.assertEqual(self.peer.sent, [{"type": "say", "text": "hi"}])

    def test_script_lines_wait(self):
        """
        From a pipe, lines are only ever said: they wait for the session to
        be ready, each for the replies to the one before, and the end of
        input for the last reply; the questions are answered from the
        options (the password from --password-file), never from the lines.
        """
        self.start(interactive=False, presets=Presets("alice", None, "pw", "-f"))
        for line in ["one", "/repeat 2 two"]:
            self.conversation.line_received(line)
        self.conversation.input_ended()
        self.assertEqual(self.peer.sent, [])
        self.receive(welcome(), ask("login"))
        self.assertEqual(self.peer.sent[-1]["value"], "alice")
        self.receive(ask("password", secret=True))
        self.assertEqual(self.peer.sent[-1]["value"], "pw")
        self.assertNotIn("pw", self.console.text)
        self.receive(
            {
                "type": "auth_ok",
                "login": "alice",
                "via": "password",
                "token": "N",
                "expires": 1500,
            },
            {"type": "greet", "name": "alice", "known": True, "text": "Hi"},
        )
        self.assertEqual(self.peer.sent[-1], {"type": "say", "text": "one"})
        self.receive({"type": "echo", "text": "one"})
        self.assertEqual(
            self.peer.sent[-1], {"type": "say", "text": "two", "repeat": 2}
        )
        self.receive({"type": "echo", "text": "two", "n": 1, "of": 2})
        self.assertEqual(self.peer.sent[-1]["type"], "say")
        self.receive({"type": "echo", "text": "two", "n": 2, "of": 2})
        self.assertEqual(self.peer.sent[-1], {"type": "quit"})
        self.assertIn("echo 2/2: two", self.console.output)

    def test_script_never_answers_from_its_lines(self):
        """
        A script whose options do not answer the server's question fails
        its login (status 3) and says nothing of its lines.
        """
        self.start(interactive=False)
        self.conversation.line_received("alice")
        self.conversation.line_received("robot-password-1234")
        self.receive(welcome(), ask("login"))
        self.assertEqual(self.peer.sent, [{"type": "quit"}])
        self.assertIn("Login failed", self.console.text)
        self.assertIn("--login", self.console.text)
        self.conversation.connection_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(self.conversation.done), 3)

    def test_script_password_refused(self):
        """
        A password from the options that the server refuses is not sent
        again: the login failed, status 3.
        """
        self.start(interactive=False, presets=Presets("alice", None, "pw", "-f"))
        self.receive(welcome(), ask("login"), ask("password", secret=True))
        self.receive(
            {"type": "error", "code": "bad_password", "text": "wrong password"},
            ask("password", secret=True),
        )
        self.assertEqual(self.peer.sent[-1], {"type": "quit"})
        self.assertEqual([m.get("value") for m in self.peer.sent].count("pw"), 1)
        self.assertIn("the server refused the password", self.console.text)
        self.conversation.connection_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(self.conversation.done), 3)

    def test_script_with_token_says_its_lines_only(self):
        """
        With a saved token a script's lines are all said, in order, after
        the login: none was an answer.
        """
        self.start(interactive=False, token="T")
        self.conversation.line_received("hi")
        self.receive(
            welcome(),
            {"type": "auth_ok", "login": "alice", "via": "token"},
            {"type": "greet", "name": "alice", "known": True, "text": "Hi"},
        )
        self.assertEqual(
            self.peer.sent,
            [{"type": "token", "token": "T"}, {"type": "say", "text": "hi"}],
        )

    def test_terminal_lines_refused_while_waiting(self):
        """
        On a terminal, a line typed while the client waits for the server
        is not sent, and the person is told.
        """
        self.start(interactive=True)
        self.receive(welcome(), ask("login"))
        self.conversation.line_received("alice")
        self.conversation.line_received("too early")
        self.assertEqual(len(self.peer.sent), 1)
        self.assertIn(
            "(waiting for the server; that line was not sent)", self.console.output
        )

    def test_commands(self):
        """
        /repeat checks its count, unknown commands get a hint, // escapes
        a leading slash, and a line too long for the server is kept back.
        """
        self.start(interactive=True)
        self.receive(welcome("echo"))
        for line in [
            "/repeat 0 x",
            "/repeat 101 x",
            "/repeat two x",
            "/repeat 3",
            "/nope",
            "//etc",
            "x" * 300,
            "/repeat 3 x",
        ]:
            self.conversation.line_received(line)
        self.assertEqual(
            self.peer.sent,
            [
                {"type": "say", "text": "/etc"},
                {"type": "say", "text": "x", "repeat": 3},
            ],
        )
        text = self.console.text
        self.assertEqual(text.count("usage: /repeat N text, N from 1 to 100"), 4)
        self.assertIn("Unknown command /nope; /help lists the commands.", text)
        self.assertIn("That line is too long", text)

    def test_logout(self):
        """
        /logout forgets the saved token and asks the server to revoke it;
        the session then ends with status 0.
        """
        self.start(interactive=True, token="T")
        self.receive(
            welcome(),
            {"type": "auth_ok", "login": "alice", "via": "token"},
            {"type": "greet", "name": "alice", "known": True, "text": "Hi"},
        )
        self.conversation.line_received("/logout")
        self.assertEqual(self.peer.sent[-1], {"type": "logout"})
        self.assertIsNone(self.profile.entry(KEY))
        self.receive({"type": "bye", "text": "Logged out."})
        self.conversation.connection_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(self.conversation.done), 0)

    def test_closed_by_server(self):
        """
        A session the server ends on its own ends with status 1, its
        reason shown.
        """
        self.start()
        self.receive(
            welcome("echo"),
            {"type": "error", "code": "timeout", "text": "idle for too long"},
            {"type": "bye", "text": "Timed out; closing."},
        )
        self.conversation.connection_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(self.conversation.done), 1)
        self.assertIn("error (timeout): timed out", self.console.output)
        self.assertIn("The server ended the session: timed out", self.console.output)

    def test_interrupted(self):
        """
        Ctrl-C sends quit and closes; a second one aborts.
        """
        self.start(interactive=True)
        self.receive(welcome(), ask("password", secret=True))
        self.conversation.interrupted()
        self.assertFalse(self.console.hidden)
        self.assertEqual(self.peer.sent, [{"type": "quit"}])
        self.assertTrue(self.peer.closed)
        self.conversation.interrupted()
        self.assertTrue(self.peer.aborted)
        self.conversation.connection_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(self.conversation.done), 130)

    def test_server_text_shown_safely(self):
        """
        An escape sequence in a server message reaches the console escaped,
        in prompts too (a question this client has no words of its own for).
        """
        self.start(interactive=True)
        self.receive(
            welcome("ident"),
            {"type": "ask", "field": "colour", "text": "Colour?\x1b[2J"},
            {"type": "bye", "text": "\x1b[31mred"},
        )
        self.assertIn("Colour?\\x1b[2J ", self.console.output)
        self.assertIn("The server ended the session: \\x1b[31mred", self.console.text)


PASSWORD = "correct horse battery"
TOKEN = "saved-token-0123456789"


class ClearTextTests(SynchronousTestCase):
    """
    A plain connection to a peer that is not this machine, wired as the
    client wires it (L{connect.secrets_allowed} judges the peer's address):
    a server there, or anyone on the way, gets no password and no token
    whatever mode and flags it claims.
    """

    def connect(self, interactive=True, insecure=False, token=None):
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "192.0.2.7", 9090)
        )
        self.protocol = ClientProtocol()
        self.protocol.makeConnection(self.transport)
        profile = Profile(self.mktemp(), clock=lambda: 1000)
        if token is not None:
            profile.save_token(KEY, "alice", token, 2000)
        secure, why = connect.secrets_allowed(self.transport.getPeer(), False, insecure)
        self.console = FakeConsole(interactive)
        self.conversation = Conversation(
            self.protocol, self.console, profile, KEY, KEY, secure, why
        )
        self.protocol.attach(self.conversation)

    def server_says(self, *messages):
        self.protocol.dataReceived(b"".join(frame(message) for message in messages))

    def type(self, *lines):
        for line in lines:
            self.conversation.line_received(line)

    def assertRefused(self, *secrets):
        """
        Nothing holding one of C{secrets} was written, only C{quit}; the
        person was told why and what to do, and the status is 1.
        """
        written = self.transport.value()
        for secret in secrets:
            self.assertNotIn(secret.encode("utf-8"), written)
        self.assertEqual(unframe(written)[-1:], [{"type": "quit"}])
        types = [message["type"] for message in unframe(written)]
        self.assertNotIn("token", types)
        self.assertIn("in clear text: 192.0.2.7 is not this machine", self.console.text)
        self.assertIn("Use --tls, or --insecure to send anyway.", self.console.text)
        self.assertEqual(self.conversation.code, EXIT_REFUSED)

    def test_password_marked_not_secret(self):
        """
        A server that says ident mode and asks C{password} with
        C{secret: false} does not get what the person types.
        """
        self.connect()
        self.server_says(welcome("ident"), ask("password", secret=False))
        self.type(PASSWORD)
        self.assertRefused(PASSWORD)

    def test_new_password_marked_not_secret(self):
        """
        Nor does one that asks C{new_password} so, in any mode, from a
        script or a terminal.
        """
        for mode in ["echo", "ident", "auth?", None]:
            for interactive in [False, True]:
                self.connect(interactive=interactive)
                self.server_says(welcome(mode), ask("new_password", secret=False))
                self.type(PASSWORD, PASSWORD)
                self.assertRefused(PASSWORD)

    def test_password_after_login(self):
        """
        A password asked for after an innocent login question is refused
        too; the login went out, the password does not.
        """
        self.connect()
        self.server_says(welcome("ident"), ask("login"))
        self.type("alice")
        self.server_says(ask("password"))
        self.type(PASSWORD)
        self.assertRefused(PASSWORD)
        self.assertEqual(
            unframe(self.transport.value()),
            [{"type": "answer", "field": "login", "value": "alice"}, {"type": "quit"}],
        )

    def test_unknown_field_is_secret(self):
        """
        A question the client does not know, however the server names it,
        is a password too: a server cannot rename the field to get one.
        """
        for field in ["pass", "Password", ["password"], None]:
            self.connect()
            self.server_says(
                welcome("ident"),
                {"type": "ask", "field": field, "text": "Password:", "secret": False},
            )
            self.type(PASSWORD)
            self.assertRefused(PASSWORD)

    def test_saved_token_not_sent(self):
        """
        A saved token never goes out automatically, whatever mode the
        server claims, and neither does the password it asks for next.
        """
        for mode in ["auth", "ident", "echo", "AUTH", None]:
            self.connect(token=TOKEN)
            self.server_says(welcome(mode), ask("login"))
            self.type("alice")
            self.server_says(ask("password"))
            self.type(PASSWORD)
            self.assertRefused(TOKEN, PASSWORD)

    def test_saved_token_not_sent_when_mode_changes(self):
        """
        A server that says another mode first and auth afterwards gets no
        token either.
        """
        self.connect(token=TOKEN)
        self.server_says(welcome("ident"), welcome("auth"))
        self.assertRefused(TOKEN)

    def test_insecure_sends(self):
        """
        With C{--insecure} the person chose to send it anyway: the password
        goes out, read with echo off all the same.
        """
        self.connect(insecure=True)
        self.server_says(welcome("ident"), ask("password", secret=False))
        self.assertEqual(self.console.hidden_at_prompt[-1], ("Password: ", True))
        self.type(PASSWORD)
        self.assertEqual(
            unframe(self.transport.value()),
            [{"type": "answer", "field": "password", "value": PASSWORD}],
        )


class PrintableTests(SynchronousTestCase):
    def test_escapes(self):
        """
        Terminal controls and bidi overrides from the server are shown as
        escapes; text, Cyrillic, emoji (joiners included) and tabs are not.
        """
        self.assertEqual(
            printable("\x1b]0;pwned\x07 \x9b2J"), "\\x1b]0;pwned\\x07 \\x9b2J"
        )
        self.assertEqual(printable("abc\u202egnp.exe"), "abc\\u202egnp.exe")
        self.assertEqual(printable("line\nbreak\r"), "line\\nbreak\\r")
        for text in ["plain", "Привет", "👨\u200d👩\u200d👧", "a\tb", "e\u0301"]:
            self.assertEqual(printable(text), text)


class ConsoleInputTests(SynchronousTestCase):
    """
    Lines typed (or piped) reach the conversation whole; a line over the
    limit is refused with a message, and the lines after it still count.
    """

    def feed(self, *chunks):
        from echotwist.client.stdio_console import PipeInput

        conversation = _LineRecorder()
        console_input = PipeInput(conversation)
        console_input.MAX_LENGTH = 10
        for chunk in chunks:
            console_input.dataReceived(chunk)
        console_input.readConnectionLost()
        return conversation

    def test_lines_after_a_long_line_in_the_same_read(self):
        conversation = self.feed(b"x" * 12 + b"\nhello\n/quit\n")
        self.assertEqual(conversation.lines, ["hello", "/quit", None])
        self.assertEqual(len(conversation.shown), 1)

    def test_long_line_over_several_reads(self):
        conversation = self.feed(b"a" * 8, b"a" * 8, b"aaaa\n/say one\n/quit\n")
        self.assertEqual(conversation.lines, ["/say one", "/quit", None])
        self.assertEqual(len(conversation.shown), 1)


class _LineRecorder:
    def __init__(self):
        self.lines = []
        self.shown = []

    def line_typed(self, line):
        self.lines.append(line)

    def hint(self, text):
        self.shown.append(text)

    def input_ended(self):
        self.lines.append(None)


class EndingTests(SynchronousTestCase):
    """
    Each way a session ends is one sentence, with its exit status.
    """

    def end(self, reason, *messages):
        peer, console = FakePeer(), FakeConsole(interactive=True)
        conversation = Conversation(
            peer, console, Profile(self.mktemp()), KEY, KEY, True
        )
        for message in messages:
            conversation.message_received(message)
        conversation.connection_lost(Failure(reason))
        return self.successResultOf(conversation.done), console.output

    def test_losses(self):
        """
        Without a word from the server: reset, timed out, TLS failure, or
        closed; status 1, and never Twisted's own wording.
        """
        from OpenSSL.SSL import Error as TLSError
        from twisted.internet.error import ConnectionLost, TCPTimedOutError

        for reason, sentence in [
            (ConnectionLost(), f"The connection to {KEY} was reset."),
            (TCPTimedOutError(), f"The connection to {KEY} timed out."),
            (
                TLSError([("SSL routines", "", "bad record mac")]),
                f"The TLS session with {KEY} failed; the connection is closed.",
            ),
            (
                ConnectionDone(),
                f"The server at {KEY} closed the connection without a word.",
            ),
        ]:
            code, shown = self.end(reason, welcome("echo"))
            self.assertEqual((code, shown[-1]), (1, sentence))
            self.assertNotIn("..", shown[-1])

    def test_statuses_from_the_servers_reasons(self):
        """
        The server's last error says which status its ending gives: busy is
        a refusal (4), too many wrong passwords a failed login (3), too
        many refused messages after login a refusal (4).
        """
        bye = {"type": "bye", "text": "closing"}
        busy = {"type": "error", "code": "busy", "text": "full"}
        attempts = {"type": "error", "code": "too_many_attempts", "text": "x"}
        greet = {"type": "greet", "name": "a", "known": True, "text": "Hi"}
        self.assertEqual(self.end(ConnectionDone(), busy, bye)[0], 4)
        self.assertEqual(self.end(ConnectionDone(), welcome(), attempts, bye)[0], 3)
        self.assertEqual(
            self.end(ConnectionDone(), welcome("echo"), greet, attempts, bye)[0], 4
        )
        code, shown = self.end(ConnectionDone(), welcome("echo"), bye)
        self.assertEqual(
            (code, shown[-1]), (1, "The server ended the session: closing")
        )


class HistoryTests(SynchronousTestCase):
    def test_kept_private_and_bounded(self):
        """
        The history file is created 0600 in a 0700 folder, skips empty,
        repeated and very long lines, and keeps the last lines only.
        """
        import os
        import stat

        from echotwist.client import history as h

        path = os.path.join(self.mktemp(), "echolab", "history-x")
        kept = h.History(path)
        for line in ["one", "", "one", "x" * (h.MAX_LINE_CHARS + 1), "two"]:
            kept.add(line)
        self.assertEqual(h.History(path).lines, ["one", "two"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        for n in range(2 * h.MAX_LINES + 1):
            kept.add(str(n))
        self.assertEqual(len(h.History(path).lines), h.MAX_LINES)
        self.assertEqual(h.History(path).lines[-1], str(2 * h.MAX_LINES))
