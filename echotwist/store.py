# -*- test-case-name: tests.test_store -*-
"""
The durable stores: who an address is (ident mode) and who may log in
(auth mode), in one SQLite file in the data directory.

Every call runs on one dedicated thread (SQLite allows one writer anyway)
and returns a L{Deferred} that fires after the transaction is committed,
so a reply that acknowledges a write goes out only once the write would
survive a crash. WAL with C{synchronous=FULL} makes a commit survive a
power loss too, at about half a millisecond per commit.
"""

import os
import sqlite3
from collections import OrderedDict

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

SCHEMA_VERSION = 1

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
}


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
    steps = (
        [_SCHEMA]
        if version == 0
        else [_MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1)]
    )
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


class Database:
    """
    One SQLite connection used from one thread of its own.

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
        return self.run(self._read, sql, args)

    def write(self, *statements):
        """
        Run (sql, args) C{statements} in one committed transaction.

        @return: a L{Deferred} firing with the last statement's row count.
        """
        return self.run(self._write, statements)

    def _read(self, sql, args):
        return self._db.execute(sql, args).fetchone()

    def _write(self, statements):
        with _transaction(self._db):
            for sql, args in statements:
                count = self._db.execute(sql, args).rowcount
        return count


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


class LoginTaken(Exception):
    """
    A login was registered by someone else first.
    """


class LRU:
    """
    A mapping of at most C{size} entries; the least recently used go first.
    """

    def __init__(self, size):
        self.size = size
        self._entries = OrderedDict()

    def __len__(self):
        return len(self._entries)

    def get(self, key):
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key, value):
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key):
        self._entries.pop(key, None)


_REVOKED = object()


class CredentialStore:
    """
    Logins with their password hashes, and token digests (auth mode).
    Nothing here can give back a password or a token.

    The users and the valid tokens last looked up or written are also kept
    in memory (bounded), so that most logins need no database call: a
    hand-off to the database thread costs more than all the rest of a token
    login, and on a busy core each one delays other connections' replies.
    Everything this process writes is written to the database first and to
    the caches after the commit; a revocation is recorded in the cache
    before it is written, so the cache never accepts a revoked token.
    (So one server process serves a data directory: a second one would not
    see the first one's revocations.)
    """

    def __init__(self, database, clock, cache_size=65536):
        self._db = database
        self._clock = clock
        self._tokens = LRU(cache_size)  # digest -> (login, expires) or _REVOKED
        self._users = LRU(cache_size)  # login key -> (login, hash)

    def user(self, login):
        """
        @return: a L{Deferred} firing with (login as registered, hash) for
            C{login} (compared case-insensitively), or L{None}.
        """
        key = login.lower()
        cached = self._users.get(key)
        if cached is not None:
            return defer.succeed(cached)
        d = self._db.read("SELECT login, hash FROM users WHERE login_key = ?", (key,))

        def found(row):
            if row is not None:
                self._users.put(key, tuple(row))
            return row

        return d.addCallback(found)

    def _cache_token(self, digest, login, expires):
        if self._tokens.get(digest) is not _REVOKED:
            self._tokens.put(digest, (login, expires))

    def add_user(self, login, hash, token_digest, expires):
        """
        Register C{login} with its first token, in one transaction.

        @return: a L{Deferred} that fails with L{LoginTaken} if the login
            exists already.
        """
        key = login.lower()
        d = self._db.write(
            (
                "INSERT INTO users (login_key, login, hash, created)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (login_key) DO NOTHING",
                (key, login, hash, int(self._clock.seconds())),
            ),
            (
                "INSERT INTO tokens (digest, login_key, expires)"
                " SELECT ?, ?, ? WHERE changes() = 1",
                (token_digest, key, expires),
            ),
        )

        def check(count):
            if count != 1:
                raise LoginTaken(login)
            self._users.put(key, (login, hash))
            self._cache_token(token_digest, login, expires)

        return d.addCallback(check)

    def replace_hash(self, login, old_hash, new_hash):
        """
        Store a hash upgraded to the current parameters, unless the stored
        one changed meanwhile.
        """
        d = self._db.write(
            (
                "UPDATE users SET hash = ? WHERE login_key = ? AND hash = ?",
                (new_hash, login.lower(), old_hash),
            )
        )
        return d.addCallback(lambda _: self._users.pop(login.lower()))

    def add_token(self, login, token_digest, expires):
        """
        Record a new token for C{login} (as registered); fires once
        committed.
        """
        d = self._db.write(
            (
                "INSERT INTO tokens (digest, login_key, expires) VALUES (?, ?, ?)",
                (token_digest, login.lower(), expires),
            )
        )
        return d.addCallback(lambda _: self._cache_token(token_digest, login, expires))

    def token_login(self, token_digest):
        """
        @return: a L{Deferred} firing with the registered login that holds
            this valid (unexpired, unrevoked) token, or L{None}.
        """
        now = int(self._clock.seconds())
        cached = self._tokens.get(token_digest)
        if cached is _REVOKED:
            return defer.succeed(None)
        if cached is not None:
            login, expires = cached
            return defer.succeed(login if expires > now else None)
        d = self._db.read(
            "SELECT users.login, expires FROM tokens JOIN users USING (login_key)"
            " WHERE digest = ? AND revoked = 0 AND expires > ?",
            (token_digest, now),
        )

        def found(row):
            if row is None:
                return None
            self._cache_token(token_digest, *row)
            return row[0]

        return d.addCallback(found)

    def revoke(self, token_digest):
        """
        Revoke a token; fires once committed.
        """
        self._tokens.put(token_digest, _REVOKED)
        return self._db.write(
            ("UPDATE tokens SET revoked = 1 WHERE digest = ?", (token_digest,))
        )

    def forget_expired(self):
        """
        Delete tokens that expired (they would be refused anyway).
        """
        return self._db.write(
            ("DELETE FROM tokens WHERE expires <= ?", (int(self._clock.seconds()),))
        )
