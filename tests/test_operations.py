"""
Operating the server, end to end against real processes (C{twistd -n
echolab}): metrics scraped over HTTP after a scripted session, the health
check flipping when the store stops answering, the log reopened after
logrotate moved it, JSON log lines, the lines every start begins with;
and the shipped systemd unit checked by C{systemd-analyze verify}.
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import eventsFromJSONLogFile, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from echotwist import __version__
from echotwist.wire import MessageSocket, frame, encode_message
from tests.test_twistd import CHEAP, ROOT, Server, until

METRICS_LINE = re.compile(r"listening on \S+:(\d+) for metrics")


def metrics_server(testcase, *args):
    """
    A server with metrics on a port of its own, and that port (from the
    second line it prints).
    """
    server = Server(
        testcase, "--port", "0", *args, "--metrics", "tcp:0:interface=127.0.0.1"
    )
    line = server._read_line(30)
    match = METRICS_LINE.search(line)
    testcase.assertIsNotNone(match, line)
    return server, int(match.group(1))


def get(port, path, timeout=10):
    """
    GET C{path}: its status and body, whatever the status.
    """
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port):
    """
    The samples at C{/metrics}, as a dict of (name, labels) -> value.
    """
    status, text = get(port, "/metrics")
    assert status == 200, status
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    return predicate()


class Client(MessageSocket):
    """
    A client that counts the bytes and frames it sends and receives.
    """

    sent = received = frames_in = frames_out = 0

    def send_message(self, message):
        self.sent += len(frame(encode_message(message)))
        self.frames_out += 1
        super().send_message(message)

    def recv_message(self):
        message = super().recv_message()
        self.received += len(frame(encode_message(message)))
        self.frames_in += 1
        return message


class MetricsProcessTests(SynchronousTestCase):
    def test_scrape_after_session(self):
        """
        After a scripted session (a registration, a say, a wrong then a
        right password, a refused token, a bad message), C{/metrics}
        counts each by value.
        """
        server, port = metrics_server(self, "--mode", "auth", *CHEAP)
        address = ("127.0.0.1", server.port)
        clients = []
        with Client.connect_to(address, timeout=10) as s:
            clients.append(s)
            s.recv_message(), s.recv_message()  # welcome, ask login
            s.send_message({"type": "answer", "field": "login", "value": "alice"})
            s.recv_message()
            s.send_message(
                {
                    "type": "answer",
                    "field": "new_password",
                    "value": "otters-in-the-rain-42",
                }
            )
            s.recv_message(), s.recv_message()  # auth_ok, greet
            s.send_message({"type": "say", "text": "hi", "repeat": 2})
            s.recv_message(), s.recv_message()
            s.send_message({"type": "quit"})
            s.recv_message()
        with Client.connect_to(address, timeout=10) as s:
            clients.append(s)
            s.recv_message(), s.recv_message()
            s.send_message({"type": "token", "token": "not-a-token"})
            s.recv_message(), s.recv_message()  # error bad_token, ask login again
            s.send_message({"type": "answer", "field": "login", "value": "alice"})
            s.recv_message()
            s.send_message(
                {"type": "answer", "field": "password", "value": "wrong-one-1"}
            )
            s.recv_message(), s.recv_message()  # error bad_password, ask again
            s.send_message(
                {
                    "type": "answer",
                    "field": "password",
                    "value": "otters-in-the-rain-42",
                }
            )
            s.recv_message(), s.recv_message()
            s.send_text("{not json")
            s.recv_message()
            s.send_message({"type": "quit"})
            s.recv_message()
            s.frames_out += 1  # (the text frame)
            s.sent += len(frame(b"{not json"))

        def settled():
            samples = scrape(port)
            return samples if samples[("echolab_connections_open", ())] == 0 else None

        samples = wait_for(settled)
        self.assertIsNotNone(samples)

        def logins(method, result):
            key = (("method", method), ("result", result))
            return samples[("echolab_logins_total", key)]

        def errors(code):
            return samples[("echolab_errors_total", (("code", code),))]

        self.assertEqual(logins("registration", "ok"), 1)
        self.assertEqual(logins("password", "refused"), 1)
        self.assertEqual(logins("password", "ok"), 1)
        self.assertEqual(logins("token", "refused"), 1)
        self.assertEqual(logins("token", "ok"), 0)
        self.assertEqual(errors("bad_password"), 1)
        self.assertEqual(errors("bad_token"), 1)
        self.assertEqual(errors("bad_message"), 1)
        self.assertEqual(errors("rate_limited"), 0)
        self.assertEqual(errors("too_many_attempts"), 0)
        self.assertEqual(samples[("echolab_connections_total", ())], 2)
        self.assertEqual(samples[("echolab_connections_refused_total", ())], 0)
        total = lambda name: sum(getattr(c, name) for c in clients)  # noqa: E731
        self.assertEqual(
            samples[("echolab_messages_received_total", ())], total("frames_out")
        )
        self.assertEqual(
            samples[("echolab_messages_sent_total", ())], total("frames_in")
        )
        self.assertEqual(samples[("echolab_received_bytes_total", ())], total("sent"))
        self.assertEqual(samples[("echolab_sent_bytes_total", ())], total("received"))
        self.assertEqual(samples[("echolab_hash_duration_seconds_count", ())], 3)
        self.assertGreaterEqual(
            samples[("echolab_store_write_duration_seconds_count", ())], 2
        )
        self.assertEqual(samples[("echolab_hash_queue_length", ())], 0)
        self.assertGreater(samples[("process_resident_memory_bytes", ())], 0)
        self.assertIn(("echolab_reactor_lag_seconds_count", ()), samples)
        code, out, err = server.stop()
        self.assertEqual(code, 0, err)

    def test_healthz_flips(self):
        """
        C{/healthz} is 200 while the server listens and its store answers;
        503 while the store is locked by another writer (the server's own
        write waits on the lock, and the check's read behind it); 200 again
        once the lock is gone.
        """
        server, port = metrics_server(self, "--mode", "ident")
        self.assertEqual(get(port, "/healthz"), (200, "ok\n"))
        database = os.path.join(server.cwd, "echolab-data", "echolab.db")
        locker = sqlite3.connect(database, isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN IMMEDIATE")  # the write lock, held
        with server.connect() as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "name", "value": "Ada"})
            status, body = get(port, "/healthz")
            self.assertEqual(status, 503, body)
            self.assertIn("store has not answered", body)
            locker.execute("ROLLBACK")
            self.assertEqual(until(s, "greet")["name"], "Ada")
        self.assertEqual(wait_for(lambda: get(port, "/healthz")[0] == 200), True)
        server.stop()
        # Stopped: nothing listens any more.
        self.assertRaises(OSError, get, port, "/healthz", 2)

    def test_metrics_off(self):
        """
        Without C{--metrics}, nothing but the server's port is listened on.
        """
        server = Server(self, "--port", "0", "--mode", "echo")
        server.connect().close()  # (once it serves, SIGTERM stops it cleanly)
        code, out, err = server.stop()
        self.assertEqual((code, out, err), (0, "", ""))
        with open(os.path.join(server.cwd, "echolab-data", "echolab.log")) as f:
            self.assertIn("metrics: off", f.read())


class LogProcessTests(SynchronousTestCase):
    def test_reopen_after_move(self):
        """
        logrotate's way: move the file, send SIGUSR1; the lines that follow
        go to a new file (mode 0600) at the old path, the moved one keeps
        the lines before.
        """
        server = Server(
            self, "--port", "0", "--mode", "echo", "--log-rotate-bytes", "0"
        )
        data = os.path.join(server.cwd, "echolab-data")
        log, moved = (
            os.path.join(data, "echolab.log"),
            os.path.join(data, "echolab.log.1"),
        )
        with server.connect() as s:
            before = s.getsockname()[1]
        os.rename(log, moved)
        server.process.send_signal(signal.SIGUSR1)
        self.assertTrue(wait_for(lambda: os.path.exists(log)))
        with server.connect() as s:
            after = s.getsockname()[1]
        code, out, err = server.stop()
        self.assertEqual((code, err), (0, ""))
        with open(moved) as f:
            old = f.read()
        with open(log) as f:
            new = f.read()
        self.assertIn(f"connection from 127.0.0.1:{before}", old)
        self.assertIn("received SIGUSR1; reopening the log file", old)
        self.assertNotIn(f":{after}", old)
        self.assertIn(f"log file {log} reopened after SIGUSR1", new)
        self.assertIn(f"connection from 127.0.0.1:{after}", new)
        self.assertEqual(os.stat(log).st_mode & 0o777, 0o600)

    def test_json_lines(self):
        """
        With C{--log-format json}, every line of the log is a JSON object
        that twisted.logger reads back as the event logged.
        """
        server = Server(self, "--port", "0", "--mode", "echo", "--log-format", "json")
        with server.connect() as s:
            local = s.getsockname()[1]
        server.stop()
        path = os.path.join(server.cwd, "echolab-data", "echolab.log")
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            self.assertIsInstance(json.loads(line), dict)
        with open(path) as f:
            texts = [formatEvent(e) for e in eventsFromJSONLogFile(f)]
        self.assertEqual(len(texts), len(lines))
        self.assertIn(f"connection from 127.0.0.1:{local}", texts)
        self.assertIn(f"listening on 127.0.0.1:{server.port}", texts)

    def test_start_lines(self):
        """
        The first lines of every start (after twistd's own) say the
        version, the mode, the data folder as an absolute path, the store,
        the listeners and the log; then the listening lines.
        """
        server = Server(
            self,
            "--port",
            "0",
            "--mode",
            "ident",
            "--data-dir",
            "here",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        )
        server._read_line(30)
        server.connect().close()  # (once it serves, SIGTERM stops it cleanly)
        self.assertEqual(server.stop()[0], 0)
        data = os.path.join(server.cwd, "here")
        with open(os.path.join(data, "echolab.log")) as f:
            lines = [line.split(" ", 2)[2] for line in f.read().splitlines()]
        first = next(i for i, line in enumerate(lines) if "starting:" in line)
        self.assertTrue(
            all(
                line.startswith("twistd") or "reactor" in line for line in lines[:first]
            ),
            lines[:first],
        )
        self.assertEqual(
            lines[first : first + 3],
            [
                f"echolab {__version__} starting: ident mode, data folder {data}, "
                f"store SQLite {os.path.join(data, 'echolab.db')}",
                "listeners: --port 0 on 127.0.0.1 (or the next free of 10); "
                "--listen tcp:0:interface=127.0.0.1; metrics: off",
                f"log: {os.path.join(data, 'echolab.log')} "
                "(text, rotated at 10000000 bytes, 10 kept)",
            ],
        )
        listening = [line for line in lines[first + 3 :] if "listening on" in line]
        self.assertEqual(len(listening), 2)


class UpgradeTests(SynchronousTestCase):
    def test_newer_schema_refused(self):
        """
        A database from a newer echolab (a higher schema version) is refused
        at start: one line naming both versions, exit status 1, the
        database left as it was.
        """
        from echotwist.store import SCHEMA_VERSION

        cwd = os.path.abspath(self.mktemp())
        data = os.path.join(cwd, "echolab-data")
        os.makedirs(data, mode=0o700)
        path = os.path.join(data, "echolab.db")
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
        server = Server(self, "--port", "0", "--mode", "auth", cwd=cwd)
        code, out, err = server.stop()
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith(f"echolab: {path}"), err)
        for words in (f"{SCHEMA_VERSION + 1}", f"{SCHEMA_VERSION}", "upgrade echolab"):
            self.assertIn(words, err)
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        self.assertEqual(version, SCHEMA_VERSION + 1)


class SystemdUnitTests(SynchronousTestCase):
    UNIT = os.path.join(ROOT, "contrib", "echolab.service")

    def read_unit(self):
        with open(self.UNIT) as f:
            return f.read()

    def test_verify(self):
        """
        C{systemd-analyze verify} finds nothing wrong with the unit (its
        C{ExecStart} pointed at this checkout's twistd, which it checks
        exists).
        """
        tool = shutil.which("systemd-analyze")
        if tool is None:
            raise SkipTest("systemd-analyze is not installed")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if not os.path.exists(twistd):
            twistd = sys.executable
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        unit = os.path.join(folder, "echolab.service")
        with open(unit, "w") as f:
            f.write(self.read_unit().replace("/opt/echolab/venv/bin/twistd", twistd))
        done = subprocess.run([tool, "verify", unit], capture_output=True, text=True)
        self.assertEqual((done.returncode, done.stderr), (0, ""))

    def test_hardening(self):
        """
        The unit runs without privileges, on a read-only system but for the
        data folder it names in C{--data-dir}, and reopens its log on
        reload.
        """
        text = self.read_unit()
        settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "CapabilityBoundingSet": "",
            "User": "echolab",
        }.items():
            self.assertEqual(settings.get(key), value, key)
        data_dir = re.search(r"--data-dir (\S+)", text).group(1)
        self.assertEqual(settings["ReadWritePaths"], data_dir)
        self.assertEqual(settings["ExecReload"], "/bin/kill -USR1 $MAINPID")
