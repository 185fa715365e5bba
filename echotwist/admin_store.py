# -*- test-case-name: tests.test_admin_store -*-
"""
What an administrator may do to the stores (C{echolab-admin}): list and
inspect users and identities, delete them, reset a password, revoke
tokens. Written against L{echotwist.store.IDatabase} alone (portable SQL,
every change in one transaction with its row in the C{changes} table that
running servers poll, L{echotwist.changes}), so any database behind that
interface gets the same operations.
"""

from dataclasses import dataclass

from twisted.internet import defer

from echotwist import changes
from echotwist.changes import record

USER_LIMIT = 100_000  # rows a listing returns at most


@dataclass(frozen=True)
class User:
    """
    One account, as C{echolab-admin} shows it. Times are Unix seconds;
    C{last_login} is L{None} when none was recorded.
    """

    login: str
    created: int
    last_login: object
    active_tokens: int
    revoked_tokens: int = 0
    expired_tokens: int = 0
    next_expiry: object = None


@dataclass(frozen=True)
class Identity:
    """
    A name stored for a client address (ident mode).
    """

    address: str
    name: str
    updated: int


_ACTIVE = "revoked = 0 AND expires > ?"


class AdminStore:
    """
    Administrators' operations over an L{echotwist.store.IDatabase}; each
    returns a L{Deferred}. An operation on a login or an address that does
    not exist changes nothing, and says so (L{None}, L{False} or 0).
    """

    def __init__(self, database, clock):
        self._db = database
        self._clock = clock

    def _now(self):
        return int(self._clock.seconds())

    def users(self, limit=USER_LIMIT):
        """
        @return: a L{Deferred} firing with the L{User}s, by login (at most
            C{limit}).
        """
        d = self._db.read_all(
            "SELECT login, created, last_login,"
            f" (SELECT COUNT(*) FROM tokens WHERE tokens.login_key = users.login_key"
            f" AND {_ACTIVE})"
            " FROM users ORDER BY login_key LIMIT ?",
            (self._now(), limit),
        )
        return d.addCallback(lambda rows: [User(*row) for row in rows])

    @defer.inlineCallbacks
    def user(self, login):
        """
        @return: a L{Deferred} firing with the L{User} of C{login} (any
            case) with its token counts, or L{None}.
        """
        key, now = login.lower(), self._now()
        row = yield self._db.read(
            "SELECT login, created, last_login FROM users WHERE login_key = ?", (key,)
        )
        if row is None:
            return None
        counts = yield self._db.read(
            f"SELECT COALESCE(SUM(CASE WHEN {_ACTIVE} THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(revoked), 0),"
            " COALESCE(SUM(CASE WHEN revoked = 0 AND expires <= ? THEN 1 ELSE 0 END), 0),"
            f" MAX(CASE WHEN {_ACTIVE} THEN expires END)"
            " FROM tokens WHERE login_key = ?",
            (now, now, now, key),
        )
        return User(*row, *counts)

    def delete_user(self, login):
        """
        Delete C{login} and its tokens; its sessions end.

        @return: a L{Deferred} firing with whether it existed.
        """
        key = login.lower()
        d = self._db.write(
            *record(changes.USER_DELETED, key, self._now(), ("users", "login_key")),
            ("DELETE FROM tokens WHERE login_key = ?", (key,)),
            ("DELETE FROM users WHERE login_key = ?", (key,)),
        )
        return d.addCallback(lambda count: count == 1)

    def set_password(self, login, hash):
        """
        Give C{login} the password of C{hash} (checked and hashed by the
        caller, as registration does) and revoke its tokens: the new
        password is the only way in.

        @return: a L{Deferred} firing with whether C{login} exists.
        """
        key, now = login.lower(), self._now()
        d = self._db.write(
            *record(changes.PASSWORD_RESET, key, now, ("users", "login_key")),
            (
                "UPDATE tokens SET revoked = 1 WHERE login_key = ? AND revoked = 0",
                (key,),
            ),
            ("UPDATE users SET hash = ? WHERE login_key = ?", (hash, key)),
        )
        return d.addCallback(lambda count: count == 1)

    @defer.inlineCallbacks
    def revoke_tokens(self, login):
        """
        Revoke every token of C{login}; its sessions end.

        @return: a L{Deferred} firing with how many tokens were valid, or
            L{None} for an unknown login.
        """
        key, now = login.lower(), self._now()
        exists = yield self._db.read("SELECT 1 FROM users WHERE login_key = ?", (key,))
        if exists is None:
            return None
        count = yield self._db.write(
            *record(changes.TOKENS_REVOKED, key, now, ("users", "login_key")),
            (
                f"UPDATE tokens SET revoked = 1 WHERE login_key = ? AND {_ACTIVE}",
                (key, now),
            ),
        )
        return count

    def revoke_all_tokens(self):
        """
        Revoke everyone's tokens; every logged-in session ends.

        @return: a L{Deferred} firing with how many tokens were valid.
        """
        now = self._now()
        return self._db.write(
            *record(changes.TOKENS_REVOKED, changes.EVERYONE, now),
            (f"UPDATE tokens SET revoked = 1 WHERE {_ACTIVE}", (now,)),
        )

    def identities(self, limit=USER_LIMIT):
        """
        @return: a L{Deferred} firing with the L{Identity}s, by address.
        """
        d = self._db.read_all(
            "SELECT address, name, updated FROM identities ORDER BY address LIMIT ?",
            (limit,),
        )
        return d.addCallback(lambda rows: [Identity(*row) for row in rows])

    def rename_identity(self, address, name):
        """
        Store C{name} (checked by the caller, as the server checks names)
        for C{address}, which must have one already.

        @return: a L{Deferred} firing with whether C{address} had a name.
        """
        now = self._now()
        d = self._db.write(
            *record(changes.IDENTITY_RENAMED, address, now, ("identities", "address")),
            (
                "UPDATE identities SET name = ?, updated = ? WHERE address = ?",
                (name, now, address),
            ),
        )
        return d.addCallback(lambda count: count == 1)

    def delete_identity(self, address):
        """
        Forget the name of C{address}: its next connection is asked again.

        @return: a L{Deferred} firing with whether it had one.
        """
        d = self._db.write(
            *record(
                changes.IDENTITY_DELETED,
                address,
                self._now(),
                ("identities", "address"),
            ),
            ("DELETE FROM identities WHERE address = ?", (address,)),
        )
        return d.addCallback(lambda count: count == 1)
