"""
Tests for L{echotwist.store}: what is stored, how, and that it lasts.

The cases that hold for any L{echotwist.store.IDatabase} are mixins
(L{IdentityStoreCases} here, and those of tests.test_credentials and
tests.test_admin_store) over the hooks of L{DatabaseCases}: to run them
against another database, subclass them with C{trial}'s C{TestCase} and
define C{makeDatabase} and C{reopenDatabase}.
"""

import os
import sqlite3
import stat
import threading

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from echotwist.store import (
    SCHEMA_VERSION,
    Database,
    IdentityStore,
    StoreError,
    open_database,
)
from tests.helpers import InlineDatabase


class DatabaseCases:
    """
    The hooks the store cases need, and a clock at 1000 seconds.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.db = self.makeDatabase()

    def makeDatabase(self):
        """
        @return: an opened, empty L{echotwist.store.IDatabase} of the
            current schema, closed when the test ends.
        """
        raise NotImplementedError()

    def reopenDatabase(self):
        """
        @return: a second, opened connection to the database of
            L{makeDatabase} (what a restarted server would open).
        """
        raise NotImplementedError()


class SQLiteDatabaseCases(DatabaseCases):
    """
    The hooks for SQLite: a database file in the test's temporary folder,
    answering at once (L{InlineDatabase}).
    """

    def makeDatabase(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "echolab.db")
        return self.reopenDatabase()

    def reopenDatabase(self):
        db = InlineDatabase(self.path, None)
        db.open()
        self.addCleanup(db.close)
        return db


class DatabaseTests(SQLiteDatabaseCases, SynchronousTestCase):
    """
    What only SQLite's file has: mode, journal, schema versions.
    """

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

    def test_migration_from_schema_1(self):
        """
        A database of schema 1 (echolab 1.0) keeps its users and tokens,
        and gains the last-login column (empty) and the changes table.
        """
        path = os.path.join(self.dir, "old.db")
        old = sqlite3.connect(path)
        old.executescript(
            "CREATE TABLE identities (address TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " updated INTEGER NOT NULL);"
            "CREATE TABLE users (login_key TEXT PRIMARY KEY, login TEXT NOT NULL,"
            " hash TEXT NOT NULL, created INTEGER NOT NULL);"
            "CREATE TABLE tokens (digest BLOB PRIMARY KEY, login_key TEXT NOT NULL"
            " REFERENCES users(login_key), expires INTEGER NOT NULL,"
            " revoked INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO users VALUES ('ann', 'Ann', 'h', 5);"
            "INSERT INTO tokens VALUES (x'01', 'ann', 9000, 0);"
            "PRAGMA user_version=1;"
        )
        old.close()
        db = open_database(path)
        self.addCleanup(db.close)
        self.assertEqual(
            db.execute("SELECT login, created, last_login FROM users").fetchall(),
            [("Ann", 5, None)],
        )
        self.assertEqual(db.execute("SELECT COUNT(*) FROM tokens").fetchone(), (1,))
        self.assertEqual(db.execute("SELECT COUNT(*) FROM changes").fetchone(), (0,))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)

    def test_waits_for_another_writer(self):
        """
        A write waits for another process's transaction (the admin tool's)
        to end, instead of failing at once with "database is locked".
        """
        other = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        done = []
        thread = threading.Thread(
            target=lambda: done.append(
                self.successResultOf(
                    self.db.write(
                        ("INSERT INTO identities VALUES (?, ?, ?)", ("a", "A", 1))
                    )
                )
            )
        )
        thread.start()
        thread.join(0.2)
        self.assertEqual(done, [])
        other.execute("COMMIT")
        thread.join(10)
        self.assertEqual(done, [1])

    def test_error_is_store_error(self):
        """
        A failing statement fails the L{Deferred} with L{StoreError}, which
        names the database (and no SQLite exception leaks out).
        """
        failure = self.failureResultOf(self.db.read("SELECT * FROM nowhere"))
        failure.trap(StoreError)
        self.assertIn(self.path, str(failure.value))
        failure = self.failureResultOf(self.db.write(("INSERT INTO nowhere", ())))
        failure.trap(StoreError)

    def test_call_after_close(self):
        """
        A call that runs after the database was closed (queued just before
        a shutdown) fails with L{StoreError}, like any unusable database.
        """
        self.db.close()
        self.failureResultOf(self.db.read("SELECT 1"), StoreError)
        self.failureResultOf(self.db.write(("SELECT 1", ())), StoreError)


class IdentityStoreCases(DatabaseCases):
    async def test_remember(self):
        """
        A name stored for an address is found again after a reopen.
        """
        store = IdentityStore(self.db, self.clock)
        self.assertIsNone(await store.name_for("10.0.0.1"))
        await store.remember("10.0.0.1", "Анна 🦊")
        await store.remember("2001:db8::1", "Bob")
        store = IdentityStore(self.reopenDatabase(), self.clock)
        self.assertEqual(await store.name_for("10.0.0.1"), "Анна 🦊")
        self.assertEqual(await store.name_for("2001:db8::1"), "Bob")

    async def test_rename(self):
        """
        Storing again for an address replaces its name.
        """
        store = IdentityStore(self.db, self.clock)
        await store.remember("10.0.0.1", "Ann")
        await store.remember("10.0.0.1", "Anne")
        self.assertEqual(await store.name_for("10.0.0.1"), "Anne")


class SQLiteIdentityStoreTests(SQLiteDatabaseCases, IdentityStoreCases, TestCase):
    pass


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
