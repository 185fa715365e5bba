# -*- test-case-name: tests.test_store_postgres -*-
"""
The stores in PostgreSQL (C{--store postgresql://...}), so that several
server processes, on one machine or many, share one state.

The same surface as L{echotwist.store.Database} (C{open}, C{close}, C{run},
C{read}, C{write}), so L{IdentityStore} and L{CredentialStore} run on
either: their SQL is written for SQLite with C{?} placeholders and is
translated here, in one place (L{to_postgres}). Calls run on a bounded pool
of threads, each taking a connection from a bounded psycopg pool; a write
fires after its transaction is committed (PostgreSQL's default
C{synchronous_commit=on}: acknowledged means durable).

When the server goes away, calls fail (the request gets C{server_error})
within L{CONNECTION_WAIT} seconds rather than queueing, and the pool
reconnects on its own when it comes back.
"""

import logging
import re
from contextlib import contextmanager
from functools import lru_cache

from psycopg import Error as PostgresError
from psycopg import connect
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from twisted.internet import threads
from twisted.python.threadpool import ThreadPool

from echotwist import store
from echotwist.store import SCHEMA_VERSION, StoreError

CONNECTION_WAIT = 2.0  # seconds a call waits for a connection before failing
CONNECT_TIMEOUT = 5  # seconds to reach the server, at start and on reconnects
MIGRATION_LOCK = 0x6563686F  # an advisory lock key ("echo"): one migrator


def postgres_ddl(statement):
    """
    A schema statement of L{echotwist.store}, in PostgreSQL's types: bytes
    are C{BYTEA}, integers (Unix times among them) C{BIGINT}, and an
    C{AUTOINCREMENT} key (never reused) a C{BIGSERIAL} one (never reused
    either).
    """
    statement = re.sub(r"\bBLOB\b", "BYTEA", statement)
    statement = re.sub(
        r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY", statement
    )
    return re.sub(r"\bINTEGER\b", "BIGINT", statement)


# One schema, SQLite's, so the two cannot drift apart; a migration whose
# SQLite statements PostgreSQL cannot run gets its own entry here.
_SCHEMA = [postgres_ddl(statement) for statement in store._SCHEMA]
_MIGRATIONS = {
    version: [postgres_ddl(statement) for statement in statements]
    for version, statements in store._MIGRATIONS.items()
}

_CHANGES = re.compile(r"\bchanges\(\)")
_RECORDS_CHANGE = re.compile(r"\bINSERT INTO changes\b")


@lru_cache(maxsize=256)  # (the stores' statements are a few constants)
def to_postgres(sql):
    """
    SQLite's dialect as the stores write it, in PostgreSQL's: C{?}
    placeholders become C{%s} (and a literal C{%} is escaped).
    """
    return sql.replace("%", "%%").replace("?", "%s")


def _with_changes(sql, count):
    """
    SQLite's C{changes()} (rows changed by the statement before, in this
    transaction) has no PostgreSQL function: it is that count, which this
    module knows.
    """
    return _CHANGES.sub(str(int(count)), sql) if "changes()" in sql else sql


def describe(url):
    """
    C{url} without its password, for messages.
    """
    try:
        parts = conninfo_to_dict(url)
    except PostgresError:
        return "the --store URL"
    shown = [f"{k}={v}" for k, v in sorted(parts.items()) if k != "password"]
    return "PostgreSQL (" + " ".join(shown) + ")"


def _first_line(error):
    text = str(error).strip() or type(error).__name__
    first = text.splitlines()[0]
    for noise in ("connection failed: ", "connection is bad: "):
        first = first.replace(noise, "")
    return first


class Database:
    """
    A PostgreSQL database reached through a pool of at most C{connections}
    connections, used from as many threads. A call the database cannot
    answer fails with L{StoreError}, as SQLite's do.

    @ivar url: the libpq connection URI.
    @ivar path: where the database is, for messages (no password).
    """

    def __init__(self, url, reactor, connections=4):
        self.url = url
        self.path = describe(url)
        self._reactor = reactor
        self._size = connections
        self._threads = ThreadPool(
            minthreads=0, maxthreads=connections, name="echolab-pg"
        )
        self._pool = None

    def open(self):
        """
        Connect, migrate the schema, and start the pool and its threads.
        Blocking (up to L{CONNECT_TIMEOUT} seconds): call it at start-up.

        @raise StoreError: the URL is not one, the server cannot be
            reached, refuses us, or has a newer schema; one line saying so.
        """
        if not self.url.startswith(("postgresql://", "postgres://")):
            raise StoreError(
                f"--store {self.url!r}: not a postgresql:// URL nor sqlite:PATH"
            )
        try:
            conninfo_to_dict(self.url)
            with connect(self.url, connect_timeout=CONNECT_TIMEOUT) as db:
                _migrate(db, self.path)
        except PostgresError as e:
            raise StoreError(f"cannot use {self.path}: {_first_line(e)}") from None
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            check=ConnectionPool.check_connection,
            timeout=CONNECTION_WAIT,
            reconnect_timeout=365 * 86400.0,  # keep trying while we run
            name="echolab",
            open=False,
        )
        # Its reconnection attempts while the server is away would be a
        # warning each, on standard error (twistd's log); the requests that
        # fail meanwhile are logged, by the connections that made them.
        quiet = logging.getLogger("psycopg.pool")
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        self._pool.open()
        self._threads.start()

    def close(self):
        """
        Finish the queued calls, then close the pool. Blocking: for
        shutdown only.
        """
        if self._threads.started:
            self._threads.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    def run(self, function, *args):
        """
        Call C{function(*args)} on one of the database threads.
        """
        return threads.deferToThreadPool(self._reactor, self._threads, function, *args)

    def read(self, sql, args=()):
        """The first row of C{sql}, or L{None}."""
        return self.run(self._read, sql, args, False)

    def read_all(self, sql, args=()):
        """Every row of C{sql} (which bounds them), as a list."""
        return self.run(self._read, sql, args, True)

    def write(self, *statements):
        """
        Run (sql, args) C{statements} in one committed transaction; fires
        with the last one's row count.
        """
        return self.run(self._write, statements)

    def _read(self, sql, args, every):
        with self._connection() as db:
            cursor = db.execute(to_postgres(sql), args)
            return cursor.fetchall() if every else cursor.fetchone()

    def _write(self, statements):
        count = 0
        with self._connection() as db, db.transaction():
            if any(_RECORDS_CHANGE.search(sql) for sql, _ in statements):
                # Ids must become visible in order (echotwist.changes): one
                # recording transaction at a time; readers are not held up.
                db.execute("LOCK TABLE changes IN EXCLUSIVE MODE")
            for sql, args in statements:
                sql = _with_changes(to_postgres(sql), count)
                count = db.execute(sql, args).rowcount
        return count

    @contextmanager
    def _connection(self):
        """
        A connection of the pool, psycopg's errors (the server gone, no
        connection free within L{CONNECTION_WAIT}) raised as L{StoreError}.
        """
        if self._pool is None:  # (a call queued after close, at shutdown)
            raise StoreError(f"{self.path}: closed")
        try:
            with self._pool.connection() as db:
                yield db
        except PostgresError as e:
            raise StoreError(f"{self.path}: {_first_line(e)}") from None


def _migrate(db, where):
    """
    Create or migrate the schema, one server process at a time (others
    starting at once wait on the advisory lock, then find it done).
    """
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS echolab_schema (version INTEGER NOT NULL)"
        )
        row = db.execute("SELECT version FROM echolab_schema").fetchone()
        version = 0 if row is None else row[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{where} has schema {version}, newer than this echolab's "
                f"{SCHEMA_VERSION}: upgrade echolab"
            )
        if version == SCHEMA_VERSION:
            return
        # A new database gets the first schema, then every migration, as
        # SQLite's do.
        steps = [_SCHEMA] if version == 0 else []
        steps += [
            _MIGRATIONS[v] for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1)
        ]
        for statements in steps:
            for statement in statements:
                db.execute(statement)
        db.execute("DELETE FROM echolab_schema")
        db.execute("INSERT INTO echolab_schema VALUES (%s)", (SCHEMA_VERSION,))
