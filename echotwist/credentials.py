# -*- test-case-name: tests.test_credentials -*-
"""
Who may log in (auth mode): logins with their password hashes, and token
digests, over a L{echotwist.store.Database}, with bounded caches in front.
"""

from collections import OrderedDict

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger


class LoginTaken(Exception):
    """
    A login was registered by someone else first.
    """


class AccountChanged(Exception):
    """
    The account was deleted, or its password reset, while a password was
    being checked for it: no token for that password.
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

    def clear(self):
        self._entries.clear()


_REVOKED = object()
# Logins forgotten (by generation) before the whole token cache is dropped
# instead: bounds what changes made elsewhere cost in memory.
MAX_FORGOTTEN = 4096


CACHE_SIZE = 65536  # users, and tokens, kept in memory by default


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

    What other processes change (C{echolab-admin}) reaches the caches
    through L{echotwist.changes}: L{forget_login} and L{forget_all_tokens}.
    Each of those starts a new generation of the caches, and a database
    read started in an older generation is not cached when it answers, so
    a row read just before an administrator's change cannot come back.
    A forgotten login's cached tokens are dropped as they are next used
    (each remembers its generation), not found by a scan: a scan of a full
    cache holds the reactor up for tens of milliseconds.

    @ivar last_logins: the L{LastLogins} of this store's users.
    """

    def __init__(self, database, clock, cache_size=CACHE_SIZE):
        self._db = database
        self._clock = clock
        # digest -> (login, expires, generation cached in) or _REVOKED
        self._tokens = LRU(cache_size)
        self._users = LRU(cache_size)  # login key -> (login, hash)
        self._generation = 0
        self._forgotten = {}  # login key -> generation it was forgotten in
        # A store without caches (shared with other processes) still
        # notes logins: those are this process's own, and must be written.
        self.last_logins = LastLogins(database, clock, cache_size or CACHE_SIZE)

    def user(self, login):
        """
        @return: a L{Deferred} firing with (login as registered, hash) for
            C{login} (compared case-insensitively), or L{None}.
        """
        key = login.lower()
        cached = self._users.get(key)
        if cached is not None:
            return defer.succeed(cached)
        generation = self._generation
        d = self._db.read("SELECT login, hash FROM users WHERE login_key = ?", (key,))

        def found(row):
            if row is not None and generation == self._generation:
                self._users.put(key, tuple(row))
            return row

        return d.addCallback(found)

    def _cache_token(self, digest, login, expires):
        if self._tokens.get(digest) is not _REVOKED:
            self._tokens.put(digest, (login, expires, self._generation))

    def add_user(self, login, hash, token_digest, expires):
        """
        Register C{login} with its first token, in one transaction (a
        registration is its first login).

        @return: a L{Deferred} that fails with L{LoginTaken} if the login
            exists already.
        """
        key = login.lower()
        now = int(self._clock.seconds())
        d = self._db.write(
            (
                "INSERT INTO users (login_key, login, hash, created, last_login)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (login_key) DO NOTHING",
                (key, login, hash, now, now),
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

    def add_token(self, login, token_digest, expires, verified_hash=None):
        """
        Record a new token for C{login} (as registered); fires once
        committed.

        @param verified_hash: the hash the password was checked against,
            or L{None}: no token is issued if the stored hash is another
            one by now (an administrator reset the password while it was
            being checked: the old password must not get in after that).
        @return: a L{Deferred} failing with L{AccountChanged} when the
            account is gone or its hash is not C{verified_hash}.
        """
        sql = (
            "INSERT INTO tokens (digest, login_key, expires)"
            " SELECT ?, login_key, ? FROM users WHERE login_key = ?"
        )
        args = (token_digest, expires, login.lower())
        if verified_hash is not None:
            sql += " AND hash = ?"
            args += (verified_hash,)

        def added(count):
            if count != 1:
                raise AccountChanged(login)
            self._cache_token(token_digest, login, expires)

        return self._db.write((sql, args)).addCallback(added)

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
            login, expires, cached_in = cached
            forgotten = self._forgotten
            if not forgotten or forgotten.get(login.lower(), -1) < cached_in:
                return defer.succeed(login if expires > now else None)
            self._tokens.pop(token_digest)  # cached before its login changed
        generation = self._generation
        d = self._db.read(
            "SELECT users.login, expires FROM tokens JOIN users USING (login_key)"
            " WHERE digest = ? AND revoked = 0 AND expires > ?",
            (token_digest, now),
        )

        def found(row):
            if row is None:
                return None
            if generation == self._generation:
                self._cache_token(token_digest, row[0], row[1])
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

    def forget_login(self, login_key):
        """
        Another process changed this login (deleted it, reset its password
        or revoked its tokens): drop what the caches hold of it, so its
        next use reads the database.
        """
        self._generation += 1
        self._users.pop(login_key)
        self.last_logins.forget(login_key)
        if len(self._forgotten) >= MAX_FORGOTTEN:
            self.forget_all_tokens()  # (the bound: start afresh)
        self._forgotten[login_key] = self._generation

    def forget_all_tokens(self):
        """
        Another process revoked every token: drop the token cache.
        """
        self._generation += 1
        self._tokens.clear()
        self._forgotten.clear()


LAST_LOGIN_INTERVAL = 10  # seconds: how late the last-login times may be


class LastLogins:
    """
    When each user last logged in, noted as it happens and written later,
    in one transaction for all (L{LastLoginWriter}): a write per login
    would cost more than the login itself.

    @ivar pending: login key -> Unix seconds, noted since the last
        L{write} (at most C{size}; more logins wait for the next write).
    """

    def __init__(self, database, clock, size):
        self._db = database
        self._clock = clock
        self._size = size
        self.pending = {}

    def seen(self, login):
        """
        Note that C{login} just logged in.
        """
        key, pending = login.lower(), self.pending
        if key in pending or len(pending) < self._size:
            pending[key] = int(self._clock.seconds())

    def forget(self, login_key):
        """
        The login was changed elsewhere (deleted, perhaps): write nothing.
        """
        self.pending.pop(login_key, None)

    def write(self):
        """
        Store the times noted since the last call, never moving one
        backwards; fires once committed.
        """
        seen, self.pending = self.pending, {}
        if not seen:
            return defer.succeed(None)
        return self._db.write(
            *(
                (
                    "UPDATE users SET last_login = ? WHERE login_key = ?"
                    " AND (last_login IS NULL OR last_login < ?)",
                    (when, key, when),
                )
                for key, when in seen.items()
            )
        )


class LastLoginWriter(TimerService):
    """
    Write the L{LastLogins} every L{LAST_LOGIN_INTERVAL} seconds, and once
    more when the server stops.
    """

    log = Logger()

    def __init__(self, last_logins, clock):
        super().__init__(LAST_LOGIN_INTERVAL, self._write)
        self.clock = clock
        self._last_logins = last_logins

    def _write(self):
        d = self._last_logins.write()
        return d.addErrback(self.log.failure, "cannot store last-login times")

    def stopService(self):
        d = defer.maybeDeferred(super().stopService)
        return d.addCallback(lambda _: self._write())
