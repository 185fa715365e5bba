"""
The lab's steps in plain sockets (examples/lab/, docs/lab.md), each run as
a student runs it: a real process on loopback, its port picked free (0) and
passed on the command line, its questions answered on standard input.
"""

import json
import os
import re
import socket
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from echotwist.wire import HEADER, MessageSocket
from tests.test_twistd import CHEAP
from tests.test_twistd import Server as EcholabServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "examples", "lab")
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
TIMEOUT = 30


def script(name):
    return [sys.executable, os.path.join(LAB, name)]


class Example(EcholabServer):
    """
    An example server in a directory of its own, and the port it printed
    (read and stopped as test_twistd's servers are).
    """

    def __init__(self, testcase, name, *args, stdin="", cwd=None):
        self.cwd = cwd or os.path.abspath(testcase.mktemp())
        os.makedirs(self.cwd, exist_ok=True)
        self.process = subprocess.Popen(
            script(name) + list(args),
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        testcase.addCleanup(self.kill)
        self.process.stdin.write(stdin.encode())
        self.process.stdin.close()
        self.process.stdin = None  # (communicate() would flush it)
        self.first_line = self._read_line(TIMEOUT)
        match = LISTENING.search(self.first_line)
        testcase.assertTrue(match, f"{name} printed {self.first_line!r}")
        self.port = int(match.group(1))

    def file(self, name):
        with open(os.path.join(self.cwd, name), encoding="utf-8") as f:
            return f.read()


def run_client(testcase, name, *args, stdin="", cwd=None):
    """
    Run an example client to its end; its output and exit status.
    """
    cwd = cwd or os.path.abspath(testcase.mktemp())
    os.makedirs(cwd, exist_ok=True)
    done = subprocess.run(
        script(name) + [str(a) for a in args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done.stdout + done.stderr, done.returncode


class RawStepsTests(SynchronousTestCase):
    def test_step1_echo_pair(self):
        """
        Step 1: the client's message comes back; the server serves one
        client and exits.
        """
        server = Example(self, "echo_server.py", "0")
        out, code = run_client(self, "echo_client.py", server.port)
        self.assertIn("received: hello, world!", out)
        self.assertEqual(server.process.wait(TIMEOUT), 0)

    def test_step1_server_against_echolab_raw_mode(self):
        """
        Step 1's client works against echolab's raw mode (and so would nc).
        """
        data = os.path.abspath(self.mktemp())
        server = EcholabServer(self, "--port", "0", "--mode", "raw", "--data-dir", data)
        out, code = run_client(self, "echo_client.py", server.port)
        self.assertIn("received: hello, world!", out)

    def test_step2_keeps_listening_and_logs(self):
        """
        Step 2: several clients one after another; the console shows only
        the port, the log file each connection.
        """
        server = Example(self, "logging_server.py", "0", "server.log")
        for _ in range(3):
            out, code = run_client(self, "echo_client.py", server.port)
            self.assertIn("received: hello, world!", out)
        server.process.kill()
        rest = server.process.communicate()[0]
        self.assertEqual(rest, b"")
        log = server.file("server.log")
        self.assertEqual(log.count("connection from 127.0.0.1"), 3)
        self.assertEqual(log.count("disconnected 127.0.0.1"), 3)

    def test_step3_safe_input(self):
        """
        Step 3: empty answers take the defaults, bad ones are explained and
        asked again.
        """
        server = Example(self, "logging_server.py", "0")
        answers = f"no such host.invalid\n\n90x90\n70000\n{server.port}\nhi there\n"
        out, code = run_client(self, "asking_client.py", stdin=answers)
        self.assertIn("'no such host.invalid' is not a known host name", out)
        self.assertIn("'90x90' is not a port number. Try again.", out)
        self.assertIn("70000 is over 65535", out)
        self.assertIn("hi there", out)
        self.assertEqual(code, 0)

    def test_step3_end_of_input(self):
        """
        Step 3: the end of input at a question ends the program in one line.
        """
        out, code = run_client(self, "asking_client.py", stdin="")
        self.assertIn("No answer; stopping.", out)
        self.assertNotIn("Traceback", out)
        self.assertEqual(code, 1)

    def test_step4_port_fallback(self):
        """
        Step 4: the port asked for is taken: the server takes a following
        one and says which; the log says why.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Example(self, "fallback_server.py", stdin=f"{port}\n")
        self.assertIn("Port [9090]: listening on 127.0.0.1:", server.first_line)
        self.assertTrue(port < server.port < port + 10)
        out, code = run_client(self, "echo_client.py", server.port)
        self.assertIn("received: hello, world!", out)
        self.assertIn(f"port {port} is taken", server.file("server.log"))


class IdentAuthStepsTests(SynchronousTestCase):
    def talk(self, server, stdin, cwd=None):
        return run_client(
            self, "talk_client.py", "127.0.0.1", server.port, stdin=stdin, cwd=cwd
        )[0]

    def test_step5_ident(self):
        """
        Step 5: an unknown address is asked its name (a bad one again),
        the name is stored (mode 0600), and the next connection is greeted
        by it.
        """
        server = Example(self, "ident_server.py", "0")
        out = self.talk(server, "   \nAnn\nhi\n")
        self.assertIn("A name has 1 to 64 characters.", out)
        self.assertIn("Nice to meet you, Ann!", out)
        self.assertIn("hi", out.split("Ann!", 1)[1])
        self.assertIn("Welcome back, Ann!", self.talk(server, "hi\n"))
        self.assertEqual(json.loads(server.file("names.json")), {"127.0.0.1": "Ann"})
        mode = os.stat(os.path.join(server.cwd, "names.json")).st_mode & 0o777
        self.assertEqual(mode, 0o600)

    def test_step6_auth(self):
        """
        Step 6: registration (a weak password refused), then a token login;
        without the token, a wrong password then the right one. The server
        keeps a salted hash, never the password; the client keeps its token
        under the server's address.
        """
        server = Example(self, "auth_server.py", "0")
        client = os.path.abspath(self.mktemp())
        out = self.talk(server, "Ann\nshort\nlong enough pw\nhi\n", cwd=client)
        self.assertIn("A password has 8 to 1024 characters.", out)
        self.assertIn("Hello, Ann!", out)
        with open(os.path.join(client, "tokens-client.json")) as f:
            tokens = json.load(f)
        self.assertEqual(list(tokens), [f"127.0.0.1:{server.port}"])
        out = self.talk(server, "hi\n", cwd=client)
        self.assertIn("Welcome back, Ann! (logged in with your token)", out)
        os.remove(os.path.join(client, "tokens-client.json"))
        out = self.talk(server, "ANN\nwrong one\nlong enough pw\nhi\n", cwd=client)
        self.assertIn("Wrong password.", out)
        self.assertIn("Hello, Ann!", out)
        users = server.file("users.json")
        self.assertNotIn("long enough pw", users)
        self.assertEqual(len(json.loads(users)["ann"]["salt"]), 32)
        self.assertNotIn(tokens[f"127.0.0.1:{server.port}"], server.file("tokens.json"))
        self.assertNotIn("long enough pw", server.file("server.log"))

    def test_step6_three_wrong_passwords(self):
        """
        Step 6: the third wrong password ends the connection.
        """
        server = Example(self, "auth_server.py", "0")
        self.talk(server, "bob\nlong enough pw\n")
        out = self.talk(server, "bob\nwrong 1 pw\nwrong 2 pw\nwrong 3 pw\n")
        self.assertEqual(out.count("Wrong password."), 3)
        self.assertIn("Too many wrong passwords; goodbye.", out)

    def test_step6_token_only_to_its_server(self):
        """
        Step 6: the client shows a server only the token that server gave:
        asked by another server, it sends none.
        """
        client = os.path.abspath(self.mktemp())
        os.makedirs(client)
        with open(os.path.join(client, "tokens-client.json"), "w") as f:
            json.dump({"127.0.0.1:1": "secret-of-another-server"}, f)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            process = subprocess.Popen(
                script("talk_client.py") + ["127.0.0.1", str(port)],
                cwd=client,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.addCleanup(process.wait)
            self.addCleanup(process.kill)
            listener.settimeout(TIMEOUT)
            conn, _ = listener.accept()
            with conn, conn.makefile("rwb") as stream:
                stream.write(b"token?\n")
                stream.flush()
                conn.settimeout(TIMEOUT)
                self.assertEqual(stream.readline(), b"\n")


class FramedStepsTests(SynchronousTestCase):
    def test_step8_client_and_server(self):
        """
        Step 8: one say, several numbered echoes, with the example client
        and server.
        """
        server = Example(self, "repeat_server.py", "0")
        out, code = run_client(
            self, "repeat_client.py", "127.0.0.1", server.port, stdin="hello *3\nok\n"
        )
        self.assertIn("1/3 hello\n2/3 hello\n3/3 hello\n", out)
        self.assertIn("> ok\n", out)
        self.assertEqual(code, 0)

    def test_step7_server_explains_headerless_bytes(self):
        """
        Step 7: bytes without a header are read as a length, refused as
        too large before the rest is read, and the error reaches the client.
        """
        server = Example(self, "framed_server.py", "0")
        with MessageSocket.connect_to(("127.0.0.1", server.port), timeout=10) as s:
            self.assertEqual(s.recv_message()["type"], "welcome")
            s.sendall(b"hello, world!")
            reply = s.recv_message()
        self.assertEqual(reply["code"], "too_large")
        self.assertEqual(HEADER.unpack(b"hell")[0], 1751477356)

    def echolab_client(self, port, stdin, profile, *options):
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "echolab-client"),
             "--host", "127.0.0.1", "--port", str(port), "--profile", profile,
             *options],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        ).stdout  # fmt: skip

    def test_modes_server_auth_with_echolab_client(self):
        """
        The finished lab's auth mode: echolab's client registers, keeps
        the token, and logs in with it next time; the password is stored
        as step 6 stores it.
        """
        server = Example(self, "modes_server.py", "0", "auth")
        profile = os.path.abspath(self.mktemp())
        password = os.path.abspath(self.mktemp())
        with open(password, "w", encoding="utf-8") as f:
            f.write("correct horse battery\n")
        out = self.echolab_client(
            server.port,
            "hello\n",
            profile,
            *("--login", "zoe", "--password-file", password),
        )
        self.assertIn("(auth mode;", out)
        self.assertIn("Nice to meet you, zoe!", out)
        self.assertIn("echo: hello", out)
        out = self.echolab_client(server.port, "again\n", profile)
        self.assertIn("Logged in as zoe with the saved token.", out)
        self.assertIn("echo: again", out)
        self.assertNotIn("correct horse battery", server.file("users.json"))

    def test_modes_server_ident(self):
        """
        The finished lab's ident mode, with the step 7 client: asked once,
        then known by address.
        """
        server = Example(self, "modes_server.py", "0", "ident")
        out, code = run_client(
            self, "framed_client.py", "127.0.0.1", server.port, stdin="  Zoé \nhi\n"
        )
        self.assertIn("Nice to meet you, Zoé!", out)
        out, code = run_client(
            self, "repeat_client.py", "127.0.0.1", server.port, stdin="hi *2\n"
        )
        self.assertIn("Welcome back, Zoé!", out)
        self.assertIn("1/2 hi\n2/2 hi\n", out)

    def test_step7_8_servers_with_echolab_client(self):
        """
        echolab's own client talks to the example servers (echo mode).
        """
        for name in ("framed_server.py", "repeat_server.py"):
            server = Example(self, name, "0")
            profile = os.path.abspath(self.mktemp())
            out = self.echolab_client(server.port, "bonjour\n", profile)
            self.assertIn("(echo mode;", out, name)
            self.assertIn("echo: bonjour", out, name)

    def test_example_clients_against_echolab(self):
        """
        The step 7 and 8 clients talk to echolab itself, answering the
        questions of ident mode.
        """
        data = os.path.abspath(self.mktemp())
        server = EcholabServer(
            self, "--port", "0", "--mode", "ident", "--data-dir", data
        )
        out, code = run_client(
            self, "framed_client.py", "127.0.0.1", server.port, stdin="Zoé\nsalut\n"
        )
        self.assertIn("ident mode", out)
        self.assertIn("Nice to meet you, Zoé!", out)
        self.assertIn("> salut\n", out)
        self.assertIn("Goodbye.", out)
        out, code = run_client(
            self, "repeat_client.py", "127.0.0.1", server.port, stdin="hey *2\n"
        )
        self.assertIn("Welcome back, Zoé!", out)
        self.assertIn("1/2 hey\n2/2 hey\n", out)

    def test_example_client_registers_with_echolab(self):
        """
        The step 7 client answers auth mode's questions, the password
        among them (read plainly when standard input is not a terminal).
        """
        data = os.path.abspath(self.mktemp())
        server = EcholabServer(
            self, "--port", "0", "--mode", "auth", "--data-dir", data, *CHEAP
        )
        answers = "zoe\ncorrect horse battery\nbonjour\n"
        out, code = run_client(
            self, "framed_client.py", "127.0.0.1", server.port, stdin=answers
        )
        self.assertIn("auth mode", out)
        self.assertIn("Nice to meet you, zoe!", out)
        self.assertIn("> bonjour\n", out)
        self.assertEqual(code, 0)


class ExamplesPassCheckTests(SynchronousTestCase):
    """
    The finished lab's servers speak docs/protocol.md: echolab-check, the
    grader a teacher runs, passes them in their modes.
    """

    def check(self, port, mode):
        done = subprocess.run(
            [sys.executable, "-m", "echotwist.check", f"127.0.0.1:{port}",
             "--mode", mode, "--json", os.path.abspath(self.mktemp())],
            capture_output=True,
            text=True,
            timeout=90,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        summary = done.stdout.strip().splitlines()[-1]
        self.assertRegex(summary, r"^\d+ passed, 0 failed, [01] skipped$")
        return summary

    def test_repeat_server_echo(self):
        """
        Step 8's server passes every echo-mode check.
        """
        self.check(Example(self, "repeat_server.py", "0").port, "echo")

    def test_modes_server_ident_and_auth(self):
        """
        The finished lab's server passes every ident and auth check.
        """
        for mode in ("ident", "auth"):
            self.check(Example(self, "modes_server.py", "0", mode).port, mode)
