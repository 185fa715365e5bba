"""
Tests for L{echotwist.throttle}: blocks double after the free failures,
end with time, and the tables stay bounded.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist.throttle import Backoff, Limits, LoginThrottle


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
        self.assertEqual(self.table.blocked_for("k"), 0)

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
            blocks.append(self.table.blocked_for("k"))
        self.assertEqual(blocks, [1, 2, 4, 8, 8, 8])

    def test_block_ends(self):
        """
        A block ends when its time is up.
        """
        for _ in range(5):
            self.table.failed("k")
        self.assertEqual(self.table.blocked_for("k"), 2)
        self.clock.advance(2)
        self.assertEqual(self.table.blocked_for("k"), 0)

    def test_success_forgives(self):
        """
        A success clears the key's failures.
        """
        for _ in range(5):
            self.table.failed("k")
        self.table.succeeded("k")
        self.assertEqual(self.table.blocked_for("k"), 0)
        self.table.failed("k")
        self.assertEqual(self.table.blocked_for("k"), 0)

    def test_quiet_forgives(self):
        """
        Failures long past (twice the longest block) no longer count.
        """
        for _ in range(4):
            self.table.failed("k")
        self.clock.advance(17)
        self.table.failed("k")
        self.assertEqual(self.table.blocked_for("k"), 0)

    def test_bounded(self):
        """
        However many keys fail, the table keeps at most C{max_keys}, the
        least recent dropped first.
        """
        for i in range(1000):
            self.table.failed(i)
        self.assertEqual(len(self.table), 100)
        self.assertEqual(self.table.blocked_for(0), 0)


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
            self.throttle.password_failed("Ann", "10.0.0.1")
        self.assertGreater(self.throttle.password_wait("ann", "10.0.0.1"), 0)
        self.assertEqual(self.throttle.password_wait("ann", "10.0.0.2"), 0)
        self.assertEqual(self.throttle.password_wait("bob", "10.0.0.1"), 0)

    def test_login_everywhere(self):
        """
        Failures for one login from many addresses block the login.
        """
        for i in range(5):
            self.throttle.password_failed("ann", f"10.0.0.{i}")
        self.assertGreater(self.throttle.password_wait("ann", "10.9.9.9"), 0)

    def test_address(self):
        """
        Failures from one address over many logins block the address.
        """
        for i in range(7):
            self.throttle.password_failed(f"user{i}", "10.0.0.1")
        self.assertGreater(self.throttle.password_wait("someone", "10.0.0.1"), 0)

    def test_tokens_separate(self):
        """
        Password failures do not slow token logins, nor the reverse.
        """
        for i in range(7):
            self.throttle.password_failed(f"user{i}", "10.0.0.1")
        self.assertEqual(self.throttle.token_wait("10.0.0.1"), 0)
        for _ in range(200):
            self.throttle.token_failed("10.0.0.2")
        self.assertGreater(self.throttle.token_wait("10.0.0.2"), 0)
        self.assertEqual(self.throttle.password_wait("ann", "10.0.0.2"), 0)

    def test_defaults_generous(self):
        """
        With the defaults, ten failures of one login from one address (more
        than three connections' worth) are not throttled.
        """
        throttle = LoginThrottle(self.clock)
        for _ in range(10):
            throttle.password_failed("ann", "127.0.0.1")
        self.assertEqual(throttle.password_wait("ann", "127.0.0.1"), 0)
