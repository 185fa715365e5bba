"""
Tests for L{echotwist.logbudget}: each client has a few lines written in
each window and the rest said in one summary line, whatever it does and
however many clients there are.
"""

import gc
import os
import tracemalloc

from twisted.application.service import Application
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from echotwist import logbudget
from echotwist.logbudget import ClientLogBudget, describe_kinds
from echotwist.service import EchoService

CONNECTED = "connection from {peer}"
WRONG = "wrong password for {login} from {address}"


class Budget(SynchronousTestCase):
    """
    A started budget with an allowance of 3 a minute, on a L{Clock}, in
    front of a list.
    """

    allowance = 3
    max_clients = logbudget.MAX_CLIENTS

    def setUp(self):
        self.clock = Clock()
        self.written = []
        self.budget = ClientLogBudget(
            self.written.append,
            self.clock,
            allowance=self.allowance,
            window=60,
            max_clients=self.max_clients,
        )
        self.budget.start()
        self.addCleanup(self.budget.stop)
        self.log = Logger(namespace="test", observer=self.budget)

    def connect(self, client, times=1):
        for _ in range(times):
            self.log.info(CONNECTED, peer=f"{client}:4000", client=client)

    def wrong(self, client, times=1):
        for _ in range(times):
            self.log.warn(WRONG, login="alice", address=client, client=client)

    def lines(self):
        return [formatEvent(event) for event in self.written]

    def summaries(self):
        return [
            formatEvent(event)
            for event in self.written
            if event["log_namespace"] == "echotwist.logbudget.ClientLogBudget"
        ]


class WindowTests(Budget):
    def test_noisy_client_summarised(self):
        """
        A client's first events in a window are written; the rest are
        counted by kind and said in one line when the window ends.
        """
        self.connect("10.0.0.1", 10)
        self.assertEqual(self.lines(), ["connection from 10.0.0.1:4000"] * 3)
        self.clock.advance(59)
        self.assertEqual(self.summaries(), [])
        self.clock.advance(1)
        self.assertEqual(
            self.summaries(),
            [
                "7 more lines about 10.0.0.1 not written in the last 60 s: "
                f"7 x {CONNECTED!r}"
            ],
        )
        summary = self.written[-1]
        self.assertEqual(summary["log_level"], LogLevel.warn)
        self.assertNotIn("client", summary)  # not itself a line to count

    def test_warnings_not_crowded_out(self):
        """
        The attack: a client's connection lines use up its allowance, so
        the line saying which login it guessed at is only summarised.
        Warnings have an allowance of their own.
        """
        self.connect("10.0.0.1", 10)
        self.wrong("10.0.0.1", 5)
        lines = self.lines()
        self.assertEqual(lines.count("wrong password for alice from 10.0.0.1"), 3)
        self.clock.advance(60)
        self.assertEqual(
            sorted(self.summaries()),
            [
                "2 more lines about 10.0.0.1 (warnings) not written in the last "
                f"60 s: 2 x {WRONG!r}",
                "7 more lines about 10.0.0.1 not written in the last 60 s: "
                f"7 x {CONNECTED!r}",
            ],
        )

    def test_quiet_client_beside(self):
        """
        A quiet client next to a noisy one has every line written, and no
        summary.
        """
        for _ in range(3):
            self.connect("10.0.0.1", 100)
            self.wrong("10.0.0.2")
        self.clock.advance(60)
        lines = self.lines()
        self.assertEqual(lines.count("connection from 10.0.0.1:4000"), 3)
        self.assertEqual(lines.count("wrong password for alice from 10.0.0.2"), 3)
        self.assertEqual(
            self.summaries(),
            [
                "297 more lines about 10.0.0.1 not written in the last 60 s: "
                f"297 x {CONNECTED!r}"
            ],
        )

    def test_errors_pass(self):
        """
        Errors, critical events and failures are written whatever the
        budget, and not counted in the summary.
        """
        self.connect("10.0.0.1", 5)
        self.log.error("broken for {client}", client="10.0.0.1")
        self.log.critical("very broken for {client}", client="10.0.0.1")
        try:
            raise ZeroDivisionError("on purpose")
        except ZeroDivisionError:
            self.log.failure("serving {client}", client="10.0.0.1")
        lines = self.lines()
        self.assertIn("broken for 10.0.0.1", lines)
        self.assertIn("very broken for 10.0.0.1", lines)
        self.assertIn("serving 10.0.0.1", lines)
        self.clock.advance(60)
        self.assertEqual(
            self.summaries()[0][:45], "2 more lines about 10.0.0.1 not written in th"
        )

    def test_summary_after_silence(self):
        """
        A client that goes quiet still has its summary when the window
        ends; the next window it has its full allowance again, and a window
        with nothing held back writes nothing.
        """
        self.connect("10.0.0.1", 4)
        self.clock.advance(60)
        self.assertEqual(len(self.summaries()), 1)
        self.assertEqual(self.budget.clients, 0)
        del self.written[:]
        self.connect("10.0.0.1", 3)
        self.clock.advance(60)
        self.clock.advance(600)
        self.assertEqual(self.lines(), ["connection from 10.0.0.1:4000"] * 3)

    def test_without_client_untouched(self):
        """
        Events without a C{client} field pass as they are, however many.
        """
        events = [dict(log_format="started {n}", n=n) for n in range(100)]
        for event in events:
            self.budget(event)
        self.assertEqual(len(self.written), 100)
        for given, written in zip(events, self.written, strict=True):
            self.assertIs(given, written)
        self.clock.advance(60)
        self.assertEqual(len(self.written), 100)

    def test_stop(self):
        """
        Stopping ends the window at once, with its summaries saying how
        long it was, leaves no timer, and lets every event pass after.
        """
        self.clock.advance(60)
        self.clock.advance(25)
        self.connect("10.0.0.1", 4)
        self.budget.stop()
        self.assertEqual(
            self.summaries(),
            [
                "1 more line about 10.0.0.1 not written in the last 25 s: "
                f"1 x {CONNECTED!r}"
            ],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.connect("10.0.0.1", 100)
        self.assertEqual(len(self.written), 3 + 1 + 100)
        self.budget.stop()  # twice: nothing more
        self.assertEqual(len(self.written), 3 + 1 + 100)

    def test_not_started(self):
        """
        Until started, a budget holds nothing back (no timer would say so).
        """
        written = []
        budget = ClientLogBudget(written.append, Clock(), allowance=1)
        for _ in range(5):
            budget(dict(log_format=CONNECTED, client="10.0.0.1", peer="x"))
        self.assertEqual(len(written), 5)


class TableTests(Budget):
    max_clients = 2

    def test_other_clients_share(self):
        """
        Clients that find the table full share one allowance and one
        summary.
        """
        self.connect("10.0.0.1")
        self.connect("10.0.0.2")
        for n in range(3, 10):
            self.connect(f"10.0.0.{n}")
        self.assertEqual(self.budget.clients, 3)
        self.assertEqual(len(self.written), 2 + 3)
        self.clock.advance(60)
        self.assertEqual(
            self.summaries(),
            [
                "4 more lines about other clients (over 2) not written in the "
                f"last 60 s: 4 x {CONNECTED!r}"
            ],
        )


class ManyClientsTests(SynchronousTestCase):
    def test_bounded(self):
        """
        100,000 clients, each over its allowance (the first ones with more
        kinds than are counted one by one), take no more memory than the
        table's bound allows, and have at most one summary per entry, each
        of bounded length.
        """
        clock = Clock()
        written = []
        budget = ClientLogBudget(written.append, clock, allowance=1)
        budget.start()
        formats = [f"kind {k} {{peer}}" for k in range(20)]
        events = [dict(log_format=f, peer="p") for f in formats]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for n in range(100_000):
                client = f"2001:db8::{n:x}"
                for event in events if n < logbudget.MAX_CLIENTS else events[:2]:
                    event["client"] = client
                    budget(event)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        self.assertEqual(budget.clients, logbudget.MAX_CLIENTS + 1)
        if os.environ.get("ECHOLAB_SHOW_MEMORY"):
            print(f"\n{grown:,} bytes for 100,000 clients")
        # Each entry: its client's text and count, and its kinds' counts.
        self.assertLess(grown, (logbudget.MAX_CLIENTS + 1) * 1024)
        self.assertEqual(len(written), logbudget.MAX_CLIENTS + 1)
        budget.stop()
        summaries = written[logbudget.MAX_CLIENTS + 1 :]
        self.assertEqual(len(summaries), logbudget.MAX_CLIENTS + 1)
        # The later clients' events but the first, which used their allowance:
        held_back = (100_000 - logbudget.MAX_CLIENTS) * 2 - 1
        self.assertTrue(
            formatEvent(summaries[-1]).startswith(
                f"{held_back:,} more lines about other clients (over 4,096) not "
            )
        )
        self.assertLess(max(len(formatEvent(e)) for e in summaries), 400)


class DescribeKindsTests(SynchronousTestCase):
    def test_bounded(self):
        """
        The most frequent kinds are named, each format cut short and on one
        line; the rest are counted together.
        """
        kinds = {f"kind {k}": k + 1 for k in range(10)}
        kinds["a\nlong " + "x" * 200] = 1000
        text = describe_kinds(kinds)
        self.assertEqual(
            text,
            f"1,000 x 'a\\nlong {'x' * 50}...', 10 x 'kind 9', 9 x 'kind 8', "
            "8 x 'kind 7', 28 of 7 other kinds",
        )

    def test_kinds_bounded(self):
        """
        A client's kinds are counted one by one up to a bound, the rest
        together; a long format is kept cut short.
        """
        written = []
        budget = ClientLogBudget(written.append, Clock(), allowance=0)
        budget.start()
        for k in range(logbudget.MAX_KINDS + 5):
            budget(dict(log_format=f"kind {k}", client="c"))
        budget(dict(log_format="y" * 1000, client="c"))
        budget(dict(client="c"))
        budget.stop()
        [summary] = written
        self.assertEqual(summary["count"], logbudget.MAX_KINDS + 7)
        self.assertIn("7 x '(other kinds)'", summary["kinds"])


class FakeReactor(Clock):
    def callWhenRunning(self, f, *args):
        pass  # (the signal handlers are not for tests)


class ServiceTests(SynchronousTestCase):
    def test_wired(self):
        """
        The server's log file is behind a budget, whose windows run while
        the service does.
        """
        reactor = FakeReactor()
        path = self.mktemp()
        top = EchoService(reactor, path, 1_000_000, 2, 30, None, None)
        application = Application("echolab")
        top.setServiceParent(application)
        self.addCleanup(top.logfile.close)
        observer = application.getComponent(ILogObserver)
        self.assertIsInstance(observer, ClientLogBudget)
        top.startService()
        log = Logger(observer=observer)
        for _ in range(logbudget.ALLOWANCE + 5):
            log.warn("refused token from {client}", client="10.0.0.1")
        self.assertEqual(len(reactor.getDelayedCalls()), 1)
        top.stopService()
        self.assertEqual(reactor.getDelayedCalls(), [])
        top.logfile.flush()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count("refused token from 10.0.0.1"), logbudget.ALLOWANCE)
        self.assertIn(
            "5 more lines about 10.0.0.1 (warnings) not written in the last 0 s: "
            "5 x 'refused token from {client}'\n",
            text,
        )
