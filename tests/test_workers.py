"""
Black-box tests of C{--workers N}: real processes sharing one port.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time

from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from echotwist.options import Options
from echotwist.workers import (
    QUICK_DEATH,
    STOP_WAIT,
    WORKER_ENVIRONMENT,
    WorkersService,
    worker_log_path,
)
from tests.postgres_support import fresh_database
from tests.test_deployment import (
    PASSWORD,
    assert_one_process_allows,
    register,
    token_login,
)
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


def free_port_pair():
    """
    A port P such that P + 1 and P + 2 were free a moment ago.
    """
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", base + 1))
                two.bind(("127.0.0.1", base + 2))
            return base
        except OSError:
            continue
    raise RuntimeError("no three free ports in a row")


def _fetch(urlopen, url):
    try:
        with urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


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

    def test_metrics_per_worker(self):
        """
        With C{--metrics tcp:P}, worker I{k} serves its own metrics on port
        P + I{k}, labelled with its index, and its health check says 200.
        """
        from urllib.request import urlopen

        base = free_port_pair()
        server = self.start(
            2, "--mode", "echo", "--metrics", f"tcp:{base}:interface=127.0.0.1"
        )
        with server.connect() as s:
            s.send_message({"type": "say", "text": "counted"})
            until(s, "echo")
        for index in (1, 2):
            url = f"http://127.0.0.1:{base + index}"
            text = wait_for(
                lambda url=url: _fetch(urlopen, url + "/metrics"),
                what=f"worker {index}'s metrics",
            )
            self.assertIn(f'worker="{index}"', text)
            self.assertEqual(_fetch(urlopen, url + "/healthz"), "ok\n")

    def test_raw_mode(self):
        """
        C{--mode raw}: the parent says so, and the workers echo bytes as
        they came, on the shared port.
        """
        server = self.start(2, "--mode", "raw")
        self.assertRegex(server.first_line, r"listening on \S+:\d+ \(raw\)")
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", server.port), 10) as s:
                s.sendall(b"hello, workers\n")
                s.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := s.recv(4096):
                    received += chunk
                self.assertEqual(received, b"hello, workers\n")

    def test_raw_listen_refused(self):
        """
        C{--raw-listen} beside C{--workers}: a usage error in one line,
        saying what to use instead.
        """
        options = Options()
        e = self.assertRaises(
            usage.UsageError,
            options.parseOptions,
            ["--workers", "2", "--port", "0", "--raw-listen", "tcp:0"],
        )
        self.assertEqual(
            str(e), "--raw-listen cannot be used with --workers (use --mode raw)"
        )

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
        assert_one_process_allows([server], "worker", free=2)
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


class SpawningReactor(MemoryReactorClock):
    """
    A memory reactor that records the processes it is asked to spawn.
    """

    def __init__(self):
        super().__init__()
        self.spawned = []

    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None):
        transport = FakeProcess(len(self.spawned) + 100)
        self.spawned.append((protocol, args, env, childFDs, transport))
        protocol.makeConnection(transport)
        return transport


class FakeProcess:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []

    def signalProcess(self, number):
        self.signals.append(number)


class SupervisionTests(SynchronousTestCase):
    """
    L{WorkersService}'s bookkeeping, on a memory reactor.
    """

    def setUp(self):
        self.reactor = SpawningReactor()
        self.workers = WorkersService(
            self.reactor, 2, ["--mode", "echo"], "/d/e.log", []
        )
        self.workers.startService()

    def end(self, index):
        process = self.workers.processes[index]
        process.processEnded(Failure(ProcessTerminated(signal=9)))
        return process

    def test_replaced_after_a_pause_that_grows(self):
        """
        A worker that ends is replaced after a pause, longer each time it
        dies young, back to the shortest once one lived.
        """
        self.assertEqual(sorted(self.workers.processes), [1, 2])
        pauses = []
        for _ in range(3):
            before = self.reactor.seconds()
            self.end(1)
            while 1 not in self.workers.processes:
                self.reactor.advance(0.25)
            pauses.append(self.reactor.seconds() - before)
        self.assertEqual(pauses, [1.0, 2.0, 4.0])
        self.reactor.advance(QUICK_DEATH + 1)
        self.end(1)
        self.reactor.advance(0.5)
        self.assertIn(1, self.workers.processes)
        _, _, env, fds, _ = self.reactor.spawned[-1]
        role = json.loads(env[WORKER_ENVIRONMENT])
        self.assertEqual((role["index"], role["log"]), (1, "/d/e-worker1.log"))

    def test_stop_waits_for_all(self):
        """
        Stopping asks every worker to stop (SIGTERM), replaces none, fires
        once all ended, and kills those still there after the wait.
        """
        stopped = self.workers.stopService()
        processes = list(self.workers.processes.values())
        self.assertEqual(
            [p.transport.signals for p in processes], [[signal.SIGTERM]] * 2
        )
        processes[0].processEnded(Failure(ProcessTerminated(0)))
        self.assertNoResult(stopped)
        self.reactor.advance(STOP_WAIT)
        self.assertEqual(processes[1].transport.signals[-1], signal.SIGKILL)
        processes[1].processEnded(Failure(ProcessTerminated(signal=9)))
        self.successResultOf(stopped)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 2)  # none replaced
