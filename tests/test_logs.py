"""
Tests for L{echotwist.logs}: JSON lines, a log that never rotates itself,
and reopening after the file was moved (the signal path in process; the
real process's is in L{tests.test_operations}).
"""

import json
import os
import signal

from twisted.logger import Logger, eventsFromJSONLogFile, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from echotwist.logs import REOPEN_SIGNAL, ReopenOnSignal, open_log


class Reactor:
    """
    Runs what is called from a thread (here, a signal handler) when told.
    """

    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *args):
        self.calls.append((f, args))

    def run_calls(self):
        calls, self.calls = self.calls, []
        for f, args in calls:
            f(*args)


class JSONLinesTests(SynchronousTestCase):
    def test_lines_parse(self):
        """
        Each event of level info and above is one line of JSON, which
        twisted.logger reads back as the event (failures included).
        """
        path = self.mktemp()
        observer, logfile = open_log(path, 0, 1, "json")
        log = Logger(observer=observer)
        log.debug("chatter")
        log.info("connection from {peer}", peer="10.0.0.1:5")
        try:
            raise ZeroDivisionError("on purpose")
        except ZeroDivisionError:
            log.failure("while serving {peer}", peer="10.0.0.9")
        log.warn("Привет, {name}", name="Мир")
        logfile.close()
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 3)
        events = [json.loads(line) for line in lines]
        self.assertEqual(events[0]["peer"], "10.0.0.1:5")
        self.assertEqual(events[0]["log_level"]["name"], "info")
        with open(path, encoding="utf-8") as f:
            read = list(eventsFromJSONLogFile(f))
        self.assertEqual(
            [formatEvent(e) for e in read],
            ["connection from 10.0.0.1:5", "while serving 10.0.0.9", "Привет, Мир"],
        )
        self.assertIn("ZeroDivisionError", read[1]["log_failure"].getTraceback())

    def test_unknown_format(self):
        self.assertRaises(ValueError, open_log, self.mktemp(), 0, 1, "xml")


class RotationTests(SynchronousTestCase):
    def test_never_rotates(self):
        """
        With a rotation size of 0, the file grows: rotating is left to an
        external tool.
        """
        path = self.mktemp()
        observer, logfile = open_log(path, 0, 2)
        log = Logger(observer=observer)
        for i in range(200):
            log.info("line {i} {pad}", i=i, pad="x" * 50)
        logfile.close()
        self.assertEqual(
            os.listdir(os.path.dirname(os.path.abspath(path))), [os.path.basename(path)]
        )


class ReopenTests(SynchronousTestCase):
    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.path = os.path.join(self.folder, "echolab.log")
        observer, self.logfile = open_log(self.path, 0, 2)
        self.addCleanup(self.logfile.close)
        self.log = Logger(observer=observer)
        self.reactor = Reactor()
        self.reopener = ReopenOnSignal(self.logfile, self.reactor, self.log)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def test_signal(self):
        """
        After the file is moved and the signal sent, new lines go to a new
        file at the old path (mode 0600), written on the reactor's thread.
        """
        previous = signal.getsignal(REOPEN_SIGNAL)
        self.reopener.install()
        self.addCleanup(self.reopener.uninstall)
        self.log.info("before")
        os.rename(self.path, self.path + ".1")
        os.kill(os.getpid(), REOPEN_SIGNAL)
        self.log.info("still the old file")
        self.reactor.run_calls()
        self.log.info("after")
        self.assertIn("before", self.read(self.path + ".1"))
        self.assertIn("still the old file", self.read(self.path + ".1"))
        new = self.read(self.path)
        self.assertIn("reopened after SIGUSR1", new)
        self.assertIn("after", new)
        self.assertNotIn("before", new)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        self.reopener.uninstall()
        self.assertEqual(signal.getsignal(REOPEN_SIGNAL), previous)

    def test_cannot_reopen(self):
        """
        When the path cannot be opened for writing, the open file goes on,
        saying why.
        """
        os.rename(self.path, self.path + ".1")
        os.mkdir(self.path)  # (a folder in the way: refused even to root)
        self.reopener.reopen()
        self.log.info("after")
        text = self.read(self.path + ".1")
        self.assertIn("cannot reopen the log file", text)
        self.assertIn("after", text)
