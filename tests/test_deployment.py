"""
Black-box tests of C{--store}: server processes sharing one PostgreSQL
database, as servers on several machines do, and the refusals at start.
"""

import os
import time
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from echotwist.deployment import Deployment
from tests.postgres_support import (
    PostgresServer,
    fresh_database,
    missing,
)
from tests.test_twistd import CHEAP, Server, until

PASSWORD = "correct horse battery"


def register(s, login, password=PASSWORD):
    """
    Register C{login} on a fresh connection C{s}, up to the server's verdict
    (an C{auth_ok} or an C{error}).
    """
    start_registration(s, login)
    return finish_registration(s, password)


def start_registration(s, login):
    until(s, "ask")
    s.send_message({"type": "answer", "field": "login", "value": login})
    assert until(s, "ask")["field"] == "new_password"


def finish_registration(s, password=PASSWORD):
    s.send_message({"type": "answer", "field": "new_password", "value": password})
    return verdict(s)


def token_login(s, token):
    s.send_message({"type": "token", "token": token})
    return verdict(s)


def wrong_password(server, login, attempt):
    """
    A wrong password for C{login} on a new connection to C{server}.

    @return: the error code it got.
    """
    with server.connect() as s:
        until(s, "ask")
        s.send_message({"type": "answer", "field": "login", "value": login})
        until(s, "ask")
        s.send_message(
            {"type": "answer", "field": "password", "value": f"wrong guess {attempt}"}
        )
        return verdict(s)["code"]


def one_process_allowance(guess, free, guesses=6):
    """
    Check that wrong passwords for one login, C{guess(i)} giving the code
    the i-th got, get what one process allows: C{free} failures and one
    more are checked, and after that every guess within the block the last
    failure earned (1 s, then doubling) is refused unchecked
    (C{rate_limited}). A guess after its block ran out (a slow machine) may
    be checked: one process allows it. (Plain asserts: the cluster script
    uses it too.)

    @return: the codes.
    """
    codes, failures, answered = [], 0, None
    for i in range(guesses):
        started = time.monotonic()
        codes.append(guess(i))
        over = failures - free
        if failures <= free:
            assert codes[-1] == "bad_password", codes
        elif started - answered < 2 ** (over - 1) - 0.2:
            assert codes[-1] == "rate_limited", codes
        if codes[-1] == "bad_password":
            failures, answered = failures + 1, time.monotonic()
    assert failures > free, codes
    return codes


def assert_one_process_allows(servers, login, free):
    """
    L{one_process_allowance} of wrong passwords for C{login}, in turn on
    C{servers}.
    """
    one_process_allowance(
        lambda i: wrong_password(servers[i % len(servers)], login, i), free
    )


def verdict(s):
    """
    The server's C{auth_ok} or C{error}, past other messages.
    """
    while True:
        message = s.recv_message()
        if message["type"] in ("auth_ok", "error"):
            return message


class DeploymentTests(SynchronousTestCase):
    def test_default_store(self):
        """
        Without C{--store}, the SQLite file in the data directory; with
        C{sqlite:PATH}, that file (relative to the data directory).
        """
        self.assertEqual(Deployment().database("/d", None).path, "/d/echolab.db")
        self.assertEqual(
            Deployment(store="sqlite:other.db").database("/d", None).path,
            "/d/other.db",
        )
        self.assertFalse(Deployment().shared)
        self.assertTrue(Deployment(store="postgresql:///x").shared)
        self.assertTrue(Deployment(workers=2).shared)


class StoreDescriptionTests(SynchronousTestCase):
    def test_no_secret_in_the_start_line(self):
        """
        The start line names the store, never a password in its URI.
        """
        for uri in [
            "postgresql://bob:s3cret@db.example/echolab",
            "postgresql:///echolab?host=/run/pg&user=bob&password=s3cret",
        ]:
            line = Deployment(store=uri).describe_store("/data")
            self.assertNotIn("s3cret", line)
            self.assertIn("dbname=echolab", line)
        self.assertEqual(
            Deployment().describe_store("/data"), "SQLite /data/echolab.db"
        )


class OutageTests(SynchronousTestCase):
    def test_database_lost_and_back(self):
        """
        While PostgreSQL is down, a request that needs it gets
        C{server_error} and the connection stays open; once it is back the
        same server serves it again, without a restart.
        """
        why = missing()
        if why:
            raise SkipTest(why)
        pg = PostgresServer.temporary().start()
        self.addCleanup(pg.destroy)
        url = pg.create_database("outage")
        data = os.path.abspath(self.mktemp())
        server = Server(self, "--port", "0", "--data-dir", data, "--store", url, *CHEAP)
        with server.connect() as s:
            token = register(s, "patient")["token"]
        pg.stop()
        with server.connect() as s:
            self.assertEqual(token_login(s, token)["code"], "server_error")
            pg.start()
            deadline = time.monotonic() + 30
            while True:
                answer = token_login(s, token)
                if answer["type"] == "auth_ok" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(answer["login"], "patient")


class SharedPostgresTests(SynchronousTestCase):
    """
    Two server processes, each with its own data directory (as on two
    machines), on one PostgreSQL database.
    """

    def setUp(self):
        self.url = fresh_database(self)

    def server(self, *args):
        data = os.path.abspath(self.mktemp())
        return Server(
            self, "--port", "0", "--data-dir", data, "--store", self.url, *CHEAP, *args
        )

    def test_shared_state(self):
        """
        A login registered on one server logs in with its token on the
        other; a token revoked (logout) on one is refused on the other,
        even right after that one accepted it.
        """
        a, b = self.server(), self.server()
        with a.connect() as s:
            token = register(s, "Shared")["token"]
        with b.connect() as s:
            self.assertEqual(token_login(s, token)["login"], "Shared")
        with a.connect() as s:
            self.assertEqual(token_login(s, token)["via"], "token")
            s.send_message({"type": "logout"})
            until(s, "bye")
        with b.connect() as s:
            self.assertEqual(token_login(s, token)["code"], "bad_token")

    def test_registration_race(self):
        """
        The same login registered at once on both servers: exactly one
        wins; the other client is told it was just taken (the contract's
        answer) and asked for the password.
        """
        a, b = self.server(), self.server()
        with a.connect() as s1, b.connect() as s2:
            start_registration(s1, "Racer")
            start_registration(s2, "racer")
            s1.send_message(
                {"type": "answer", "field": "new_password", "value": PASSWORD}
            )
            results = [finish_registration(s2), verdict(s1)]
        kinds = sorted(r["type"] for r in results)
        self.assertEqual(kinds, ["auth_ok", "error"], results)
        loser = next(r for r in results if r["type"] == "error")
        self.assertEqual(loser["code"], "bad_value")
        self.assertIn("just taken", loser["text"])

    def test_throttle_across_processes(self):
        """
        Wrong passwords for one login, alternating between the servers:
        they are blocked after the free failures of one server, not two.
        """
        free = ("--throttle-login-address", "2")
        servers = self.server(*free), self.server(*free)
        with servers[0].connect() as s:
            register(s, "victim")
        assert_one_process_allows(servers, "victim", free=2)

    def test_store_refused_at_start(self):
        """
        A bad URL, an unreachable server, a refusal: exit status 1 and one
        line on standard error, saying why.
        """
        cases = {
            "postgresql://x/y?bogus=1": "bogus",
            "postgresql:///echolab?host=/nonexistent": "No such file",
            self.url.replace("postgres@", "nobody@"): 'role "nobody" does not exist',
            "mysql://x": "not a postgresql:// URL",
        }
        for url, why in cases.items():
            data = os.path.abspath(self.mktemp())
            server = Server(self, "--port", "0", "--data-dir", data, "--store", url)
            out, err = server.process.communicate(timeout=30)
            self.assertEqual(server.process.returncode, 1, url)
            self.assertEqual(server.first_line + out.decode(), "")
            self.assertEqual(err.decode().count("\n"), 1, err)
            self.assertTrue(err.decode().startswith("echolab: "), err)
            self.assertIn(why, err.decode())
