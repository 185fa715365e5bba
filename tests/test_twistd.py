"""
Black-box tests: the installed server run as a user runs it, with
C{twistd -n echolab} (and C{twistd -ny echo.tac}) in a process of its own,
from a directory of its own.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from echotwist.wire import MessageSocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]
LISTENING = re.compile(r"listening on \S+:(\d+)")
# The cheapest hash the server accepts: these tests are about processes.
CHEAP = ("--hash-memory", "19456", "--hash-time", "2")


def assert_runs_on(testcase, reactor, reactor_class):
    """
    A server started with C{twistd -r REACTOR} serves, and its log names
    C{reactor_class} as the reactor it runs on.
    """
    data = os.path.abspath(testcase.mktemp())
    server = Server(
        testcase,
        "--port",
        "0",
        "--mode",
        "echo",
        "--data-dir",
        data,
        twistd=("-r", reactor),
    )
    with server.connect() as s:
        s.send_message({"type": "say", "text": reactor})
        testcase.assertEqual(s.recv_message()["text"], reactor)
    server.stop()
    with open(os.path.join(data, "echolab.log")) as f:
        testcase.assertIn(f"reactor class: {reactor_class}", f.read())


class Server:
    """
    A server process, and what it printed.
    """

    def __init__(
        self, testcase, *args, cwd=None, tac=False, env=None, twistd=(), pidfile=""
    ):
        self.cwd = cwd or os.path.abspath(testcase.mktemp())
        os.makedirs(self.cwd, exist_ok=True)
        command = TWISTD + [f"--pidfile={pidfile}", "-n", *twistd]
        command += ["-y", os.path.join(ROOT, "echo.tac")] if tac else ["echolab", *args]
        self.process = subprocess.Popen(
            command,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            bufsize=0,  # so select() sees what read() has not taken yet
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **(env or {})),
        )
        testcase.addCleanup(self.kill)
        self.first_line = self._read_line(30)
        match = LISTENING.search(self.first_line)
        self.port = int(match.group(1)) if match else None

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                break
            byte = self.process.stdout.read(1)
            if not byte:
                break
            line += byte
        return line.decode()

    def connect(self):
        s = MessageSocket.connect_to(("127.0.0.1", self.port), timeout=10)
        welcome = s.recv_message()
        assert welcome["type"] == "welcome", welcome
        return s

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out.decode(), err.decode()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


class Daemon:
    """
    twistd run as a daemon (no C{-n}) from a directory of its own, with its
    pid file there: the command itself returns once the daemon has
    started, or failed to.
    """

    def __init__(self, testcase, *args, cwd=None):
        self.cwd = cwd or os.path.abspath(testcase.mktemp())
        os.makedirs(self.cwd, exist_ok=True)
        self.pidfile = os.path.join(self.cwd, "twistd.pid")
        self.pid = None
        testcase.addCleanup(self.kill)
        started = time.monotonic()
        done = subprocess.run(
            TWISTD + ["--pidfile", self.pidfile, "echolab", *args],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
        self.seconds = time.monotonic() - started
        self.code, self.out, self.err = done.returncode, done.stdout, done.stderr
        if self.code == 0:
            with open(self.pidfile) as f:
                self.pid = int(f.read())
        match = LISTENING.search(self.out.decode())
        self.port = int(match.group(1)) if match else None

    def wait_gone(self, timeout=30):
        """
        Wait for the pid file to go, and the daemon with it.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not os.path.exists(self.pidfile) and not running(self.pid):
                return True
            time.sleep(0.05)
        return False

    def kill(self):
        if running(self.pid):
            os.kill(self.pid, signal.SIGKILL)


def running(pid):
    """
    Whether process C{pid} runs (a zombie does not: a daemon's parent is
    whichever process adopted it, which may be slow to reap it).
    """
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def until(s, kind):
    while True:
        message = s.recv_message()
        if message["type"] == kind:
            return message


class ProcessTests(SynchronousTestCase):
    def test_listening_line(self):
        """
        The console gets the listening line and nothing else; service
        messages (with each connection and disconnection) go to the log file
        inside the data directory.
        """
        server = Server(self, "--port", "0", "--mode", "echo")
        self.assertIsNotNone(server.port, server.first_line)
        self.assertEqual(server.first_line, f"listening on 127.0.0.1:{server.port}\n")
        with server.connect() as s:
            local = s.getsockname()[1]
            s.send_message({"type": "say", "text": "hi"})
            self.assertEqual(s.recv_message()["text"], "hi")
        code, out, err = server.stop()
        self.assertEqual((out, err), ("", ""))
        with open(os.path.join(server.cwd, "echolab-data", "echolab.log")) as f:
            log = f.read()
        self.assertIn(f"listening on 127.0.0.1:{server.port}", log)
        self.assertIn(f"connection from 127.0.0.1:{local}", log)
        self.assertIn(f"disconnected 127.0.0.1:{local}", log)
        self.assertIn("reactor class: echotwist.reactor.EPollReactor", log)

    def test_reactor_choice(self):
        """
        C{twistd -r} still picks the reactor; echolab's own is the default.
        """
        assert_runs_on(self, "poll", "twisted.internet.pollreactor.PollReactor")

    def test_port_taken(self):
        """
        With the port taken by another process, the server listens on the
        next free one and says which (lab task 4).
        """
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        taken = held.getsockname()[1]
        server = Server(self, "--port", str(taken), "--mode", "echo")
        self.assertGreater(server.port, taken)
        with server.connect() as s:
            s.send_message({"type": "say", "text": "moved"})
            self.assertEqual(s.recv_message()["text"], "moved")

    def test_all_ports_taken(self):
        """
        When every port it may try is taken the server exits with status 1
        and one line on standard error, in every mode (the stores, opened
        first, must not keep it alive).
        """
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        taken = held.getsockname()[1]
        for mode in ("echo", "ident", "auth"):
            server = Server(
                self, "--port", str(taken), "--port-tries", "1", "--mode", mode
            )
            out, err = server.process.communicate(timeout=30)
            self.assertEqual(server.process.returncode, 1, mode)
            self.assertEqual(server.first_line + out.decode(), "")
            self.assertRegex(
                err.decode(), rf"\Aecholab: cannot listen on 127.0.0.1:{taken}: .*\n\Z"
            )

    def test_data_dir_in_use(self):
        """
        A second server on the same data directory is refused with one line
        (it would not see the first one's revoked tokens), and the first
        one goes on serving.
        """
        data = os.path.abspath(self.mktemp())
        first = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
        second = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
        out, err = second.process.communicate(timeout=30)
        self.assertEqual(second.process.returncode, 1)
        self.assertEqual(
            err.decode(), f"echolab: another echolab server is using {data}\n"
        )
        with first.connect() as s:
            self.assertEqual(until(s, "ask")["field"], "login")

    def test_usage_error(self):
        """
        A bad option is one line on standard error, not a traceback.
        """
        for args in (["--port", "abc"], ["--port", "70000"], ["--mode", "chat"]):
            server = Server(self, *args)
            out, err = server.process.communicate(timeout=30)
            self.assertEqual(server.process.returncode, 2)
            self.assertEqual(server.first_line + out.decode(), "")
            self.assertEqual(err.decode().count("\n"), 1, err)
            self.assertIn(f"twistd echolab: --{args[0][2:]}: ", err.decode())

    def test_tac_usage_error(self):
        """
        A bad option in ECHOLAB_ARGS for C{echo.tac} is one line too.
        """
        server = Server(self, tac=True, env={"ECHOLAB_ARGS": "--port 99999"})
        out, err = server.process.communicate(timeout=30)
        self.assertEqual(server.process.returncode, 2)
        self.assertEqual(err.decode().count("\n"), 1, err)
        self.assertIn("echo.tac: --port: ", err.decode())

    def test_kill_9(self):
        """
        What the server acknowledged survives C{kill -9}: a registration
        (the user and its token) and an identification.
        """
        data = os.path.abspath(self.mktemp())
        auth = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
        with auth.connect() as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "login", "value": "Kilroy"})
            until(s, "ask")
            s.send_message(
                {"type": "answer", "field": "new_password", "value": "was here 1944"}
            )
            token = until(s, "auth_ok")["token"]
            auth.process.kill()
        auth.process.wait()
        ident = Server(self, "--port", "0", "--mode", "ident", "--data-dir", data)
        with ident.connect() as s:
            self.assertEqual(s.recv_message()["field"], "name")
            s.send_message({"type": "answer", "field": "name", "value": "Кирилл"})
            until(s, "greet")
            ident.process.kill()
        ident.process.wait()

        again = Server(self, "--port", "0", "--mode", "ident", "--data-dir", data)
        with again.connect() as s:
            greet = s.recv_message()
            self.assertEqual((greet["name"], greet["known"]), ("Кирилл", True))
        again.stop()
        auth = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
        with auth.connect() as s:
            s.send_message({"type": "token", "token": token})
            self.assertEqual(until(s, "auth_ok")["login"], "Kilroy")
        with auth.connect() as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "login", "value": "kilroy"})
            self.assertEqual(until(s, "ask")["field"], "password")
            s.send_message(
                {"type": "answer", "field": "password", "value": "was here 1944"}
            )
            self.assertEqual(until(s, "auth_ok")["via"], "password")

    def test_secrets_nowhere(self):
        """
        After registering, logging in, a wrong password and a logout, no
        file under the data directory and no log line holds the password
        or the token (raw bytes searched, hex and base64 forms too).
        """
        import base64

        data = os.path.abspath(self.mktemp())
        server = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
        password = "Tr0ub4dor&3-horse"
        with server.connect() as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "login", "value": "secretive"})
            until(s, "ask")
            s.send_message(
                {"type": "answer", "field": "new_password", "value": password}
            )
            token = until(s, "auth_ok")["token"]
        with server.connect() as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "login", "value": "secretive"})
            until(s, "ask")
            s.send_message(
                {"type": "answer", "field": "password", "value": password + "?"}
            )
            until(s, "ask")
            s.send_message({"type": "token", "token": token})
            until(s, "greet")
            s.send_message({"type": "logout"})
            until(s, "bye")
        server.stop()
        secrets = []
        for value in (password, token):
            raw = value.encode()
            secrets += [raw, raw.hex().encode(), base64.b64encode(raw)]
        found = 0
        for folder, _, files in os.walk(data):
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    content = f.read()
                found += sum(content.count(secret) for secret in secrets)
        self.assertEqual(found, 0)
        self.assertTrue(os.path.exists(os.path.join(data, "echolab.db")))

    def test_tac(self):
        """
        C{twistd -ny echo.tac} runs the same server, configured from
        ECHOLAB_ARGS.
        """
        data = os.path.abspath(self.mktemp())
        server = Server(
            self,
            tac=True,
            env={"ECHOLAB_ARGS": f"--port 0 --mode echo --data-dir {data}"},
        )
        self.assertIsNotNone(server.port, server.first_line)
        with server.connect() as s:
            s.send_message({"type": "say", "text": "tac", "repeat": 2})
            self.assertEqual([s.recv_message()["n"] for _ in range(2)], [1, 2])
        server.stop()
        with open(os.path.join(data, "echolab.log")) as f:
            self.assertIn("reactor class: echotwist.reactor.EPollReactor", f.read())

    def test_graceful_stop(self):
        """
        On SIGTERM or SIGINT every client gets C{bye}, the stores are closed,
        and the server exits with status 0.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            data = os.path.abspath(self.mktemp())
            server = Server(self, "--port", "0", "--data-dir", data, *CHEAP)
            clients = [server.connect() for _ in range(5)]
            server.process.send_signal(sig)
            for s in clients:
                with s:
                    self.assertEqual(until(s, "bye")["type"], "bye")
            server.process.communicate(timeout=30)
            self.assertEqual(server.process.returncode, 0, sig)
            # (no -wal or -shm file left: the database was closed cleanly)
            self.assertEqual(
                sorted(os.listdir(data)), ["echolab.db", "echolab.lock", "echolab.log"]
            )
            with open(os.path.join(data, "echolab.log")) as f:
                log = f.read()
            self.assertIn(f"received {signal.Signals(sig).name}; stopping", log)
            self.assertIn("stopped", log)
            self.assertIn("Server Shut Down.", log)  # twistd's last line

    def test_daemon_start_fails(self):
        """
        Daemonized (no C{-n}), a failed start is the same as in the
        foreground: exit status 1 at once, one line on standard error, no
        pid file left (twistd's daemon reports the failure to the parent
        process, which exits with it). Bad options are one line too.
        """
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        taken = held.getsockname()[1]
        data = os.path.abspath(self.mktemp())
        Server(self, "--port", "0", "--mode", "echo", "--data-dir", data)
        cases = [
            (
                ["--port", str(taken), "--port-tries", "1"],
                1,
                rf"echolab: cannot listen on 127.0.0.1:{taken}: .*",
            ),
            (
                ["--port", "0", "--data-dir", data],
                1,
                f"echolab: another echolab server is using {re.escape(data)}",
            ),
            (["--port", "70000"], 2, r"twistd echolab: --port: .*"),
        ]
        for args, code, line in cases:
            daemon = Daemon(self, *args, "--mode", "echo")
            self.assertEqual(daemon.code, code, daemon.err)
            self.assertLess(daemon.seconds, 10)
            self.assertEqual(daemon.out, b"")
            self.assertRegex(daemon.err.decode(), rf"\A{line}\n\Z")
            self.assertTrue(daemon.wait_gone(5), "pid file left")

    def test_daemon(self):
        """
        Daemonized, the server prints the listening line before the command
        returns, serves, and stops on SIGTERM sent through its pid file,
        which it removes.
        """
        daemon = Daemon(self, "--port", "0", "--mode", "echo")
        self.assertEqual((daemon.code, daemon.err), (0, b""))
        self.assertEqual(daemon.out.decode(), f"listening on 127.0.0.1:{daemon.port}\n")
        self.assertTrue(running(daemon.pid))
        with MessageSocket.connect_to(("127.0.0.1", daemon.port), timeout=10) as s:
            self.assertEqual(s.recv_message()["type"], "welcome")
            s.send_message({"type": "say", "text": "daemon"})
            self.assertEqual(s.recv_message()["text"], "daemon")
            os.kill(daemon.pid, signal.SIGTERM)
            self.assertEqual(until(s, "bye")["type"], "bye")
        self.assertTrue(daemon.wait_gone(), "still running")
        with open(os.path.join(daemon.cwd, "echolab-data", "echolab.log")) as f:
            log = f.read()
        self.assertIn("received SIGTERM; stopping", log)
        self.assertIn("Server Shut Down.", log)

    def test_twistd_logfile(self):
        """
        twistd's C{--logfile} names the log file, as C{--log-file} does;
        standard output (C{-}) or a second, different file is refused in
        one line.
        """
        server = Server(
            self, "--port", "0", "--mode", "echo", twistd=("--logfile", "server.log")
        )
        with server.connect() as s:
            local = s.getsockname()[1]
        self.assertEqual(server.stop()[0], 0)
        with open(os.path.join(server.cwd, "server.log")) as f:
            log = f.read()
        self.assertIn(f"listening on 127.0.0.1:{server.port}", log)
        self.assertIn(f"connection from 127.0.0.1:{local}", log)
        self.assertFalse(
            os.path.exists(os.path.join(server.cwd, "echolab-data", "echolab.log"))
        )
        for twistd, args, why in [
            (("--logfile", "-"), (), "--logfile -: "),
            (("--logfile", "a.log"), ("--log-file", "b.log"), "different files"),
        ]:
            server = Server(self, "--port", "0", *args, twistd=twistd)
            out, err = server.process.communicate(timeout=30)
            self.assertEqual(server.process.returncode, 2)
            self.assertEqual(server.first_line + out.decode(), "")
            self.assertEqual(err.decode().count("\n"), 1, err)
            self.assertIn(why, err.decode())

    def test_second_server(self):
        """
        A second server started in the same folder, where the first one's
        twistd.pid is, is refused in one line that says how to run two: the
        second with a --data-dir and --pidfile of its own, which then
        listens on the next free port (the README's demonstration of lab
        task 4).
        """
        first = Server(self, "--port", "0", "--mode", "echo", pidfile="twistd.pid")
        with open(os.path.join(first.cwd, "twistd.pid")) as f:
            pid = int(f.read())
        second = Server(
            self,
            "--port",
            str(first.port),
            "--mode",
            "echo",
            cwd=first.cwd,
            pidfile="twistd.pid",
        )
        out, err = second.process.communicate(timeout=30)
        self.assertEqual(second.process.returncode, 1)
        self.assertEqual(second.first_line + out.decode(), "")
        self.assertEqual(err.decode().count("\n"), 1, err)
        self.assertIn(f"(pid {pid})", err.decode())
        self.assertIn("--pidfile=", err.decode())
        self.assertIn("--data-dir", err.decode())
        second = Server(
            self,
            "--port",
            str(first.port),
            "--mode",
            "echo",
            "--data-dir",
            "second-data",
            cwd=first.cwd,
            pidfile="second.pid",
        )
        self.assertGreater(second.port, first.port)
        for server in (second, first):
            with server.connect():  # (serving: the reactor runs)
                pass
            self.assertEqual(server.stop()[0], 0)
        self.assertEqual(sorted(os.listdir(first.cwd)), ["echolab-data", "second-data"])
