# -*- test-case-name: tests.test_changes -*-
"""
How a running server learns what an administrator changed, within a
second and without a restart: C{echolab-admin} writes a row to the
C{changes} table in the same transaction as the change itself, and every
server polls that table (L{ChangeFeed}, every half second) for rows newer
than the last it saw, and applies them (L{ChangeApplier}): it drops what
its caches hold of the login and ends the sessions that may no longer
exist.

A table rather than a signal or a socket: it needs nothing but the
database the server already has, it reaches every server process that
shares the database (a PostgreSQL one too), and a server that was busy or
briefly unable to read loses nothing, since the rows wait for it.

Polling by id needs ids to become visible in increasing order. SQLite
commits one writer at a time, so they do. A database whose transactions
commit concurrently (PostgreSQL's sequences) can show id 7 before id 6
commits, and a poll between the two would skip 6: such a store must
serialize the recording transactions (for instance C{LOCK TABLE changes
IN EXCLUSIVE MODE} first), which admin changes are rare enough to afford.
"""

from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from echotwist import messages as m

TOKENS_REVOKED = "tokens_revoked"  # subject: a login key, or "" for everyone
USER_DELETED = "user_deleted"  # subject: a login key
PASSWORD_RESET = "password_reset"  # subject: a login key
IDENTITY_RENAMED = "identity_renamed"  # subject: an address
IDENTITY_DELETED = "identity_deleted"  # subject: an address
EVERYONE = ""

POLL_INTERVAL = 0.5  # seconds: a change takes effect within about this
BATCH = 100  # changes read at once (more are read at once after)
RETENTION = 24 * 60 * 60  # seconds a change is kept for servers to see


def record(kind, subject, now, where=None):
    """
    The statements that record a change, for L{echotwist.store.IDatabase}'s
    C{write}, to go in the same transaction as the change: forget changes
    older than L{RETENTION} (every server has long seen them), then add
    this one, only if the row it is about exists (C{where}: (table, key
    column)), so a change to nothing records nothing.
    """
    forget = ("DELETE FROM changes WHERE created < ?", (now - RETENTION,))
    if where is None:
        add = (
            "INSERT INTO changes (kind, subject, created) VALUES (?, ?, ?)",
            (kind, subject, now),
        )
    else:
        table, column = where
        add = (
            f"INSERT INTO changes (kind, subject, created)"
            f" SELECT ?, ?, ? FROM {table} WHERE {column} = ?",
            (kind, subject, now, subject),
        )
    return [forget, add]


class ChangeFeed(service.Service):
    """
    Poll the C{changes} table and hand each new row to C{apply}, in order.
    It starts from the newest row there is: the caches of a server that
    just started hold nothing older. A failed poll (the database locked
    for long) is logged and tried again at the next tick; nothing is lost.
    """

    log = Logger()

    def __init__(self, database, clock, apply, interval=POLL_INTERVAL, batch=BATCH):
        self._db = database
        self._apply = apply
        self._batch = batch
        self._interval = interval
        self._loop = LoopingCall(self.poll)
        self._loop.clock = clock
        self.last_seen = None

    def startService(self):
        super().startService()
        self._stopped = self._loop.start(self._interval, now=True)

    def stopService(self):
        """
        Stop polling; the L{Deferred} fires once a poll under way is done,
        so the database is not closed under it.
        """
        super().stopService()
        if self._loop.running:
            self._loop.stop()
            return self._stopped

    def poll(self):
        """
        Read and apply the changes since the last one seen.

        @return: a L{Deferred} firing when they are applied.
        """
        if self.last_seen is None:
            d = self._db.read("SELECT MAX(id) FROM changes")
            d.addCallback(self._started)
        else:
            d = self._db.read_all(
                "SELECT id, kind, subject FROM changes WHERE id > ? ORDER BY id"
                " LIMIT ?",
                (self.last_seen, self._batch),
            )
            d.addCallback(self._received)
        return d.addErrback(self._failed)

    def _started(self, row):
        self.last_seen = row[0] or 0

    def _received(self, rows):
        for change_id, kind, subject in rows:
            self.last_seen = change_id
            self._apply(kind, subject)
        if len(rows) == self._batch:  # more are waiting: read them now
            return self.poll()

    def _failed(self, failure):
        self.log.failure("cannot read the administrators' changes", failure)


class ChangeApplier:
    """
    Apply one change to this server: its caches (the credential store's)
    and its open sessions (the factory's). Identities are not cached: a
    renamed or deleted identity is read anew at its address's next
    connection, so such a change is only logged.
    """

    log = Logger()
    _ENDINGS = {
        TOKENS_REVOKED: "Your session tokens were revoked; log in again.",
        USER_DELETED: "Your account was deleted.",
        PASSWORD_RESET: "Your password was reset; log in with the new one.",
    }

    def __init__(self, credentials, factory):
        """
        @param credentials: the L{echotwist.credentials.CredentialStore},
            or L{None} (ident mode).
        @param factory: the L{echotwist.factory.EchoFactory}.
        """
        self._credentials = credentials
        self._factory = factory

    def __call__(self, kind, subject):
        ending = self._ENDINGS.get(kind)
        if ending is None:
            self.log.info(
                "administrator's change: {kind} for {subject}",
                kind=kind,
                subject=subject,
            )
            return
        credentials = self._credentials
        if credentials is not None:
            if subject == EVERYONE:
                credentials.forget_all_tokens()
            else:
                credentials.forget_login(subject)
        ended = self._factory.end_sessions(subject or None, m.bye(ending))
        self.log.info(
            "administrator's change: {kind} for {who}; {ended} sessions ended",
            kind=kind,
            who=subject or "everyone",
            ended=ended,
        )
