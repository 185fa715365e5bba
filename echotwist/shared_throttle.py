# -*- test-case-name: tests.test_shared_throttle -*-
"""
Failed-login counts shared through the store, so that N server processes
(C{--workers}, or servers on several machines) do not allow N times the
guesses.

Each process keeps deciding from its own tables (L{echotwist.throttle}),
at once and without waiting on the database for its decision itself:

  - every failure (and every forgiveness) is also written to the shared
    table, one transaction at a time, with what arrives meanwhile added up
    for the next one (bounded); the client is told of its failure once the
    count is committed, so it cannot outrun it to another process;
  - before a password is checked (and before a token from a connection
    that had one refused), the shared counts of its keys are read, in one
    query, and taken into the local tables when higher.

So a process sees every failure whose write committed before its read.
What it can miss, in each other process, is the check under way and a
failure whose write has not committed yet: a login has at most one
password check under way per process, so across N processes at most
2 (N - 1) guesses more than one process allows get checked before the
block applies everywhere (more only while the database stalls writes;
docs/scaling.md). When the database cannot be reached, each process goes
on with its own counts.
"""

from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger

from echotwist.throttle import Backoff, LoginThrottle

TABLE = "throttle_failures"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " key TEXT PRIMARY KEY,"
    " failures INTEGER NOT NULL,"
    " last DOUBLE PRECISION NOT NULL)"
)
ADD = (
    f"INSERT INTO {TABLE} (key, failures, last) VALUES (?, ?, ?)"
    f" ON CONFLICT (key) DO UPDATE SET failures = {TABLE}.failures +"
    " excluded.failures, last = excluded.last"
)
RESET = f"UPDATE {TABLE} SET failures = 0, last = ? WHERE key = ?"
PRUNE_EVERY = 60.0  # seconds between deletions of quiet counts


def _one_row_of(keys):
    """
    One query giving the failures and last failure of each key, in one row
    (the stores' C{read} gives one row), in SQL both stores speak.
    """
    columns = ", ".join(
        f"(SELECT failures FROM {TABLE} WHERE key = ?),"
        f" (SELECT last FROM {TABLE} WHERE key = ?)"
        for _ in keys
    )
    return f"SELECT {columns}", tuple(k for key in keys for k in (key, key))


class SharedFailures(service.Service):
    """
    The shared table of failure counts, behind a L{SharedLoginThrottle}'s
    tables, which tell it of their failures and forgivenesses (L{changed})
    and ask it for the others' (L{refresh}).

    @param forget_after: seconds after which a quiet count is deleted (the
        local tables forgive it then too).
    @param max_pending: keys whose changes may wait for the next write;
        past that, more changes are not shared (each process still counts
        them itself).
    """

    log = Logger()

    def __init__(self, database, clock, forget_after, max_pending=4096):
        self._db = database
        self._clock = clock
        self._forget_after = forget_after
        self._max_pending = max_pending
        self._pending = {}  # shared key -> [reset first?, failures to add]
        self._waiting = []  # Deferreds for when the pending changes commit
        self._writing = None
        self._batch_waiting = []  # ... for when the write under way commits
        self._pruner = TimerService(PRUNE_EVERY, self._prune)
        self._pruner.clock = clock

    def startService(self):
        super().startService()
        d = self._db.write((CREATE, ()))
        d.addErrback(self._warn, "cannot create the shared throttle table")
        d.addCallback(lambda _: self.running and self._pruner.startService())

    def stopService(self):
        super().stopService()
        if self._pruner.running:
            self._pruner.stopService()
        return self._writing

    def changed(self, key, failed):
        """
        C{key} failed once more (C{failed}), or was forgiven.
        """
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self._max_pending:
                return
            pending = self._pending[key] = [False, 0]
        if failed:
            pending[1] += 1
        else:
            pending[:] = [True, 0]
        if self._writing is None:
            self._write()

    def settled(self):
        """
        @return: a L{Deferred} that fires once the changes made so far are
            committed (or failed to be), or L{None} when they are.
        """
        if not self._pending and self._writing is None:
            return None
        waiter = defer.Deferred()
        (self._waiting if self._pending else self._batch_waiting).append(waiter)
        return waiter

    def _write(self):
        changes, self._pending = self._pending, {}
        self._batch_waiting, self._waiting = self._waiting, []
        now = self._clock.seconds()
        statements = []
        for key, (reset, failures) in changes.items():
            if reset:
                statements.append((RESET, (now, key)))
            if failures:
                statements.append((ADD, (key, failures, now)))
        self._writing = self._db.write(*statements)
        self._writing.addErrback(self._warn, "cannot share throttle counts")
        self._writing.addBoth(self._written)

    def _written(self, _):
        self._writing = None
        waiters, self._batch_waiting = self._batch_waiting, []
        if self._pending:
            self._write()
        for waiter in waiters:
            waiter.callback(None)

    def refresh(self, keys):
        """
        @return: a L{Deferred} firing with a list of (failures, last failure)
            or L{None} for each of C{keys}, as the shared table has them; with
            L{None} if it cannot be read.
        """
        sql, args = _one_row_of(keys)
        d = self._db.read(sql, args)
        d.addCallback(lambda row: [_pair(row, i) for i in range(len(keys))])
        return d.addErrback(self._warn, "cannot read shared throttle counts")

    def _prune(self):
        cutoff = self._clock.seconds() - self._forget_after
        d = self._db.write((f"DELETE FROM {TABLE} WHERE last < ?", (cutoff,)))
        return d.addErrback(self._warn, "cannot prune shared throttle counts")

    def _warn(self, failure, what):
        self.log.warn("{what}: {why}", what=what, why=failure.getErrorMessage())
        return None


def _pair(row, i):
    failures, last = row[2 * i], row[2 * i + 1]
    return None if failures is None else (failures, last)


class SharedBackoff(Backoff):
    """
    A L{Backoff} table that tells L{SharedFailures} of its failures and
    forgivenesses, under its C{name}.
    """

    shared = None
    name = ""

    def shared_key(self, key):
        text = "|".join(key) if isinstance(key, tuple) else key
        return f"{self.name}:{text}"

    def finished(self, key, failed):
        super().finished(key, failed)
        if failed:
            self.shared.changed(self.shared_key(key), True)

    def forgive(self, key):
        super().forgive(key)
        self.shared.changed(self.shared_key(key), False)


class SharedLoginThrottle(LoginThrottle):
    """
    A L{LoginThrottle} whose failure counts are shared with other
    processes through L{SharedFailures}. (Budgets of registrations and
    look-ups stay per process: they bound work, not guesses.)
    """

    backoff_type = SharedBackoff

    def __init__(self, clock, limits, shared):
        super().__init__(clock, limits)
        self._shared = shared
        for name, table in (
            ("login-address", self._login_address),
            ("login", self._login),
            ("address", self._address),
            ("token-address", self._token_address),
        ):
            table.name, table.shared = name, shared

    def settled(self):
        """
        @return: a L{Deferred} firing once this process's failures so far
            are shared (so that a client told of its failure cannot outrun
            the count elsewhere), or L{None} when they are.
        """
        return self._shared.settled()

    def refresh(self, login, address):
        """
        Take in the shared counts of the keys of a password attempt for
        C{login} from C{address}, or of a token from C{address} when
        C{login} is L{None}.

        @return: a L{Deferred} firing once they are in (or could not be
            read: then this process's own counts decide).
        """
        if login is None:
            keyed = [(self._token_address, self.key(address))]
        else:
            keyed = self._password_keys(login, address)
        d = self._shared.refresh([table.shared_key(key) for table, key in keyed])

        def take(counts):
            if counts is None:
                return
            for (table, key), count in zip(keyed, counts, strict=True):
                if count is not None:
                    table.raise_to(key, *count)

        return d.addCallback(take)
