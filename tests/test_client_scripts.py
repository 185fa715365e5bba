"""
The console client run as scripts run it: standard input a pipe (no
terminal), the answers to the server's questions given as options, the
lines only ever said; against a real server process, in English and in
Russian.
"""

import json
import os
import subprocess

from echotwist import __version__

from .client_support import TIMEOUT, client_command, client_env
from .test_client import PASSWORD, WRONG, ClientTestCase


class ScriptTests(ClientTestCase):
    def test_scripted_session(self):
        """
        With a script on standard input (no terminal), no host or port is
        asked, the login and password come from options, the lines are
        said in order, and the end of input quits with status 0. Re-run
        with the saved token, the same script says the same lines and
        nothing else.
        """
        lines = ["first", "/repeat 2 second", "third"]
        options = ("--login", "hal", "--password-file", self.password_file())
        result = self.script(lines, *options)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            result.stdout.splitlines(),
            [
                f"Connected to echolab {__version__} at localhost:{self.port} "
                "(auth mode; plain TCP, not encrypted).",
                "Login: (--login)",
                "New login. Choose a password (at least 8 characters): "
                "(--password-file)",
                "Registered hal; token saved for next time.",
                "Nice to meet you, hal!",
                "echo: first",
                "echo 1/2: second",
                "echo 2/2: second",
                "echo: third",
                "bye: Goodbye.",
            ],
        )
        again = self.script(lines, *options)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(
            again.stdout.splitlines()[1:],
            [
                "Logging in as hal with the saved token.",
                "Logged in as hal with the saved token.",
                "Welcome back, hal!",
                "echo: first",
                "echo 1/2: second",
                "echo 2/2: second",
                "echo: third",
                "bye: Goodbye.",
            ],
        )
        self.assertNotIn(PASSWORD, result.stdout + again.stdout)

    def test_old_script_never_echoes_its_password(self):
        """
        The old form of a script, its login and password as its first
        lines, neither logs in nor says a line: the login fails (status 3)
        with the options to use. With a saved token the same lines are
        said, so the password line is echoed: that is why a password never
        belongs in a script's lines (docs/client.md says so).
        """
        result = self.script(["robot", PASSWORD, "hi"])
        self.assertEqual(result.returncode, 3, result.stdout)
        self.assertIn("Login failed", result.stdout)
        self.assertIn("--login", result.stdout)
        self.assertNotIn("echo:", result.stdout)

    def test_wrong_password_file(self):
        """
        A password from --password-fd that the server refuses is sent once:
        the login fails, status 3.
        """
        self.script(["x"], "--login", "ian", "--password-file", self.password_file())
        os.unlink(self.profile)
        read, write = os.pipe()
        os.write(write, WRONG.encode() + b"\n")
        os.close(write)
        self.addCleanup(_close, read)
        result = subprocess.run(
            client_command(
                "--profile",
                self.profile,
                "--port",
                self.port,
                "--login",
                "ian",
                "--password-fd",
                str(read),
            ),
            input="never said\n",
            env=client_env(self.mktemp()),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            pass_fds=(read,),
        )
        self.assertEqual(result.returncode, 3, result.stdout)
        self.assertIn("error (bad_password)", result.stdout)
        self.assertIn("Login failed: the server refused the password", result.stdout)
        self.assertNotIn("never said", result.stdout)

    def test_password_never_from_standard_input(self):
        """
        --password-fd 0 is refused: standard input is the command stream.
        """
        result = self.script([PASSWORD], "--password-fd", "0")
        self.assertEqual(result.returncode, 2)
        self.assertIn("never comes from the command stream", result.stderr)

    def test_insecure_warns(self):
        """
        --insecure is announced on standard error, even where it is not
        needed.
        """
        result = self.script(
            [], "--insecure", "--login", "x", "--password-file", self.password_file()
        )
        self.assertEqual(result.returncode, 0)
        self.assertIn("WARNING: --insecure", result.stderr)

    def test_help_lists_exit_statuses(self):
        """
        --help says what each exit status means.
        """
        result = self.script([], "--help")
        self.assertEqual(result.returncode, 0)
        text = " ".join(result.stdout.split())
        for words in ["0 you left", "3 login failed", "4 the server refused"]:
            self.assertIn(words, text)


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class IdentTests(ClientTestCase):
    mode = "ident"

    def test_scripted_session(self):
        """
        In ident mode the name is given once, then this address is known.
        """
        result = self.script(["hi"], "--name", "  Zoë  ")
        self.assertEqual(
            result.stdout.splitlines()[1:],
            [
                "What is your name? (--name)",
                "Nice to meet you, Zoë!",
                "echo: hi",
                "bye: Goodbye.",
            ],
        )
        again = self.script([])
        self.assertEqual(
            again.stdout.splitlines()[1:], ["Welcome back, Zoë!", "bye: Goodbye."]
        )
        self.assertEqual(again.returncode, 0)


class IPv6Tests(ClientTestCase):
    server_options = ("--interface", "::1")

    def test_scripted_session(self):
        """
        An IPv6 literal host works, and its token is kept under [::1]:port.
        """
        result = self.script(
            ["over IPv6"],
            "--host",
            "::1",
            "--login",
            "ivy",
            "--password-file",
            self.password_file(),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(
            f"Connected to echolab {__version__} at [::1]:{self.port} (auth mode;",
            result.stdout,
        )
        self.assertIn("echo: over IPv6", result.stdout)
        with open(self.profile) as f:
            self.assertEqual(list(json.load(f)["servers"]), [f"[::1]:{self.port}"])


class RussianScriptTests(ClientTestCase):
    language = "ru"

    def test_scripted_session(self):
        """
        Under a Russian locale a script's session reads in Russian (the
        client's own words for the server's questions and greetings), its
        lines are said, and a re-run with the saved token says them again.
        """
        t = self.t
        options = ("--login", "yura", "--password-file", self.password_file())
        result = self.script(["привет"], *options)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(
            result.stdout.splitlines()[1:],
            [
                t("Login:") + " (--login)",
                t("New login. Choose a password (at least {min} characters):", min=8)
                + " (--password-file)",
                t(
                    "Registered {login}; {saved}.",
                    login="yura",
                    saved=t("token saved for next time"),
                ),
                t("Nice to meet you, {name}!", name="yura"),
                t("echo: {text}", text="привет"),
                t("bye: {text}", text="Goodbye."),
            ],
        )
        self.assertIn("Подключено к echolab", result.stdout)
        again = self.script(["снова"], *options)
        self.assertEqual(again.returncode, 0)
        self.assertIn(t("echo: {text}", text="снова"), again.stdout)
        self.assertIn(
            t("Logged in as {login} with the saved token.", login="yura"), again.stdout
        )

    def test_failed_login_status(self):
        """
        A script with no login to give fails with status 3, saying so in
        Russian.
        """
        result = self.script(["привет"])
        self.assertEqual(result.returncode, 3)
        self.assertIn("Вход не удался", result.stdout)
        self.assertNotIn(self.t("echo: {text}", text="привет"), result.stdout)

    def test_help(self):
        """
        --help is in Russian, with the exit statuses.
        """
        result = self.script([], "--help")
        self.assertEqual(result.returncode, 0)
        text = " ".join(result.stdout.split())
        self.assertIn("Использование: echolab-client", text)
        self.assertIn("Код выхода: 0 вы вышли", text)
