"""
Tests for L{echotwist.shared_throttle}: two throttles on one store, as two
server processes, allow the guesses of one (within the documented bound).
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist.shared_throttle import TABLE, SharedFailures, SharedLoginThrottle
from echotwist.throttle import Limits, RateLimited
from tests.helpers import make_database
from tests.postgres_support import fresh_database

LIMITS = Limits(per_login_address=3, per_login=5, per_address=100)


class SharedThrottleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(10_000)
        self.db = self.make_database()
        self.first, self.second = self.process(), self.process()

    def make_database(self):
        return make_database(self)

    def process(self):
        shared = SharedFailures(self.db, self.clock, 2 * LIMITS.max_block)
        shared.startService()
        self.addCleanup(shared.stopService)
        return SharedLoginThrottle(self.clock, LIMITS, shared)

    def fail(self, throttle, login="mallory", address="10.0.0.9"):
        """
        One wrong password checked by C{throttle}, as L{Accounts} does it:
        the shared counts read first, then counted, then the verdict.
        """
        self.successResultOf(throttle.refresh(login, address))
        throttle.start_password(login, address)
        throttle.finish_password(login, address, matched=False)

    def blocked(self, throttle, login="mallory", address="10.0.0.9"):
        self.successResultOf(throttle.refresh(login, address))
        try:
            throttle.start_password(login, address)
        except RateLimited:
            return True
        throttle.finish_password(login, address, matched=None)
        return False

    def test_failures_add_up_across_processes(self):
        """
        Failures on one process count on the other: alternating between
        them, an attacker gets the free attempts of one process, not two
        (one process blocks after its free failures and one more).
        """
        for i in range(LIMITS.per_login_address + 1):
            self.fail([self.first, self.second][i % 2])
        self.assertTrue(self.blocked(self.first))
        self.assertTrue(self.blocked(self.second))

    def test_per_login_across_addresses(self):
        """
        The per-login count, over all addresses, is shared too.
        """
        for i in range(LIMITS.per_login + 1):
            self.fail([self.first, self.second][i % 2], address=f"10.1.0.{i}")
        self.assertTrue(self.blocked(self.second, address="10.2.0.1"))
        self.assertFalse(self.blocked(self.second, login="alice"))

    def test_forgiven_everywhere(self):
        """
        A success forgives that login from that address on every process.
        """
        for _ in range(LIMITS.per_login_address - 1):
            self.fail(self.first)
        self.successResultOf(self.first.refresh("mallory", "10.0.0.9"))
        self.first.start_password("mallory", "10.0.0.9")
        self.first.finish_password("mallory", "10.0.0.9", matched=True)
        row = self.successResultOf(
            self.db.read(f"SELECT failures FROM {TABLE} WHERE key = ?",
                         ("login-address:mallory|10.0.0.9",))
        )  # fmt: skip
        self.assertEqual(row[0], 0)
        self.fail(self.second)
        self.assertFalse(self.blocked(self.second))

    def test_refused_tokens_shared(self):
        """
        Refused tokens from one address count on every process.
        """
        limits = Limits(tokens_per_address=2)
        throttles = []
        for _ in range(2):
            shared = SharedFailures(self.db, self.clock, 1800)
            shared.startService()
            self.addCleanup(shared.stopService)
            throttles.append(SharedLoginThrottle(self.clock, limits, shared))
        throttles[0].token_refused("10.0.0.5")
        throttles[0].token_refused("10.0.0.5")
        throttles[1].token_refused("10.0.0.5")
        self.successResultOf(throttles[1].refresh(None, "10.0.0.5"))
        self.assertRaises(RateLimited, throttles[1].start_token, "10.0.0.5", True)

    def test_quiet_counts_pruned(self):
        """
        The shared table forgets counts quiet for twice the longest block,
        as the local tables do: it stays bounded.
        """
        self.fail(self.first)
        self.clock.advance(2 * LIMITS.max_block + 61)
        row = self.successResultOf(self.db.read(f"SELECT count(*) FROM {TABLE}"))
        self.assertEqual(row[0], 0)

    def test_pending_bounded(self):
        """
        While a write is under way, at most C{max_pending} keys wait for the
        next one.
        """
        shared = SharedFailures(self.db, self.clock, 1800, max_pending=2)
        shared._writing = object()  # a write under way: the changes wait
        for i in range(5):
            shared.changed(f"address:10.0.0.{i}", True)
        self.assertEqual(len(shared._pending), 2)

    def test_settled_once_committed(self):
        """
        L{SharedLoginThrottle.settled} fires once the failures counted so
        far are committed, those counted during a write included.
        """
        writes = []

        class SlowDatabase:
            def write(self, *statements):
                writes.append(defer.Deferred())
                return writes[-1]

        shared = SharedFailures(SlowDatabase(), self.clock, 1800)
        throttle = SharedLoginThrottle(self.clock, LIMITS, shared)
        self.assertIsNone(throttle.settled())
        throttle.token_refused("10.0.0.1")
        first = throttle.settled()
        throttle.token_refused("10.0.0.2")  # waits for the next write
        second = throttle.settled()
        self.assertNoResult(first)
        writes[0].callback(1)
        self.successResultOf(first)
        self.assertNoResult(second)
        writes[1].callback(1)
        self.successResultOf(second)
        self.assertIsNone(throttle.settled())

    def test_unreadable_store_falls_back(self):
        """
        When the shared counts cannot be read, the process's own decide.
        """
        self.successResultOf(self.db.write((f"DROP TABLE {TABLE}", ())))
        self.successResultOf(self.first.refresh("mallory", "10.0.0.9"))
        self.flushLoggedErrors()


class SharedThrottleOnPostgresTests(SharedThrottleTests):
    """
    The same, on PostgreSQL.
    """

    def make_database(self):
        from tests.test_store_postgres import InlinePostgresDatabase

        db = InlinePostgresDatabase(fresh_database(self), None)
        db.open()
        self.addCleanup(db.close)
        return db
