"""
Black-box tests of C{--workers N}: real processes sharing one port.
"""

import os
import re
import signal
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from echotwist.workers import worker_log_path
from tests.postgres_support import fresh_database
from tests.test_deployment import PASSWORD, register, token_login, wrong_password
from tests.test_twistd import CHEAP, Server, until


def worker_pids(parent_pid):
    done = subprocess.run(
        ["pgrep", "-P", str(parent_pid)], capture_output=True, text=True
    )
    return sorted(int(pid) for pid in done.stdout.split())


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(condition, timeout=30, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class WorkersTests(SynchronousTestCase):
    def start(self, workers=2, *args):
        self.data = os.path.abspath(self.mktemp())
        server = Server(
            self, "--port", "0", "--data-dir", self.data, "--workers", str(workers),
            *CHEAP, *args,
        )  # fmt: skip
        self.assertIsNotNone(server.port, server.first_line)
        wait_for(
            lambda: (
                len(worker_pids(server.process.pid)) == workers
                and all(self.serving(server, i) for i in range(1, workers + 1))
            ),
            what="the workers",
        )
        return server

    def serving(self, server, index):
        path = worker_log_path(os.path.join(self.data, "echolab.log"), index)
        return os.path.exists(path) and "serving" in open(path).read()

    def log(self, name="echolab.log"):
        with open(os.path.join(self.data, name)) as f:
            return f.read()

    def test_kill_9_replaced(self):
        """
        A worker killed with C{kill -9} is replaced, and meanwhile the
        other one serves: a client of the survivor keeps its connection,
        new clients are served.
        """
        server = self.start(2, "--mode", "echo")
        before = worker_pids(server.process.pid)
        idle = [open_files(pid) for pid in before]
        clients = []
        while len(clients) < 200 and not all(
            open_files(pid) > files for pid, files in zip(before, idle, strict=True)
        ):
            clients.append(server.connect())  # until each worker has some
        os.kill(before[0], signal.SIGKILL)
        with server.connect() as s:
            s.send_message({"type": "say", "text": "still here"})
            self.assertEqual(until(s, "echo")["text"], "still here")

        def replaced():
            pids = worker_pids(server.process.pid)
            return pids if len(pids) == 2 and before[0] not in pids else None

        after = wait_for(replaced, what="a replacement")
        self.assertIn(before[1], after)
        self.assertNotIn(before[0], after)
        alive = 0
        for s in clients:
            try:
                s.send_message({"type": "say", "text": "x"})
                alive += until(s, "echo")["text"] == "x"
            except (OSError, EOFError):  # (the killed worker's clients)
                pass
        self.assertGreater(alive, 0)  # (the survivor's clients)
        self.assertRegex(self.log(), r"worker 1 \(pid \d+\) ended: .*signal 9")
        self.assertIn("replacing worker 1", self.log())

    def test_sigterm_says_bye_everywhere(self):
        """
        SIGTERM to the parent: every client of every worker gets C{bye},
        all the processes end, the parent with status 0.
        """
        server = self.start(2, "--mode", "echo")
        clients = [server.connect() for _ in range(10)]
        pids = worker_pids(server.process.pid)
        status, out, err = server.stop()
        self.assertEqual((status, err), (0, ""))
        for s in clients:
            with s:
                self.assertEqual(until(s, "bye")["type"], "bye")
        for pid in pids:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), pid)
        for index in (1, 2):
            worker_log = self.log(f"echolab-worker{index}.log")
            self.assertRegex(worker_log, rf"worker {index} \(pid \d+\) serving")
            self.assertIn("received SIGTERM; stopping", worker_log)

    def test_auth_shared_between_workers(self):
        """
        With SQLite in the data directory, workers share registrations,
        tokens, revocations and failed-login counts: many connections,
        landing on both workers, agree.
        """
        server = self.start(2, "--throttle-login-address", "2")
        with server.connect() as s:
            token = register(s, "Worker")["token"]
        for _ in range(10):
            with server.connect() as s:
                self.assertEqual(token_login(s, token)["login"], "Worker")
        served = [
            len(re.findall("logged in with a token", self.log(f"echolab-worker{i}.log")))
            for i in (1, 2)
        ]  # fmt: skip
        self.assertEqual(sum(served), 10)
        codes = [wrong_password(server, "worker", i) for i in range(5)]
        self.assertEqual(codes, ["bad_password"] * 3 + ["rate_limited"] * 2)
        with server.connect() as s:
            token_login(s, token)
            s.send_message({"type": "logout"})
            until(s, "bye")
        for _ in range(6):
            with server.connect() as s:
                self.assertEqual(token_login(s, token)["code"], "bad_token")

    def test_postgres_store(self):
        """
        Workers on a PostgreSQL store serve registrations and tokens.
        """
        url = fresh_database(self)
        server = self.start(2, "--store", url)
        with server.connect() as s:
            token = register(s, "pgworker", PASSWORD)["token"]
        for _ in range(4):
            with server.connect() as s:
                self.assertEqual(token_login(s, token)["via"], "token")

    def test_start_failure_said_once(self):
        """
        A store that cannot be used is said once, by the parent, before
        any worker starts: one line, exit status 1.
        """
        data = os.path.abspath(self.mktemp())
        server = Server(
            self, "--port", "0", "--data-dir", data, "--workers", "2",
            "--store", "postgresql:///x?host=/nonexistent",
        )  # fmt: skip
        out, err = server.process.communicate(timeout=30)
        self.assertEqual(server.process.returncode, 1)
        self.assertEqual(err.decode().count("\n"), 1, err)
        self.assertIn("No such file", err.decode())

    def test_only_tcp_shared(self):
        """
        Listeners a worker cannot adopt are refused as a usage error.
        """
        server = Server(self, "--workers", "2", "--listen", "unix:/tmp/x.sock")
        out, err = server.process.communicate(timeout=30)
        self.assertEqual(server.process.returncode, 2)
        self.assertIn("--workers shares only tcp", err.decode())
