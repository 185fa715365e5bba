"""
Tests for L{echotwist.reactor}: Twisted's own reactor test suites (system
events, descriptors, threads, time, TCP) run against it, and what it does
differently is checked here.
"""

import select
import socket
import subprocess

from twisted.internet.test import (
    test_core,
    test_fdset,
    test_tcp,
    test_threads,
    test_time,
)
from twisted.internet.test.reactormixins import ReactorBuilder
from twisted.python import log
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import test_twistd

REACTORS = ["echotwist.reactor.EPollReactor"]


def _no_log_context(self):
    """
    (Twisted's test that each event runs in the connection's legacy log
    context.)
    """


_no_log_context.skip = (
    "echolab's reactor does not push the legacy log context for each event "
    "(echotwist/reactor.py says why)"
)

for _builder in (
    test_core.SystemEventTestsBuilder,
    test_fdset.ReactorFDSetTestsBuilder,
    test_threads.ThreadTestsBuilder,
    test_time.TimeTestsBuilder,
    test_tcp.TCP4ClientTestsBuilder,
    test_tcp.TCP6ClientTestsBuilder,
    test_tcp.TCPPortTestsBuilder,
    test_tcp.TCPConnectionTestsBuilder,
    test_tcp.TCP4ConnectorTestsBuilder,
    test_tcp.TCPTransportTestsBuilder,
    test_tcp.AbortConnectionTests,
):
    _attributes = {"_reactors": REACTORS, "__module__": __name__}
    if hasattr(_builder, "test_logPrefix"):
        _attributes["test_logPrefix"] = _no_log_context
    globals().update(
        type(_builder.__name__, (_builder,), _attributes).makeTestCaseClasses()
    )


class Readable:
    """
    A socket with a byte waiting, as the reactor sees it.
    """

    def __init__(self, testcase, prefix, fail=False):
        self._socket, peer = socket.socketpair()
        testcase.addCleanup(self._socket.close)
        testcase.addCleanup(peer.close)
        peer.send(b"x")
        self.prefix = prefix
        self.fail = fail
        self.read = False

    def fileno(self):
        return self._socket.fileno()

    def logPrefix(self):
        return self.prefix

    def doRead(self):
        self.read = True
        if self.fail:
            raise ValueError("broken protocol")
        self._socket.recv(1)

    def connectionLost(self, reason):
        if self.fail:
            raise RuntimeError("broken connectionLost")


class EventTestsBuilder(ReactorBuilder):
    _reactors = REACTORS

    def test_error_logged_and_next_event_handled(self):
        """
        An error escaping an event's handling is logged, naming the
        connection as Twisted's reactors do, and the other events of the
        same poll are still handled.
        """
        reactor = self.buildReactor()
        broken = Readable(self, "Broken,1,127.0.0.1", fail=True)
        healthy = Readable(self, "Healthy,2,127.0.0.1")
        reactor.addReader(broken)
        reactor.addReader(healthy)
        self.addCleanup(reactor.removeReader, healthy)
        events = []
        log.addObserver(events.append)
        self.addCleanup(log.removeObserver, events.append)

        reactor.doIteration(0)

        self.assertTrue(healthy.read)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        failures = [e for e in events if e.get("isError") and "failure" in e]
        self.assertIn("Broken,1,127.0.0.1", [e["system"] for e in failures])

    def test_removed_during_poll(self):
        """
        A descriptor removed by an earlier event of the same poll is not
        handled.
        """
        reactor = self.buildReactor()
        second = Readable(self, "Second")
        first = Readable(self, "First")
        first.doRead = lambda: reactor.removeReader(second)
        reactor.addReader(first)
        reactor.addReader(second)
        self.addCleanup(reactor.removeReader, first)

        reactor.doIteration(0)

        self.assertFalse(second.read)


globals().update(EventTestsBuilder.makeTestCaseClasses())


class PluginTests(SynchronousTestCase):
    """
    The reactor is a Twisted reactor plugin, C{echolab-epoll}.
    """

    def test_listed(self):
        """
        Twisted's reactor list names it, with its module.
        """
        from twisted.application.reactors import getReactorTypes

        found = {r.shortName: r for r in getReactorTypes()}
        self.assertIn("echolab-epoll", found)
        self.assertEqual(found["echolab-epoll"].moduleName, "echotwist.reactor")

    def test_help_reactors(self):
        """
        C{twistd --help-reactors} lists it.
        """
        out = subprocess.run(
            [*test_twistd.TWISTD, "--help-reactors"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        self.assertRegex(out, r"(?m)^\s*echolab-epoll\s")

    def test_twistd_picks_it(self):
        """
        C{twistd -r echolab-epoll} runs the server on it.
        """
        if not hasattr(select, "epoll"):
            raise SkipTest("no epoll")
        test_twistd.assert_runs_on(
            self, "echolab-epoll", "echotwist.reactor.EPollReactor"
        )
