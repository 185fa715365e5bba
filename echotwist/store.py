# -*- test-case-name: tests.test_store -*-
"""
The database behind the stores: who an address is (ident mode) and who may
log in (auth mode), in one SQLite file in the data directory, and the
changes administrators make to them (L{echotwist.changes}).

Every call runs on one dedicated thread (SQLite allows one writer anyway)
and returns a L{Deferred} that fires after the transaction is committed,
so a reply that acknowledges a write goes out only once the write would
survive a crash. WAL with C{synchronous=FULL} makes a commit survive a
power loss too, at about half a millisecond per commit.

L{IDatabase} is what the stores and C{echolab-admin} use of it: standard
SQL with C{?} placeholders, so another database can stand in.
"""

import os
import sqlite3

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool
from zope.interface import Attribute, Interface, implementer

SCHEMA_VERSION = 2
DATABASE_FILE = "echolab.db"  # in the data directory

_SCHEMA = [
    """CREATE TABLE identities (
        address TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        updated INTEGER NOT NULL)""",
    """CREATE TABLE users (
        login_key TEXT PRIMARY KEY,
        login TEXT NOT NULL,
        hash TEXT NOT NULL,
        created INTEGER NOT NULL)""",
    """CREATE TABLE tokens (
        digest BLOB PRIMARY KEY,
        login_key TEXT NOT NULL REFERENCES users(login_key),
        expires INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX tokens_by_expiry ON tokens(expires)",
]

_MIGRATIONS = {
    # version: [statements] that take the schema from version - 1.
    2: [
        # NULL: never logged in since this column exists.
        "ALTER TABLE users ADD COLUMN last_login INTEGER",
        # What administrators changed, for running servers to apply
        # (echotwist.changes). AUTOINCREMENT: an id is never reused, so a
        # server that saw id N never misses a later change.
        """CREATE TABLE changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            created INTEGER NOT NULL)""",
    ],
}

# How long a connection waits for another process's write (C{echolab-admin}
# and the server share the file) before giving up with "database is locked".
BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """
    The database cannot be used (unreadable, or from a newer echolab).
    """


def open_database(path):
    """
    Open (creating if needed, mode 0600) and migrate the database at
    C{path}. Blocking: call it from the database thread.

    @rtype: L{sqlite3.Connection}
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: cannot use write-ahead logging ({mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _migrate(db, path)
    except sqlite3.DatabaseError as e:
        db.close()
        raise StoreError(f"{path}: {e}") from None
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db, path):
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema {version}, newer than this echolab's "
            f"{SCHEMA_VERSION}: upgrade echolab"
        )
    if version == SCHEMA_VERSION:
        return
    # A new database gets the first schema, then every migration: one path
    # to the current schema, which the migrations' tests therefore cover.
    steps = [_SCHEMA] if version == 0 else []
    steps += [_MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
    with _transaction(db):
        for statements in steps:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


class _transaction:
    """
    C{BEGIN IMMEDIATE} ... C{COMMIT}, or C{ROLLBACK} on an exception.
    """

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


class IDatabase(Interface):
    """
    What the stores and C{echolab-admin} use of a database, and all they
    use: portable SQL (standard SQL, C{?} placeholders). Every method but
    L{open} and L{close} returns a L{Deferred}, which fails with
    L{StoreError} when the database cannot answer (locked too long, gone).
    """

    path = Attribute("Where the database is, for messages to a person.")

    def open():
        """
        Connect (and migrate the schema), blocking: at start-up only.

        @raise StoreError: if the database cannot be used.
        """

    def close():
        """
        Disconnect once the queued calls are done, blocking: at shutdown.
        """

    def run(function, *args):
        """
        Call C{function(*args)} where the database calls run.
        """

    def read(sql, args=()):
        """
        The first row of a query, or L{None}.
        """

    def read_all(sql, args=()):
        """
        Every row of a query (which bounds them, with C{LIMIT}), as a list.
        """

    def write(*statements):
        """
        Run (sql, args) C{statements} in one committed transaction; fires
        with the last statement's row count once committed.
        """


@implementer(IDatabase)
class Database:
    """
    One SQLite connection used from one thread of its own.

    Besides L{IDatabase}, what only SQLite does, for C{echolab-admin}:
    L{backup_to}, L{restore_from}, L{integrity_problems}. Another database
    provides its own way, or none (the tool then says so).

    @ivar path: the database file.
    """

    def __init__(self, path, reactor):
        self.path = path
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="echolab-db")
        self._db = None

    def open(self):
        """
        Open the database and start its thread. This blocks, briefly: call
        it at start-up, before any connection is served.

        @raise StoreError: if the database cannot be used.
        """
        self._db = open_database(self.path)
        self._pool.start()

    def close(self):
        """
        Close the database after every queued call, then stop the thread.
        Blocking until those calls finish: for shutdown only.
        """
        if self._db is not None:
            db, self._db = self._db, None
            self.run(db.close)
        self._pool.stop()

    def run(self, function, *args):
        """
        Call C{function(*args)} on the database thread.
        """
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args)

    def read(self, sql, args=()):
        """
        @return: a L{Deferred} firing with the first row of C{sql}, or L{None}.
        """
        return self.run(self._read, sql, args, False)

    def read_all(self, sql, args=()):
        """
        @return: a L{Deferred} firing with the list of C{sql}'s rows.
        """
        return self.run(self._read, sql, args, True)

    def write(self, *statements):
        """
        Run (sql, args) C{statements} in one committed transaction.

        @return: a L{Deferred} firing with the last statement's row count.
        """
        return self.run(self._write, statements)

    def backup_to(self, path):
        """
        Copy the database, consistent as of one moment, to a new file at
        C{path} (mode 0600), with SQLite's online backup: in one step, a
        read transaction, which in WAL mode never holds up a writer. The
        copy is a single file (not in WAL mode), written under a temporary
        name and renamed once synced, so C{path} is whole or absent.
        """
        return self.run(self._backup_to, path)

    def restore_from(self, path):
        """
        Replace the whole database with the copy at C{path} (a file that
        L{backup_to} made), through SQLite's backup API, which keeps the
        write-ahead log consistent; then bring its schema up to date.
        Only while no server uses the database (its caches would lie).

        @return: a L{Deferred} failing with L{StoreError} if C{path} is not
            a sound echolab database this version can read.
        """
        return self.run(self._restore_from, path)

    def integrity_problems(self):
        """
        @return: a L{Deferred} firing with SQLite's C{integrity_check} and
            C{foreign_key_check} findings, as lines; empty when sound.
        """
        return self.run(self._integrity_problems, self._db)

    def _read(self, sql, args, every):
        try:
            cursor = self._connection().execute(sql, args)
            return cursor.fetchall() if every else cursor.fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None

    def _write(self, statements):
        db = self._connection()
        try:
            with _transaction(db):
                for sql, args in statements:
                    count = db.execute(sql, args).rowcount
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None
        return count

    def _connection(self):
        db = self._db
        if db is None:  # (a call queued after close, at shutdown)
            raise StoreError(f"{self.path}: closed")
        return db

    def _backup_to(self, path):
        partial = f"{path}.partial"
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                self._db.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
            _sync(partial)
            os.replace(partial, path)
            _sync(os.path.dirname(os.path.abspath(path)))
        except BaseException as e:
            if os.path.exists(partial):
                os.unlink(partial)
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"{path}: {e}") from None
            raise

    def _restore_from(self, path):
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: {e}") from None
        try:
            problems = self._integrity_problems(source)
            version = source.execute("PRAGMA user_version").fetchone()[0]
            if problems or not 1 <= version <= SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: not a sound echolab database of schema 1 to "
                    f"{SCHEMA_VERSION} (schema {version}; {'; '.join(problems[:3])})"
                )
            source.backup(self._db)
            _migrate(self._db, self.path)
        except sqlite3.Error as e:
            raise StoreError(f"{path}: {e}") from None
        finally:
            source.close()

    @staticmethod
    def _integrity_problems(db):
        rows = db.execute("PRAGMA integrity_check").fetchall()
        problems = [row[0] for row in rows if row[0] != "ok"]
        for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check"):
            problems.append(f"{table} row {rowid} refers to a missing {parent} row")
        return problems


def _sync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IdentityStore:
    """
    Names by IP address (ident mode).
    """

    def __init__(self, database, clock):
        self._db = database
        self._clock = clock

    def name_for(self, address):
        """
        @return: a L{Deferred} firing with the name stored for C{address},
            or L{None}.
        """
        d = self._db.read("SELECT name FROM identities WHERE address = ?", (address,))
        return d.addCallback(lambda row: row and row[0])

    def remember(self, address, name):
        """
        Store C{name} for C{address}; fires once committed.
        """
        return self._db.write(
            (
                "INSERT INTO identities (address, name, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (address) DO UPDATE"
                " SET name = excluded.name, updated = excluded.updated",
                (address, name, int(self._clock.seconds())),
            )
        )
