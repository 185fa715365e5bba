"""
End-to-end tests of the console client: the real client, run as a
person runs it under a pseudo-terminal (or with a script piped in),
against a real server process (C{twistd -n echolab}).

Every wait is for a definite piece of output, with a generous timeout;
nothing sleeps. Each test gets its own server, data directory and token
profile, so tests do not depend on each other.
"""

import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from echotwist import __version__

from .client_support import (
    BIN,
    TIMEOUT,
    ServerProcess,
    client_command,
    client_env,
    translator,
)

try:
    import pexpect
except ImportError:  # pragma: no cover - pexpect is in the test extra
    pexpect = None

PASSWORD = "correct-horse-battery-staple"
_CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(shown):
    """
    What the line editor showed, without its cursor moves and erasures.
    """
    return _CONTROL_SEQUENCE.sub("", shown).replace("\r", "")


WRONG = "incorrect-donkey-battery"


class Terminal:
    """
    The real client under a pseudo-terminal, everything it shows kept.
    """

    def __init__(self, test, *args, env=None, language="en"):
        if pexpect is None:
            raise SkipTest("pexpect is not installed")
        self.shown = io.StringIO()
        command = client_command(*args)
        self.child = pexpect.spawn(
            command[0],
            command[1:],
            env=env or client_env(test.mktemp(), language),
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(24, 200),
        )
        # No sleep before typing (pexpect's default): the client turns echo
        # off before a password prompt shows, so none is needed.
        self.child.delaybeforesend = None
        self.child.logfile_read = self.shown
        test.addCleanup(self.child.close, force=True)

    def expect(self, text):
        """
        Wait for C{text}; return what was shown since the last wait.
        """
        self.child.expect_exact(text)
        return plain(self.child.before)

    def type(self, line):
        self.child.sendline(line)

    def finish(self):
        """
        Wait for the client to exit.

        @return: its exit status.
        """
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus

    @property
    def transcript(self):
        return self.shown.getvalue()


class ClientTestCase(SynchronousTestCase):
    mode = "auth"
    server_options = ()
    language = "en"

    def t(self, message, **values):
        """
        C{message} as the client says it in this test's language.
        """
        return translator(self.language)(message).format(**values)

    def setUp(self):
        self.server = ServerProcess(
            self.mktemp(), self.mode, self.server_options
        ).start()
        self.addCleanup(self.server.stop)
        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        self.profile = os.path.join(home, "echolab", "profile.json")
        self.port = str(self.server.port)
        self.terminals = []

    def tearDown(self):
        for terminal in self.terminals:
            self.assertNotIn(PASSWORD, terminal.transcript)
            self.assertNotIn(WRONG, terminal.transcript)
            self.assertNotIn("Traceback", terminal.transcript)

    def client(self, *args, profile=True):
        """
        Start the client on a terminal, connecting to this test's server.
        """
        if profile:
            args = ("--profile", self.profile) + args
        terminal = Terminal(self, *args, language=self.language)
        self.terminals.append(terminal)
        return terminal

    def connect(self):
        return self.client("--host", "localhost", "--port", self.port)

    def register(self, login):
        """
        Register C{login} by typing its password twice; leave the session
        at its prompt.
        """
        t = self.t
        client = self.connect()
        client.expect(t("Login:") + " ")
        client.type(login)
        client.expect(
            t(
                "{login!r} is a new login on this server: "
                "the password you choose now registers it.",
                login=login,
            )
        )
        client.expect(
            t("New login. Choose a password (at least {min} characters):", min=8) + " "
        )
        client.type(PASSWORD)
        client.expect(t("Type it again, to be sure:") + " ")
        client.type(PASSWORD)
        saved = t("token saved for next time")
        client.expect(t("Registered {login}; {saved}.", login=login, saved=saved))
        client.expect(t("Nice to meet you, {name}!", name=login))
        client.expect("> ")
        return client

    def quit(self, client):
        client.type("/quit")
        client.expect(self.t("bye: {text}", text="Goodbye."))
        self.assertEqual(client.finish(), 0)

    def password_file(self, password=PASSWORD):
        """
        A file holding C{password}, readable by its owner only.
        """
        path = os.path.abspath(self.mktemp())
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(password + "\n")
        return path

    def script(self, lines, *args):
        """
        Run the client with C{lines} piped in (not a terminal).

        @return: the L{subprocess.CompletedProcess}.
        """
        result = subprocess.run(
            client_command("--profile", self.profile, "--port", self.port, *args),
            input="".join(line + "\n" for line in lines),
            env=client_env(self.mktemp(), self.language),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertNotIn("Traceback", result.stderr)
        return result

    def token(self):
        with open(self.profile) as f:
            return json.load(f)["servers"].get(f"localhost:{self.port}")


class PromptTests(ClientTestCase):
    mode = "echo"

    def test_defaults_and_bad_port(self):
        """
        The host question takes its default on an empty answer, and a bad
        port gets a reason and the question again.
        """
        # The port typed at last is the test server's (not 9090, which may
        # be taken here); test_port_default checks the port's default.
        client = self.client()
        client.expect("Server host [localhost]: ")
        client.type("")
        client.expect("Server port [9090]: ")
        client.type("http")
        client.expect(
            "'http' is not a port number (a whole number 1-65535); "
            "try again (empty for 9090)."
        )
        client.expect("Server port [9090]: ")
        client.type("65536")
        client.expect("port 65536 is out of range (1-65535)")
        client.expect("Server port [9090]: ")
        client.type(self.port)
        client.expect(
            f"Connected to echolab {__version__} at localhost:{self.port} (echo mode; plain TCP, not encrypted)."
        )
        client.expect("> ")
        self.quit(client)

    def test_port_default(self):
        """
        An empty port answer takes 9090 (whatever is or is not listening
        there, the client names it).
        """
        client = self.client("--host", "127.0.0.1", "--timeout", "3")
        client.expect("Server port [9090]: ")
        client.type("")
        client.expect("127.0.0.1:9090")
        client.child.sendintr()
        client.finish()

    def test_bad_host_asked_again(self):
        """
        An empty or unresolvable host gets a reason and the question again;
        an IPv6 literal is taken.
        """
        client = self.client("--port", self.port, "--timeout", "5")
        client.expect("Server host [localhost]: ")
        client.type("no-such-host.invalid")
        client.expect("cannot resolve 'no-such-host.invalid'")
        client.expect("Server host [localhost]: ")
        client.type("[]")
        client.expect("the host is empty")
        client.expect("Server host [localhost]: ")
        client.type("::1")
        # The server listens on 127.0.0.1 only: ::1 is taken, then refused.
        client.expect(f"cannot connect to [::1]:{self.port}: connection refused")
        self.assertEqual(client.finish(), 1)

    def test_end_of_input_at_prompt(self):
        """
        The end of input (Ctrl-D) at a question ends the client cleanly
        with status 0.
        """
        client = self.client()
        client.expect("Server host [localhost]: ")
        client.child.sendeof()
        client.expect("No answer; not connecting.")
        self.assertEqual(client.finish(), 0)

    def test_interrupt_at_prompt(self):
        """
        Ctrl-C at a question ends the client with a short message and
        status 130, no traceback.
        """
        client = self.client("--host", "localhost")
        client.expect("Server port [9090]: ")
        client.child.sendintr()
        client.expect("Interrupted; not connecting.")
        self.assertEqual(client.finish(), 130)

    def test_console_script(self):
        """
        The installed C{echolab-client} script runs the client.
        """
        script = os.path.join(BIN, "echolab-client")
        if not os.path.exists(script):
            raise SkipTest("echolab-client is not installed next to this Python")
        result = subprocess.run(
            [script, "--version"],
            env=client_env(self.mktemp()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(
            (result.returncode, result.stdout), (0, f"echolab-client {__version__}\n")
        )

    def test_bad_port_option(self):
        """
        A bad --port is one line on standard error and status 2.
        """
        result = subprocess.run(
            client_command("--port", "0"),
            env=client_env(self.mktemp()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr,
            "echolab-client: --port: port 0 is out of range (1-65535) (see --help)\n",
        )

    def test_connection_refused(self):
        """
        A refused connection is one line and status 1.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = subprocess.run(
            client_command("--port", str(port)),
            env=client_env(self.mktemp()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr,
            f"echolab-client: cannot connect to localhost:{port}: connection refused "
            "(is the server running?)\n",
        )


class AuthTests(ClientTestCase):
    def test_register_then_token(self):
        """
        A registration saves a token (file 0600, directory 0700); the next
        connection logs in with it, asking nothing.
        """
        self.quit(self.register("ann"))
        self.assertEqual(stat.S_IMODE(os.stat(self.profile).st_mode), 0o600)
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.dirname(self.profile)).st_mode), 0o700
        )
        self.assertEqual(self.token()["login"], "ann")
        client = self.connect()
        client.expect("Logging in as ann with the saved token.")
        client.expect("Welcome back, ann!")
        shown = client.expect("> ")
        self.assertNotIn("Login", shown)
        self.assertNotIn("Password", shown)
        self.quit(client)

    def test_profile_deleted(self):
        """
        Without the profile file the client asks for login and password.
        """
        self.quit(self.register("ben"))
        os.unlink(self.profile)
        client = self.connect()
        client.expect("Login: ")
        client.type("ben")
        client.expect("Password: ")
        client.type(PASSWORD)
        client.expect("Logged in as ben; token saved for next time.")
        client.expect("Welcome back, ben!")
        client.expect("> ")
        self.quit(client)
        self.assertEqual(self.token()["login"], "ben")

    def test_wrong_password(self):
        """
        A wrong password shows the server's message and the question again.
        """
        self.quit(self.register("cat"))
        os.unlink(self.profile)
        client = self.connect()
        client.expect("Login: ")
        client.type("cat")
        client.expect("Password: ")
        client.type(WRONG)
        client.expect("error (bad_password): wrong password")
        client.expect("Password: ")
        client.type(PASSWORD)
        client.expect("Welcome back, cat!")
        client.expect("> ")
        self.quit(client)

    def test_repeat(self):
        """
        /repeat 4 shows four numbered echoes of one say.
        """
        client = self.register("dan")
        client.type("/repeat 4 hello there")
        shown = client.expect("> ")
        self.assertEqual(
            [line for line in shown.splitlines() if line.startswith("echo")],
            [f"echo {n}/4: hello there" for n in range(1, 5)],
        )
        client.type("plain line")
        client.expect("echo: plain line")
        client.type("/what")
        client.expect("Unknown command /what; /help lists the commands.")
        self.quit(client)

    def test_logout_revokes(self):
        """
        /logout forgets the token, and the server refuses it afterwards: a
        copy of it gets bad_token, is deleted, and the password is asked.
        """
        client = self.register("eve")
        copy = self.profile + ".copy"
        shutil.copy(self.profile, copy)
        client.type("/logout")
        client.expect("bye: Logged out. Goodbye.")
        self.assertEqual(client.finish(), 0)
        self.assertIsNone(self.token())
        os.replace(copy, self.profile)
        client = self.connect()
        client.expect("Logging in as eve with the saved token.")
        client.expect("error (bad_token)")
        client.expect("The saved token was refused; log in with your password.")
        client.expect("Login: ")
        self.assertIsNone(self.token())
        client.type("eve")
        client.expect("Password: ")
        client.type(PASSWORD)
        client.expect("Welcome back, eve!")
        client.expect("> ")
        self.quit(client)

    def test_group_readable_profile_ignored(self):
        """
        A profile others may read is ignored with a warning: the password is
        asked, and the file is left as it was.
        """
        self.quit(self.register("fay"))
        os.chmod(self.profile, 0o644)
        client = self.connect()
        client.expect("warning: ignoring the token profile")
        client.expect("Login: ")
        client.type("fay")
        client.expect("Password: ")
        client.type(PASSWORD)
        client.expect(
            "Logged in as fay; the token is not saved (the profile is ignored)."
        )
        client.expect("> ")
        self.quit(client)
        self.assertEqual(stat.S_IMODE(os.stat(self.profile).st_mode), 0o644)

    def test_interrupt_in_session(self):
        """
        Ctrl-C at the empty password question says how to leave; a second
        one restores the terminal and ends the client with status 130, no
        traceback.
        """
        client = self.connect()
        client.expect("Login: ")
        client.type("gus")
        client.expect("Choose a password")
        client.child.sendintr()
        client.expect("Ctrl-C again interrupts")
        client.child.sendintr()
        client.expect("Interrupted.")
        self.assertEqual(client.finish(), 130)

    def test_end_of_input_in_session(self):
        """
        Ctrl-D at the login question sends quit and ends with status 0.
        """
        client = self.connect()
        client.expect("Login: ")
        client.child.sendeof()
        client.expect("bye: Goodbye.")
        self.assertEqual(client.finish(), 0)
