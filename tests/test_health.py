"""
Tests for L{echotwist.health}: the store probe on a L{Clock}, and what
C{/healthz} answers.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from echotwist.health import PROBE, TIMEOUT, Health, StoreProbe


class Store:
    """
    A database whose reads answer only when the test says so.
    """

    def __init__(self):
        self.reads = []

    def read(self, sql):
        d = defer.Deferred()
        self.reads.append((sql, d))
        return d


class ProbeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = Store()
        self.probe = StoreProbe(self.store, self.clock)

    def test_answers(self):
        """
        A store that answers the read is healthy.
        """
        d = self.probe.check()
        [(sql, read)] = self.store.reads
        self.assertEqual(sql, PROBE)
        read.callback((1,))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unanswered(self):
        """
        A store that does not answer within the timeout is unhealthy; the
        checks that follow wait for the same read instead of queueing
        more, and once it answers, the store is healthy again.
        """
        first = self.probe.check()
        self.clock.advance(TIMEOUT)
        self.assertEqual(
            self.successResultOf(first), f"store has not answered for {TIMEOUT:.1f} s"
        )
        second = self.probe.check()
        self.clock.advance(TIMEOUT)
        self.assertIn("not answered for 4.0 s", self.successResultOf(second))
        self.assertEqual(len(self.store.reads), 1)
        third = self.probe.check()
        self.store.reads[0][1].callback((1,))
        self.assertIsNone(self.successResultOf(third))
        fourth = self.probe.check()  # a new read, now that none is queued
        self.store.reads[1][1].callback((1,))
        self.assertIsNone(self.successResultOf(fourth))

    def test_failed(self):
        """
        A read that fails says why.
        """
        d = self.probe.check()
        self.store.reads[0][1].errback(OSError("disk I/O error"))
        self.assertEqual(self.successResultOf(d), "store failed: disk I/O error")


class HealthResourceTests(SynchronousTestCase):
    def render(self, resource):
        request = DummyRequest([b""])
        result = resource.render_GET(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request

    def test_ok(self):
        """
        Listening, with a store that answers: 200.
        """
        store, clock = Store(), Clock()
        request = self.render(Health(lambda: True, StoreProbe(store, clock)))
        self.assertEqual(request.finished, 0)
        store.reads[0][1].callback((1,))
        self.assertEqual(
            (request.responseCode, b"".join(request.written)), (200, b"ok\n")
        )

    def test_store_stuck(self):
        """
        A store that does not answer: 503, with the reason.
        """
        clock = Clock()
        request = self.render(Health(lambda: True, StoreProbe(Store(), clock)))
        clock.advance(TIMEOUT)
        self.assertEqual(request.responseCode, 503)
        self.assertIn(b"store has not answered", b"".join(request.written))

    def test_not_listening(self):
        """
        A server that does not listen (starting, stopping) is unhealthy,
        whatever its store says.
        """
        request = self.render(Health(lambda: False, StoreProbe(Store(), Clock())))
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(b"".join(request.written), b"unhealthy: not listening\n")

    def test_echo_mode(self):
        """
        Without a store (echo mode), listening is enough.
        """
        request = self.render(Health(lambda: True))
        self.assertEqual(request.responseCode, 200)

    def test_client_gone(self):
        """
        A client that hangs up before the store answers gets nothing
        written.
        """
        store = Store()
        request = DummyRequest([b""])
        Health(lambda: True, StoreProbe(store, Clock())).render_GET(request)
        request.processingFailed(Exception("gone"))
        store.reads[0][1].callback((1,))
        self.assertEqual(request.written, [])
