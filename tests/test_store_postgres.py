"""
The store tests of L{tests.test_store}, run on PostgreSQL
(L{echotwist.pgstore}), and what only PostgreSQL has: several processes
sharing it, a server that goes away and comes back, and clear refusals at
start.
"""

from unittest import SkipTest

from psycopg.conninfo import conninfo_to_dict
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from echotwist import changes, pgstore
from echotwist.credentials import CredentialStore, LoginTaken
from echotwist.store import StoreError
from tests import test_admin_store, test_changes, test_credentials, test_store
from tests.postgres_support import (
    PASSWORD_ROLE,
    PostgresServer,
    fresh_database,
    missing,
    shared_server,
)


class InlinePostgresDatabase(pgstore.Database):
    """
    A PostgreSQL L{pgstore.Database} whose calls run at once on the calling
    thread, as L{tests.helpers.InlineDatabase} for SQLite.
    """

    def run(self, function, *args):
        return defer.maybeDeferred(function, *args)


class PostgresDatabaseCases(test_store.DatabaseCases):
    """
    The store cases' hooks for PostgreSQL: a new database on the shared
    test server, answering at once (L{InlinePostgresDatabase}).
    """

    def makeDatabase(self):
        self.url = fresh_database(self)
        return self.reopenDatabase()

    def reopenDatabase(self):
        db = InlinePostgresDatabase(self.url, None)
        db.open()
        self.addCleanup(db.close)
        return db


class IdentityStoreTests(
    PostgresDatabaseCases, test_store.IdentityStoreCases, TestCase
):
    pass


class AdminStoreTests(
    PostgresDatabaseCases, test_admin_store.AdminStoreCases, TestCase
):
    pass


class CredentialStoreTests(
    PostgresDatabaseCases, test_credentials.CredentialStoreCases, TestCase
):
    def test_forget_expired(self):
        """
        Expired tokens are deleted by the periodic clean-up.
        """
        store = CredentialStore(self.db, self.clock)
        self.successResultOf(store.add_user("alice", "h", b"1" * 32, 1100))
        self.successResultOf(store.add_token("alice", b"2" * 32, 5000))
        self.clock.advance(200)
        self.successResultOf(store.forget_expired())
        rows = self.successResultOf(
            self.db.read("SELECT array_agg(digest) FROM tokens")
        )
        self.assertEqual(rows, ([b"2" * 32],))

    def test_registration_race(self):
        """
        Two processes (two pools, each its own store and cache) register
        the same login: one wins, the other gets L{LoginTaken} and its
        token is not stored.
        """
        store = CredentialStore(self.db, self.clock)
        other = CredentialStore(self.reopenDatabase(), self.clock)
        self.successResultOf(store.add_user("Race", "h1", b"1" * 32, 2000))
        self.failureResultOf(other.add_user("race", "h2", b"2" * 32, 2000), LoginTaken)
        self.assertEqual(self.successResultOf(other.user("RACE")), ("Race", "h1"))
        self.assertIsNone(self.successResultOf(other.token_login(b"2" * 32)))


class ChangeFeedTests(test_changes.ChangeFeedTests):
    """
    The change feed on PostgreSQL's C{changes} table.
    """

    def makeDatabase(self):
        return PostgresDatabaseCases.makeDatabase(self)

    def reopenDatabase(self):
        return PostgresDatabaseCases.reopenDatabase(self)


class ChangeOrderTests(TestCase):
    """
    Change ids become visible in increasing order, though PostgreSQL
    commits transactions concurrently (L{echotwist.changes}).
    """

    def setUp(self):
        self.url = fresh_database(self)
        self.db = pgstore.Database(self.url, reactor)
        self.db.open()
        self.addCleanup(self.db.close)

    @defer.inlineCallbacks
    def test_recording_waits_for_an_earlier_one(self):
        """
        While another transaction that recorded a change is open (its id
        taken, not yet visible), recording one more waits for it to end,
        so no poll can see the later id before the earlier one.
        """
        other = PostgresDatabaseCases.reopenDatabase(self)
        earlier = other._pool.getconn()
        self.addCleanup(other._pool.putconn, earlier)
        earlier.autocommit = False
        for sql, args in changes.record(changes.USER_DELETED, "", 1000):
            earlier.execute(pgstore.to_postgres(sql), args)
        writing = self.db.write(*changes.record(changes.TOKENS_REVOKED, "", 1000))
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertNoResult(writing)
        earlier.commit()
        earlier.autocommit = True
        yield writing
        rows = yield self.db.read_all("SELECT kind FROM changes ORDER BY id", ())
        self.assertEqual(rows, [(changes.USER_DELETED,), (changes.TOKENS_REVOKED,)])


class DatabaseTests(SynchronousTestCase):
    """
    Start-up: the schema, and one clear line when the database cannot be
    used.
    """

    def setUp(self):
        self.url = fresh_database(self)

    def open(self, url):
        db = pgstore.Database(url, None)
        self.addCleanup(db.close)
        db.open()
        return db

    def test_schema_version(self):
        """
        The schema is versioned, as SQLite's, and opening again keeps it.
        """
        self.open(self.url).close()
        db = self.open(self.url)
        version = db._read("SELECT version FROM echolab_schema", (), False)
        self.assertEqual(version, (test_store.SCHEMA_VERSION,))

    def test_migrations(self):
        """
        SQLite's migrations run on PostgreSQL too, in its types: on a
        database of the first schema, and after the first schema on a new
        one (the admin operations' migration: C{last_login}, C{changes}).
        """
        self.patch(pgstore, "SCHEMA_VERSION", 1)
        old = fresh_database(self)
        self.open(old).close()
        self.patch(pgstore, "SCHEMA_VERSION", test_store.SCHEMA_VERSION)
        for url in (old, self.url):
            db = self.open(url)
            record = changes.record(changes.TOKENS_REVOKED, "", 1000)
            db._write(record)
            db._write(record)
            rows = db._read("SELECT id, kind FROM changes ORDER BY id", (), True)
            self.assertEqual(rows, [(1, "tokens_revoked"), (2, "tokens_revoked")])
            self.assertEqual(
                db._read("SELECT count(last_login) FROM users", (), False), (0,)
            )

    def test_newer_schema_refused(self):
        """
        A database from a newer echolab is refused with a clear reason.
        """
        self.open(self.url).close()
        shared_server().sql(
            "UPDATE echolab_schema SET version = version + 1",
            conninfo_to_dict(self.url)["dbname"],
        )
        e = self.assertRaises(StoreError, self.open, self.url)
        self.assertIn("upgrade echolab", str(e))

    def assertRefused(self, url, *words):
        e = self.assertRaises(StoreError, self.open, url)
        self.assertEqual(len(str(e).splitlines()), 1, str(e))
        for word in words:
            self.assertIn(word, str(e))
        return str(e)

    def test_bad_url(self):
        """
        A URL that libpq cannot read, or of another kind, is refused.
        """
        self.assertRefused("postgresql://x/db?nonsense=1", "nonsense")
        self.assertRefused("mysql://db", "postgresql://")

    def test_unreachable(self):
        """
        No server on that socket: refused, saying so.
        """
        self.assertRefused(
            "postgresql:///echolab?host=/nonexistent/folder", "No such file"
        )

    def test_wrong_password(self):
        """
        Wrong credentials: refused, without the password in the message.
        """
        login, _ = PASSWORD_ROLE
        url = shared_server().url("postgres", login, "wrong-guess")
        why = self.assertRefused(url, "password authentication failed")
        self.assertNotIn("wrong-guess", why)
        self.open(shared_server().url("postgres", *PASSWORD_ROLE))


class TranslationTests(SynchronousTestCase):
    def test_placeholders(self):
        """
        C{?} becomes C{%s}; a literal C{%} survives psycopg's formatting.
        """
        self.assertEqual(
            pgstore.to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE 'x%'"),
            "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'",
        )

    def test_schema_types(self):
        """
        SQLite's schema statements in PostgreSQL's types.
        """
        self.assertEqual(
            pgstore.postgres_ddl(
                "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " d BLOB, n INTEGER NOT NULL)"
            ),
            "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, d BYTEA, n BIGINT NOT NULL)",
        )

    def test_changes(self):
        """
        SQLite's C{changes()} is the previous statement's row count.
        """
        self.assertEqual(
            pgstore._with_changes("SELECT 1 WHERE changes() = 1", 0),
            "SELECT 1 WHERE 0 = 1",
        )


class OutageTests(TestCase):
    """
    The real (threaded) database, on a server of its own that is stopped
    and started again while in use.
    """

    def setUp(self):
        why = missing()
        if why:
            raise SkipTest(why)
        self.server = PostgresServer.temporary().start()
        self.addCleanup(self.server.destroy)
        self.db = pgstore.Database(self.server.create_database("outage"), reactor)
        self.db.open()
        self.addCleanup(self.db.close)

    @defer.inlineCallbacks
    def test_server_goes_and_returns(self):
        """
        While the server is down, calls fail (the request gets
        C{server_error}) in bounded time; once it is back, calls work again
        without reopening.
        """
        store = CredentialStore(self.db, reactor, cache_size=0)
        yield store.add_user("alice", "h", b"1" * 32, 2**40)
        yield threads.deferToThread(self.server.stop)
        started = reactor.seconds()
        with self.assertRaises(StoreError):
            yield store.token_login(b"1" * 32)
        self.assertLess(reactor.seconds() - started, pgstore.CONNECTION_WAIT + 3)
        yield threads.deferToThread(self.server.start)
        for _ in range(50):
            try:
                login = yield store.token_login(b"1" * 32)
                break
            except StoreError:
                yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(login, "alice")
