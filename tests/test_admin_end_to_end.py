"""
End to end: C{echolab-admin} run as a separate process against a server
running in another (C{twistd -n echolab}), as an operator runs them. Each
change reaches the running server within a second, without a restart.
"""

import json
import os
import sqlite3
import socket
import subprocess
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from echotwist.wire import MessageSocket
from tests.postgres_support import fresh_database
from tests.test_admin_cli import ADMIN
from tests.test_twistd import CHEAP, Server, until

PASSWORD = "correct horse battery"
WITHIN = 1.0  # seconds: the bound for a change to take effect
# The cheapest hash, at normal priority: at idle priority, hashes wait
# while other tests keep the CPUs busy, and these tests are not about that.
HASH = (*CHEAP, "--hash-priority", "normal")


def log_in(port, login, password=PASSWORD, source=None):
    """
    Log in as C{login} (registering it if new) on a new connection.

    @return: the connection and the C{auth_ok}.
    """
    s = (
        MessageSocket.connect_to(("127.0.0.1", port), timeout=10)
        if source is None
        else _bound(port, source)
    )
    until(s, "ask")
    s.send_message({"type": "answer", "field": "login", "value": login})
    field = until(s, "ask")["field"]
    s.send_message({"type": "answer", "field": field, "value": password})
    reply = s.recv_message()
    return s, reply


def _bound(port, source):
    s = MessageSocket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def token_accepted(port, token):
    with MessageSocket.connect_to(("127.0.0.1", port), timeout=10) as s:
        until(s, "ask")
        s.send_message({"type": "token", "token": token})
        return s.recv_message()["type"] == "auth_ok"


def seconds_until(condition, limit=10):
    """
    Seconds from now until C{condition()} holds, polled every 10 ms.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(0.01)
    return time.monotonic() - started


class ServerProcessCase(SynchronousTestCase):
    """
    A server process on a data folder of the test's own, and the admin
    tool run on that folder.
    """

    mode = "auth"
    store = ()  # the --store option of both, if any

    def setUp(self):
        self.data = os.path.abspath(self.mktemp())
        self.server = self.start()

    def start(self):
        server = Server(
            self, "--port", "0", "--mode", self.mode, "--data-dir", self.data,
            *self.store, *HASH,
        )  # fmt: skip
        self.assertIsNotNone(server.port, server.first_line)
        return server

    def admin(self, *argv, stdin=None):
        done = subprocess.run(
            [ADMIN, "--data-dir", self.data, *self.store, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout

    def assertEndsWithBye(self, s):
        """
        The open session gets C{bye} and is closed, within a second.
        """
        s.settimeout(WITHIN)
        until(s, "bye")
        self.assertEqual(s.recv(1), b"")


class RunningServerTests(ServerProcessCase):
    def test_revoke(self):
        """
        A revoked token is refused at its next use, and the session that
        holds it ends, within a second of the admin tool's return.
        """
        port = self.server.port
        s, auth_ok = log_in(port, "alice")
        other, _ = log_in(port, "bob")
        self.assertTrue(token_accepted(port, auth_ok["token"]))  # cached
        self.admin("revoke", "alice")
        delay = seconds_until(lambda: not token_accepted(port, auth_ok["token"]))
        self.assertLess(delay, WITHIN)
        self.assertEndsWithBye(s)
        other.send_message({"type": "say", "text": "still here"})
        self.assertEqual(until(other, "echo")["text"], "still here")

    def test_delete(self):
        """
        A deleted user's session ends with C{bye}, and its login is new
        again, within a second.
        """
        s, _ = log_in(self.server.port, "alice")
        self.admin("delete-user", "alice")
        self.assertEndsWithBye(s)
        again, reply = log_in(self.server.port, "alice", "another passphrase")
        self.assertEqual(reply["via"], "register")

    def test_reset_password(self):
        """
        After a reset, only the new password works, at once.
        """
        s, _ = log_in(self.server.port, "alice")  # the old hash is cached
        self.admin(
            "reset-password", "alice", "--password-stdin", stdin="new passphrase 7\n"
        )
        self.assertEndsWithBye(s)
        old, reply = log_in(self.server.port, "alice")
        self.assertEqual(reply["code"], "bad_password")
        new, reply = log_in(self.server.port, "alice", "new passphrase 7")
        self.assertEqual((reply["type"], reply["via"]), ("auth_ok", "password"))

    def test_last_login_and_newer_schema(self):
        """
        A token login is recorded as the last login (written at the latest
        when the server stops); a database of a newer schema then stops
        the server from starting, with one line.
        """
        _, auth_ok = log_in(self.server.port, "alice")
        time.sleep(1.1)  # a later second than the registration's
        self.assertTrue(token_accepted(self.server.port, auth_ok["token"]))
        self.server.stop()
        [alice] = json.loads(self.admin("users", "--json"))
        self.assertGreater(alice["last_login"], alice["created"])
        db = sqlite3.connect(os.path.join(self.data, "echolab.db"))
        db.execute("PRAGMA user_version=99")
        db.close()
        server = Server(self, "--port", "0", "--data-dir", self.data, *HASH)
        code, out, err = server.stop()
        self.assertEqual(server.process.returncode, 1)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("upgrade echolab", err)


class PostgresTests(ServerProcessCase):
    """
    The server and the tool on a PostgreSQL store (C{--store URL}).
    """

    def setUp(self):
        self.store = ("--store", fresh_database(self))
        super().setUp()

    test_revoke = RunningServerTests.test_revoke


class IdentityTests(ServerProcessCase):
    mode = "ident"

    def test_rename(self):
        """
        A renamed identity is greeted by its new name within a second.
        """

        def greeting():
            with _bound(self.server.port, "127.0.0.2") as s:
                s.recv_message()
                return s.recv_message()

        with _bound(self.server.port, "127.0.0.2") as s:
            s.recv_message()
            s.send_message({"type": "answer", "field": "name", "value": "Ann"})
            self.assertEqual(until(s, "greet")["name"], "Ann")
        self.admin("rename-identity", "127.0.0.2", "Anna")
        delay = seconds_until(lambda: greeting()["name"] == "Anna")
        self.assertLess(delay, WITHIN)


class BackupTests(ServerProcessCase):
    def test_backup_under_registrations(self):
        """
        A backup taken while registrations stream in holds every
        registration acknowledged before it began; restored (the server
        stopped), each of those users logs in.
        """
        acknowledged = []  # (login, when acknowledged)
        stop = threading.Event()

        failures = []

        def register(prefix):
            i = 0
            try:
                while not stop.is_set():
                    s, reply = log_in(self.server.port, f"{prefix}{i}")
                    s.close()
                    if reply["type"] == "auth_ok":
                        acknowledged.append((reply["login"], time.monotonic()))
                    i += 1
            except Exception as e:  # (said by the test, not lost in a thread)
                failures.append(e)

        workers = [threading.Thread(target=register, args=(p,)) for p in "ab"]
        for worker in workers:
            worker.start()
        try:
            seconds_until(lambda: len(acknowledged) >= 10, limit=120)
            began = time.monotonic()
            backup = os.path.join(os.path.abspath(self.mktemp()))
            self.admin("backup", backup)
            count = len(acknowledged)
            seconds_until(lambda: len(acknowledged) >= count + 3, limit=120)
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        self.assertEqual(failures, [])
        before = {login for login, when in acknowledged if when < began}
        self.assertGreaterEqual(len(before), 10)
        self.server.stop()
        self.admin("restore", backup)
        restored = {u["login"] for u in json.loads(self.admin("users", "--json"))}
        self.assertEqual(before - restored, set())
        self.assertIn("sound", self.admin("check"))
        self.server = self.start()
        for login in sorted(before)[:3]:
            _, reply = log_in(self.server.port, login)
            self.assertEqual(reply.get("via"), "password")


class DataFolderTests(SynchronousTestCase):
    def test_log_names_absolute_data_folder(self):
        """
        The default data folder is relative to where the server starts, and
        its log says which folder that is, absolutely, and whether it is
        new; the admin tool run from the same place finds it.
        """
        cwd = os.path.abspath(self.mktemp())
        server = Server(self, "--port", "0", *HASH, cwd=cwd)
        self.assertIsNotNone(server.port, server.first_line)
        log_in(server.port, "alice")[0].close()
        server.stop()
        data = os.path.join(cwd, "echolab-data")
        with open(os.path.join(data, "echolab.log")) as f:
            self.assertIn(f"data folder: {data} (new: no database yet)", f.read())
        done = subprocess.run(
            [ADMIN, "users", "--json"], cwd=cwd, capture_output=True, text=True
        )
        self.assertEqual([u["login"] for u in json.loads(done.stdout)], ["alice"])
