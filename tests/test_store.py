"""
Tests for L{echotwist.store}: what is stored, how, and that it lasts.
"""

import os
import sqlite3
import stat
import threading

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from echotwist.credentials import CredentialStore, LoginTaken
from echotwist.store import (
    SCHEMA_VERSION,
    Database,
    IdentityStore,
    StoreError,
    open_database,
)
from tests.helpers import InlineDatabase


class Stores(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "echolab.db")
        self.clock = Clock()
        self.clock.advance(1000)
        self.db = self.reopen()

    def reopen(self):
        db = InlineDatabase(self.path, None)
        db.open()
        self.addCleanup(db.close)
        return db

    def result(self, d):
        return self.successResultOf(d)


class DatabaseTests(Stores):
    def test_file_mode(self):
        """
        The database file is readable by its owner only, whatever the umask.
        """
        old = os.umask(0)
        try:
            path = os.path.join(self.dir, "other.db")
            open_database(path).close()
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_wal_and_full_sync(self):
        """
        The journal is a write-ahead log and commits are fully synced.
        """
        db = open_database(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL

    def test_schema_version(self):
        """
        The schema is versioned, so later releases can migrate it.
        """
        db = open_database(self.path)
        self.addCleanup(db.close)
        self.assertEqual(
            db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION
        )

    def test_newer_schema_refused(self):
        """
        A database from a newer echolab is refused with a clear reason.
        """
        db = sqlite3.connect(self.path)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
        e = self.assertRaises(StoreError, open_database, self.path)
        self.assertIn("upgrade echolab", str(e))

    def test_not_a_database(self):
        """
        A file that is not SQLite gives a L{StoreError}, not a traceback.
        """
        path = os.path.join(self.dir, "junk.db")
        with open(path, "wb") as f:
            f.write(b"this is not sqlite" * 100)
        self.assertRaises(StoreError, open_database, path)


class IdentityStoreTests(Stores):
    def test_remember(self):
        """
        A name stored for an address is found again after a reopen.
        """
        store = IdentityStore(self.db, self.clock)
        self.assertIsNone(self.result(store.name_for("10.0.0.1")))
        self.result(store.remember("10.0.0.1", "Анна 🦊"))
        self.result(store.remember("2001:db8::1", "Bob"))
        store = IdentityStore(self.reopen(), self.clock)
        self.assertEqual(self.result(store.name_for("10.0.0.1")), "Анна 🦊")
        self.assertEqual(self.result(store.name_for("2001:db8::1")), "Bob")

    def test_rename(self):
        """
        Storing again for an address replaces its name.
        """
        store = IdentityStore(self.db, self.clock)
        self.result(store.remember("10.0.0.1", "Ann"))
        self.result(store.remember("10.0.0.1", "Anne"))
        self.assertEqual(self.result(store.name_for("10.0.0.1")), "Anne")


class CredentialStoreTests(Stores):
    def setUp(self):
        super().setUp()
        self.store = CredentialStore(self.db, self.clock)

    def test_add_user(self):
        """
        A user is found by any case of its login, with its spelling kept.
        """
        self.result(self.store.add_user("Alice", "$argon2id$x", b"d" * 32, 2000))
        self.assertEqual(
            self.result(self.store.user("ALICE")), ("Alice", "$argon2id$x")
        )
        self.assertIsNone(self.result(self.store.user("bob")))

    def test_login_taken(self):
        """
        Registering a login again, in any case, fails and adds no token.
        """
        self.result(self.store.add_user("alice", "h1", b"1" * 32, 2000))
        self.failureResultOf(
            self.store.add_user("ALICE", "h2", b"2" * 32, 2000), LoginTaken
        )
        self.assertEqual(self.result(self.store.user("alice"))[1], "h1")
        self.assertIsNone(self.result(self.store.token_login(b"2" * 32)))

    def test_tokens(self):
        """
        A token is valid until it expires or is revoked.
        """
        self.result(self.store.add_user("alice", "h", b"1" * 32, 2000))
        self.result(self.store.add_token("alice", b"2" * 32, 1500))
        self.assertEqual(self.result(self.store.token_login(b"1" * 32)), "alice")
        self.assertEqual(self.result(self.store.token_login(b"2" * 32)), "alice")
        self.result(self.store.revoke(b"1" * 32))
        self.assertIsNone(self.result(self.store.token_login(b"1" * 32)))
        self.clock.advance(500)
        self.assertIsNone(self.result(self.store.token_login(b"2" * 32)))
        self.assertIsNone(self.result(self.store.token_login(b"3" * 32)))

    def test_cache_and_database_agree(self):
        """
        Tokens are found the same from the cache (this store issued them)
        and from the database (a store opened after a restart), and a
        revoked token is refused by both.
        """
        self.result(self.store.add_user("Alice", "h", b"1" * 32, 2000))
        self.result(self.store.add_token("Alice", b"2" * 32, 2000))
        fresh = CredentialStore(self.db, self.clock)
        for store in (self.store, fresh):
            self.assertEqual(self.result(store.token_login(b"1" * 32)), "Alice")
            self.assertEqual(self.result(store.token_login(b"2" * 32)), "Alice")
        self.result(self.store.revoke(b"1" * 32))
        self.assertIsNone(self.result(self.store.token_login(b"1" * 32)))
        self.assertIsNone(
            self.result(CredentialStore(self.db, self.clock).token_login(b"1" * 32))
        )
        self.clock.advance(1000)
        for store in (self.store, fresh):
            self.assertIsNone(self.result(store.token_login(b"2" * 32)))

    def test_cache_bounded(self):
        """
        The token cache keeps at most its size; older tokens are then looked
        up in the database, still valid.
        """
        store = CredentialStore(self.db, self.clock, cache_size=3)
        self.result(store.add_user("alice", "h", b"\x00" * 32, 2000))
        for i in range(1, 10):
            self.result(store.add_token("alice", bytes([i]) * 32, 2000))
        self.assertEqual(len(store._tokens), 3)
        for i in range(10):
            self.assertEqual(self.result(store.token_login(bytes([i]) * 32)), "alice")

    def test_user_cache(self):
        """
        Users are found the same from the cache and from the database; an
        upgraded hash is read back, not the cached old one.
        """
        self.result(self.store.add_user("Alice", "old", b"1" * 32, 2000))
        fresh = CredentialStore(self.db, self.clock)
        for store in (self.store, fresh):
            self.assertEqual(self.result(store.user("ALICE")), ("Alice", "old"))
        self.result(self.store.replace_hash("Alice", "old", "new"))
        self.assertEqual(self.result(self.store.user("alice")), ("Alice", "new"))

    def test_forget_expired(self):
        """
        Expired tokens are deleted by the periodic clean-up.
        """
        self.result(self.store.add_user("alice", "h", b"1" * 32, 1100))
        self.result(self.store.add_token("alice", b"2" * 32, 5000))
        self.clock.advance(200)
        self.result(self.store.forget_expired())
        rows = (
            sqlite3.connect(self.path).execute("SELECT digest FROM tokens").fetchall()
        )
        self.assertEqual(rows, [(b"2" * 32,)])

    def test_replace_hash(self):
        """
        An upgraded hash replaces the stored one only if that is unchanged.
        """
        self.result(self.store.add_user("alice", "old", b"1" * 32, 2000))
        self.result(self.store.replace_hash("alice", "stale", "new"))
        self.assertEqual(self.result(self.store.user("alice"))[1], "old")
        self.result(self.store.replace_hash("alice", "old", "new"))
        self.assertEqual(self.result(self.store.user("alice"))[1], "new")


class ThreadTests(TestCase):
    """
    The real L{Database} works off the reactor thread.
    """

    def setUp(self):
        path = self.mktemp()
        os.makedirs(path)
        self.db = Database(os.path.join(path, "echolab.db"), reactor)
        self.db.open()
        self.addCleanup(self.db.close)

    def test_off_reactor_thread(self):
        """
        Database calls run on a thread other than the reactor's, and their
        results come back on the reactor thread.
        """
        main = threading.current_thread()
        d = self.db.run(threading.current_thread)

        def check(thread):
            self.assertIsNot(thread, main)
            self.assertIs(threading.current_thread(), main)

        return d.addCallback(check)

    def test_round_trip(self):
        """
        A committed write is read back.
        """
        store = IdentityStore(self.db, reactor)
        d = store.remember("10.9.8.7", "Zoë")
        d.addCallback(lambda _: store.name_for("10.9.8.7"))
        return d.addCallback(self.assertEqual, "Zoë")
