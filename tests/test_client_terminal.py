"""
The client's line editor under a real pseudo-terminal (pexpect), against
a real server process: editing keys, history, Ctrl-C and Ctrl-D, a
message arriving while a line is typed, a 100 KB line, and the ways a
session ends (the server stopping, killed, and --reconnect).
"""

import os
import re
import signal
import stat

from .client_support import ServerProcess
from .test_client import PASSWORD, ClientTestCase, plain

LEFT, UP, DOWN = "\x1b[D", "\x1b[A", "\x1b[B"
HOME, END = "\x1b[H", "\x1b[F"
CTRL_A, CTRL_C, CTRL_D, CTRL_E = "\x01", "\x03", "\x04", "\x05"
CTRL_K, CTRL_U, CTRL_W = "\x0b", "\x15", "\x17"
BACKSPACE = "\x7f"


class EditorTestCase(ClientTestCase):
    def keys(self, client, keys, echoed):
        """
        Type C{keys} and Enter; the server must echo C{echoed}.
        """
        client.child.send(keys + "\r")
        client.expect(self.t("echo: {text}", text=echoed) + "\r")
        client.expect("> ")

    def stopped(self):
        return self.t(
            "The server ended the session: {text}", text="The server is shutting down."
        )

    def history_file(self):
        directory = os.path.dirname(self.profile)
        return os.path.join(directory, f"history-localhost_{self.port}")


class EditingTests(EditorTestCase):
    def test_editing_keys(self):
        """
        Arrows, Home/End, Ctrl-A/E/K/U/W and Backspace edit the line in
        place, Cyrillic one character at a time; nothing of a key reaches
        the server as text.
        """
        client = self.register("kim")
        self.keys(client, "abc" + LEFT + "X", "abXc")
        self.keys(client, "bc" + HOME + "a" + END + "d", "abcd")
        self.keys(client, "xyz" + CTRL_A + "w" + CTRL_E + "!", "wxyz!")
        self.keys(client, "abcdef" + LEFT * 3 + CTRL_K, "abc")
        self.keys(client, "abc def" + LEFT * 3 + CTRL_U, "def")
        self.keys(client, "hello world" + CTRL_W + "there", "hello there")
        self.keys(client, "abx" + BACKSPACE + "c", "abc")
        self.keys(client, "Првет" + LEFT * 3 + "и", "Привет")
        self.quit(client)

    def test_history(self):
        """
        Up and Down recall the lines said, also in the next session: they
        are kept per server next to the profile, 0600, without a word typed
        at a question (the login, the password).
        """
        client = self.register("lou")
        self.keys(client, "first line", "first line")
        self.keys(client, "second line", "second line")
        self.keys(client, UP + UP, "first line")
        self.keys(client, UP + UP + DOWN, "first line")
        self.quit(client)
        path = self.history_file()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            kept = f.read()
        self.assertEqual(kept, "first line\nsecond line\nfirst line\n/quit\n")
        self.assertNotIn(PASSWORD, kept)
        client = self.connect()
        client.expect("> ")
        self.keys(client, UP * 3, "second line")
        self.quit(client)

    def test_interrupt_and_end_of_input(self):
        """
        Ctrl-C cancels the line being typed (nothing is sent); at an empty
        line it says how to leave; Ctrl-D on an empty line leaves, status 0.
        """
        client = self.register("max")
        client.child.send("not this" + CTRL_C)
        client.expect("^C")
        client.expect("> ")
        self.keys(client, "this", "this")
        client.child.send(CTRL_C)
        client.expect(
            self.t("(Ctrl-D on an empty line or /quit leaves; Ctrl-C again interrupts)")
        )
        client.child.send("a" + CTRL_A + CTRL_D + "b\r")  # Ctrl-D deletes here
        client.expect(self.t("echo: {text}", text="b") + "\r")
        client.expect("> ")
        client.child.send(CTRL_D)
        client.expect(self.t("bye: {text}", text="Goodbye."))
        self.assertEqual(client.finish(), 0)
        self.assertNotIn("not this", plain(client.transcript).replace("not this^C", ""))


class LongLineTests(EditorTestCase):
    server_options = ("--max-message", "200000")

    def test_long_line(self):
        """
        A 100 KB line (a paste) is taken whole, past the 4,095 characters
        of a terminal's canonical mode; one over the server's limit is not
        sent, and says so.
        """
        client = self.register("ned")
        line = "0123456789" * 10_000
        client.child.send(line + "\r")
        echo = self.t("echo: {text}", text="")
        client.child.expect(re.compile(re.escape(echo) + "(\\d+)\r"))
        self.assertEqual(client.child.match.group(1), line)
        client.expect("> ")
        client.child.send("x" * 210_000 + "\r")
        client.expect(
            self.t(
                "That line is too long: the server takes messages of up to "
                "{limit} bytes (this one is {size}).",
                limit=200_000,
                size=210_000 + len('{"type":"say","text":""}'),
            )
        )
        client.expect("> ")
        self.quit(client)


class IncomingTests(EditorTestCase):
    server_options = ("--idle-timeout", "3")

    def test_message_while_typing(self):
        """
        A message arriving while a line is typed shows above it, and the
        line is drawn again below it; the server ending the session is one
        sentence, and no prompt is left behind.
        """
        client = self.register("oli")
        client.child.send("half a li")
        client.expect(
            self.t("error ({code}): {text}", code="timeout", text=self.t("timed out"))
        )
        shown = client.expect(
            self.t("The server ended the session: {text}", text=self.t("timed out"))
        )
        self.assertIn("> half a li", shown)
        rest = plain(client.child.read())
        self.assertEqual(client.finish(), 1)
        self.assertNotIn("lost", rest)
        self.assertFalse(rest.rstrip("\n").endswith("> "), rest)


class EndingTests(EditorTestCase):
    def test_server_stopped(self):
        """
        The server stopping says so, with its words, once; status 1.
        """
        client = self.register("pam")
        self.server.stop()
        client.expect(self.stopped())
        rest = plain(client.child.read())
        self.assertEqual(client.finish(), 1)
        self.assertNotIn("lost", rest)
        self.assertNotIn("> ", rest)

    def test_server_killed(self):
        """
        A server killed outright: one sentence, no contradiction, no
        doubled full stop, no prompt left; status 1.
        """
        client = self.register("quy")
        self.server.process.send_signal(signal.SIGKILL)
        client.expect(
            self.t(
                "The server at {where} closed the connection without a word.",
                where=f"localhost:{self.port}",
            )
        )
        rest = plain(client.child.read())
        self.assertEqual(client.finish(), 1)
        self.assertNotIn("..", client.transcript)
        self.assertNotIn("cleanly", client.transcript)
        self.assertNotIn("> ", rest)

    def test_reconnect(self):
        """
        With --reconnect, a stopped server is tried again, waiting longer
        each time, and the session comes back logged in by the token.
        """
        self.quit(self.register("ray"))
        client = self.client("--host", "localhost", "--port", self.port, "--reconnect")
        client.expect("> ")
        self.server.stop()
        client.expect(self.stopped())
        reconnecting = "Reconnecting to {where} in {seconds} s (try {try_} of {tries}; Ctrl-D stops)."
        where = f"localhost:{self.port}"
        client.expect(self.t(reconnecting, where=where, seconds=1, try_=1, tries=8))
        client.expect(self.t(reconnecting, where=where, seconds=2, try_=2, tries=8))
        again = ServerProcess(self.server.directory, port=int(self.port)).start()
        self.addCleanup(again.stop)
        client.expect(self.t("Logged in as {login} with the saved token.", login="ray"))
        client.expect("> ")
        self.keys(client, "back", "back")
        self.quit(client)


class RussianEditingTests(EditingTests):
    language = "ru"


class RussianLongLineTests(LongLineTests):
    language = "ru"


class RussianIncomingTests(IncomingTests):
    language = "ru"


class RussianEndingTests(EndingTests):
    language = "ru"


class DumbTerminalTests(EditorTestCase):
    mode = "echo"

    def test_dumb_terminal_plain_lines(self):
        """
        On a terminal that cannot move its cursor (TERM=dumb) the client
        reads whole lines, as before, and writes no control sequence.
        """
        from .client_support import client_env
        from .test_client import Terminal

        env = client_env(self.mktemp())
        env["TERM"] = "dumb"
        client = Terminal(self, "--host", "localhost", "--port", self.port, env=env)
        self.terminals.append(client)
        client.expect("> ")
        client.type("plain line")
        client.expect("echo: plain line")
        client.expect("> ")
        client.type("/quit")
        self.assertEqual(client.finish(), 0)
        self.assertNotIn("\x1b", client.transcript)
