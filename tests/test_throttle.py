"""
Tests for L{echotwist.throttle}: blocks double after the free failures and
end with time; attempts count before they are checked, so concurrency buys
no extra guesses; budgets refill; the tables stay bounded and never forget
a blocked key ahead of a free one.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist.throttle import Backoff, Budget, Limits, LoginThrottle, RateLimited


def fail(throttle, login, address):
    """
    One wrong password for C{login} from C{address}, counted and checked.
    """
    throttle.start_password(login, address)
    throttle.finish_password(login, address, matched=False)


class BackoffTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.table = Backoff(
            self.clock, free=3, first_block=1, max_block=8, max_keys=100
        )

    def test_free_failures(self):
        """
        The first C{free} consecutive failures block nothing.
        """
        for _ in range(3):
            self.table.failed("k")
        self.assertEqual(self.table.wait("k"), 0)

    def test_doubling_with_cap(self):
        """
        Each failure after the free ones blocks for twice as long, up to the
        cap.
        """
        for _ in range(3):
            self.table.failed("k")
        blocks = []
        for _ in range(6):
            self.table.failed("k")
            blocks.append(self.table.wait("k"))
        self.assertEqual(blocks, [1, 2, 4, 8, 8, 8])

    def test_block_ends(self):
        """
        A block ends when its time is up.
        """
        for _ in range(5):
            self.table.failed("k")
        self.assertEqual(self.table.wait("k"), 2)
        self.clock.advance(2)
        self.assertEqual(self.table.wait("k"), 0)

    def test_forgive(self):
        """
        Forgiving clears the key's failures.
        """
        for _ in range(5):
            self.table.failed("k")
        self.table.forgive("k")
        self.assertEqual(self.table.wait("k"), 0)
        self.table.failed("k")
        self.assertEqual(self.table.wait("k"), 0)

    def test_quiet_forgives(self):
        """
        Failures long past (twice the longest block) no longer count.
        """
        for _ in range(4):
            self.table.failed("k")
        self.clock.advance(17)
        self.table.failed("k")
        self.assertEqual(self.table.wait("k"), 0)

    def test_checks_under_way_count(self):
        """
        Attempts under way count as failures: with the free ones under way,
        the next attempt waits for a verdict.
        """
        for _ in range(3):
            self.assertEqual(self.table.wait("k"), 0)
            self.table.started("k")
        self.assertEqual(self.table.wait("k"), 1)
        self.table.finished("k", failed=False)
        self.assertEqual(self.table.wait("k"), 0)

    def test_past_the_free_one_at_a_time(self):
        """
        Once the free failures are used, attempts go one at a time, each
        failure doubling the block.
        """
        for _ in range(3):
            self.table.failed("k")
        self.table.started("k")
        self.assertEqual(self.table.wait("k"), 1)
        self.table.finished("k", failed=True)
        self.assertEqual(self.table.wait("k"), 1)

    def test_bounded(self):
        """
        However many keys fail, the table keeps at most C{max_keys}, the
        least recent dropped first.
        """
        for i in range(1000):
            self.table.failed(i)
        self.assertEqual(len(self.table), 100)
        self.assertEqual(self.table.wait(0), 0)

    def test_blocked_never_evicted_first(self):
        """
        The attack: a blocked address is made to forget by a flood of
        one-off failures from other keys. Blocked keys are kept ahead of
        every key that is not blocked.
        """
        for _ in range(10):
            self.table.failed("attacker")
        blocked = self.table.wait("attacker")
        self.assertEqual(blocked, 8)
        for i in range(70_000):
            self.table.failed(("one-off", i))
        self.assertEqual(len(self.table), 100)
        self.assertEqual(self.table.wait("attacker"), blocked)

    def test_checks_under_way_never_evicted(self):
        """
        A key with a check under way keeps its count whatever the pressure,
        so its verdict lands on the right record.
        """
        self.table.started("k")
        for i in range(1000):
            self.table.failed(i)
        self.assertEqual(self.table.checking("k"), 1)

    def test_full_of_blocked_keys(self):
        """
        When every key is blocked the table still stays bounded, dropping
        the oldest block.
        """
        for i in range(150):
            for _ in range(4):
                self.table.failed(i)
        self.assertEqual(len(self.table), 100)
        self.assertGreater(self.table.wait(149), 0)


class BudgetTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.budget = Budget(self.clock, size=3, window=30, max_keys=100)

    def test_burst_then_refill(self):
        """
        A burst of C{size}, then one more every C{window / size} seconds.
        """
        self.assertEqual([self.budget.take("a") for _ in range(3)], [0, 0, 0])
        self.assertEqual(self.budget.take("a"), 10)
        self.assertEqual(self.budget.take("b"), 0)
        self.clock.advance(10)
        self.assertEqual(self.budget.take("a"), 0)
        self.assertGreater(self.budget.take("a"), 0)

    def test_spent_never_evicted_first(self):
        """
        A spent budget is not refilled by a flood of other keys.
        """
        for _ in range(3):
            self.budget.take("a")
        for i in range(10_000):
            self.budget.take(i)
        self.assertEqual(len(self.budget), 100)
        self.assertGreater(self.budget.take("a"), 0)


class LoginThrottleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.throttle = LoginThrottle(
            self.clock, Limits(per_login_address=2, per_login=4, per_address=6)
        )

    def test_login_address(self):
        """
        Failures for one login from one address block that pair first; the
        login is free from elsewhere, and logins are case-insensitive.
        """
        for _ in range(3):
            fail(self.throttle, "Ann", "10.0.0.1")
        self.assertGreater(self.throttle.password_wait("ann", "10.0.0.1"), 0)
        self.assertEqual(self.throttle.password_wait("ann", "10.0.0.2"), 0)
        self.assertEqual(self.throttle.password_wait("bob", "10.0.0.1"), 0)

    def test_login_everywhere(self):
        """
        Failures for one login from many addresses block the login.
        """
        for i in range(5):
            fail(self.throttle, "ann", f"10.0.0.{i}")
        self.assertGreater(self.throttle.password_wait("ann", "10.9.9.9"), 0)

    def test_address(self):
        """
        Failures from one address over many logins block the address.
        """
        for i in range(7):
            fail(self.throttle, f"user{i}", "10.0.0.1")
        self.assertGreater(self.throttle.password_wait("someone", "10.0.0.1"), 0)

    def test_one_check_per_login(self):
        """
        The attack: many connections send a guess for one login at once.
        Only one is checked at a time; the others are refused before they
        are counted or checked.
        """
        self.throttle.start_password("ann", "10.0.0.1")
        for i in range(150):
            e = self.assertRaises(
                RateLimited, self.throttle.start_password, "ANN", f"10.0.{i}.2"
            )
            self.assertIn("under way", str(e))
        self.throttle.start_password("bob", "10.0.0.1")  # other logins go on
        self.throttle.finish_password("ann", "10.0.0.1", matched=False)
        self.throttle.start_password("ann", "10.0.0.3")

    def test_counted_before_checked(self):
        """
        From one address, attempts at different logins under way count
        against the address's free failures before any verdict is in.
        """
        for i in range(6):
            self.throttle.start_password(f"user{i}", "10.0.0.1")
        self.assertRaises(RateLimited, self.throttle.start_password, "u7", "10.0.0.1")

    def test_unchecked_is_no_failure(self):
        """
        An attempt that was never checked (hashing refused, client gone)
        neither counts as a failure nor forgives.
        """
        for _ in range(2):
            fail(self.throttle, "ann", "10.0.0.1")
        for _ in range(10):
            self.throttle.start_password("ann", "10.0.0.1")
            self.throttle.finish_password("ann", "10.0.0.1", matched=None)
        self.assertEqual(self.throttle.password_wait("ann", "10.0.0.1"), 0)
        fail(self.throttle, "ann", "10.0.0.1")
        self.assertGreater(self.throttle.password_wait("ann", "10.0.0.1"), 0)

    def test_success_keeps_address_failures(self):
        """
        Logging into one's own account forgives that login's failures from
        that address, not the address's failures over other logins.
        """
        for i in range(5):
            fail(self.throttle, f"victim{i}", "10.0.0.7")
        fail(self.throttle, "gus", "10.0.0.7")
        self.throttle.start_password("gus", "10.0.0.7")
        self.throttle.finish_password("gus", "10.0.0.7", matched=True)
        fail(self.throttle, "victim9", "10.0.0.7")
        self.assertGreater(self.throttle.password_wait("victim99", "10.0.0.7"), 0)

    def test_lock_out_bounded(self):
        """
        However many guesses an attacker sends at a login, its owner is
        locked out for no longer than C{max_block}.
        """
        throttle = LoginThrottle(self.clock, Limits(max_block=900))
        for i in range(2000):
            try:
                fail(throttle, "owner", f"10.{i // 250}.{i % 250}.1")
            except RateLimited:
                pass
            self.clock.advance(0.5)
        self.assertLessEqual(throttle.password_wait("owner", "192.0.2.1"), 900)

    def test_ipv6_by_network(self):
        """
        IPv6 addresses of one /64 are one key: fresh addresses from it buy
        no fresh failures.
        """
        for i in range(7):
            fail(self.throttle, f"user{i}", f"2001:db8:1:2::{i + 1:x}")
        self.assertGreater(self.throttle.password_wait("x", "2001:db8:1:2::ffff"), 0)
        self.assertEqual(self.throttle.password_wait("x", "2001:db8:1:3::1"), 0)

    def test_ipv6_prefix_configurable(self):
        """
        C{ipv6_prefix} 128 counts every IPv6 address on its own.
        """
        throttle = LoginThrottle(self.clock, Limits(per_address=1, ipv6_prefix=128))
        for i in range(2):
            fail(throttle, f"user{i}", "2001:db8::1")
        self.assertGreater(throttle.password_wait("x", "2001:db8::1"), 0)
        self.assertEqual(throttle.password_wait("x", "2001:db8::2"), 0)

    def test_bad_token_blocks_only_the_guesser(self):
        """
        The attack: one client behind a NAT sends forged tokens until the
        address is throttled. Its own connections are held back; a
        neighbour's first token on its connection is still checked.
        """
        for _ in range(200):
            self.throttle.token_refused("10.0.0.2")
        self.assertRaises(
            RateLimited, self.throttle.start_token, "10.0.0.2", refused_before=True
        )
        self.throttle.start_token("10.0.0.2", refused_before=False)

    def test_tokens_separate(self):
        """
        Password failures do not slow token logins, nor the reverse.
        """
        for i in range(7):
            fail(self.throttle, f"user{i}", "10.0.0.1")
        self.throttle.start_token("10.0.0.1", refused_before=True)
        for _ in range(200):
            self.throttle.token_refused("10.0.0.2")
        self.assertEqual(self.throttle.password_wait("ann", "10.0.0.2"), 0)

    def test_registration_budget(self):
        """
        One address may start a class's worth of registrations at once,
        then waits; others are not affected.
        """
        throttle = LoginThrottle(self.clock)
        for _ in range(30):
            throttle.start_registration("10.0.0.1")
        for _ in range(Limits().registrations - 30):
            throttle.start_registration("10.0.0.1")
        self.assertRaises(RateLimited, throttle.start_registration, "10.0.0.1")
        throttle.start_registration("10.0.0.2")
        self.clock.advance(Limits().registrations_window)
        throttle.start_registration("10.0.0.1")

    def test_lookup_budget(self):
        """
        Login look-ups from one address are budgeted: a class's worth at
        once, a flood refused.
        """
        throttle = LoginThrottle(self.clock)
        for _ in range(Limits().lookups):
            throttle.start_lookup("10.0.0.1")
        e = self.assertRaises(RateLimited, throttle.start_lookup, "10.0.0.1")
        self.assertIn("try again in 1 s", str(e))

    def test_defaults_generous(self):
        """
        With the defaults, ten failures of one login from one address (more
        than three connections' worth) are not throttled.
        """
        throttle = LoginThrottle(self.clock)
        for _ in range(10):
            fail(throttle, "ann", "127.0.0.1")
        self.assertEqual(throttle.password_wait("ann", "127.0.0.1"), 0)

    def test_memory_bounded(self):
        """
        100,000 distinct keys in every table stay within the bound.
        """
        throttle = LoginThrottle(self.clock, Limits(max_keys=10_000))
        for i in range(100_000):
            address = f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"
            fail(throttle, f"user{i}", address)
            throttle.token_refused(address)
            throttle.start_registration(address)
            throttle.start_lookup(address)
        for table in (
            throttle._login_address,
            throttle._login,
            throttle._address,
            throttle._token_address,
            throttle._registrations,
            throttle._lookups,
        ):
            self.assertEqual(len(table), 10_000)
