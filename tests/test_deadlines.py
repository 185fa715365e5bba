"""
Tests for L{echotwist.deadlines}: which timeout a connection overstayed.
"""

from twisted.trial.unittest import SynchronousTestCase

from echotwist.deadlines import Deadlines
from echotwist.settings import Settings

SETTINGS = Settings(
    login_timeout=30, idle_timeout=300, frame_timeout=60, stall_timeout=10
)


class DeadlinesTests(SynchronousTestCase):
    def setUp(self):
        self.deadlines = Deadlines(SETTINGS, 1000)

    def test_in_time(self):
        """
        A connection within all its timeouts overstayed none.
        """
        self.assertIsNone(self.deadlines.overstayed(1000 + 299, logging_in=False))

    def test_idle(self):
        """
        The idle timeout runs from when the client was last heard.
        """
        self.deadlines.last_heard = 1200
        self.assertIsNone(self.deadlines.overstayed(1499, logging_in=False))
        self.assertEqual(
            self.deadlines.overstayed(1500, logging_in=False), "idle for too long"
        )

    def test_login(self):
        """
        While the client has yet to log in, the login timeout runs from
        accept, however recently it was heard.
        """
        self.deadlines.last_heard = 1029
        self.assertIsNone(self.deadlines.overstayed(1029, logging_in=True))
        self.assertEqual(
            self.deadlines.overstayed(1030, logging_in=True),
            "took too long to identify or log in",
        )
        self.assertIsNone(self.deadlines.overstayed(1030, logging_in=False))

    def test_unfinished_frame(self):
        """
        A frame left unfinished has the frame timeout, in place of the idle
        one.
        """
        self.deadlines.unfinished_since = 1100
        self.assertIsNone(self.deadlines.overstayed(1159, logging_in=False))
        self.assertEqual(
            self.deadlines.overstayed(1160, logging_in=False),
            "a message was left incomplete",
        )
        self.deadlines.unfinished_since = 1400
        self.assertIsNone(self.deadlines.overstayed(1450, logging_in=False))

    def test_stalled(self):
        """
        A client that does not read what is sent has the stall timeout,
        which comes first.
        """
        self.deadlines.stalled_since = 1020
        self.assertIsNone(self.deadlines.overstayed(1029, logging_in=False))
        self.assertEqual(
            self.deadlines.overstayed(1030, logging_in=True),
            "not reading what the server sends",
        )

    def test_stalled_login(self):
        """
        A stall not yet timed out does not hide the login timeout.
        """
        self.deadlines.stalled_since = 1025
        self.assertEqual(
            self.deadlines.overstayed(1030, logging_in=True),
            "took too long to identify or log in",
        )
