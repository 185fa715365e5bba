# -*- test-case-name: tests.test_health -*-
"""
C{/healthz}: 200 while the server listens and its store answers, 503 with
the reason otherwise, for a load balancer, systemd's watchdog scripts or
a Prometheus blackbox probe.

The store is asked a cheap read (C{SELECT 1}) on its own thread, which is
also where every write waits its turn: a store stuck on a lock or a dead
disk leaves the read unanswered, and the check says so after
C{timeout} seconds. At most one such read is queued at a time, however
many checks come in, so a stuck store does not pile up reads behind it.
"""

from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

PROBE = "SELECT 1"
TIMEOUT = 2.0


class StoreProbe:
    """
    Whether a L{echotwist.store.Database} answers a read within C{timeout}
    seconds; one read in flight at most, shared by every check waiting.
    """

    def __init__(self, database, clock, timeout=TIMEOUT):
        self._database = database
        self._clock = clock
        self.timeout = timeout
        self._waiting = []  # the checks' Deferreds, until the read answers
        self._asked_at = None  # when the read in flight was queued

    def check(self):
        """
        @return: a L{Deferred} firing with L{None} when the store answered,
            or with why not (text).
        """
        waiter = defer.Deferred()
        self._waiting.append(waiter)
        if self._asked_at is None:
            self._asked_at = self._clock.seconds()
            d = defer.maybeDeferred(self._database.read, PROBE)
            d.addCallbacks(
                lambda _: None, lambda f: f"store failed: {f.getErrorMessage()}"
            )
            d.addCallback(self._answered)
        waiter.addTimeout(
            self.timeout, self._clock, lambda _, __: self._gave_up(waiter)
        )
        return waiter

    def _gave_up(self, waiter):
        """
        A check gave up waiting: unhealthy. The read stays queued, and the
        next checks wait for it rather than queue another.
        """
        self._waiting.remove(waiter)
        return self._unanswered()

    def _unanswered(self):
        waited = self._clock.seconds() - self._asked_at
        return f"store has not answered for {waited:.1f} s"

    def _answered(self, why):
        self._asked_at = None
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.called:
                waiter.callback(why)


class Health(Resource):
    """
    The C{/healthz} resource.
    """

    isLeaf = True

    def __init__(self, listening, probe=None):
        """
        @param listening: says whether every listener of the server is
            listening.
        @param probe: a L{StoreProbe}, or L{None} when there is no store
            (echo mode).
        """
        super().__init__()
        self._listening = listening
        self._probe = probe

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        if not self._listening():
            return self._answer(request, "not listening")
        if self._probe is None:
            return self._answer(request, None)
        gone = []
        request.notifyFinish().addErrback(gone.append)
        self._probe.check().addCallback(
            lambda why: gone or self._finish(request, self._answer(request, why))
        )
        return NOT_DONE_YET

    @staticmethod
    def _answer(request, why):
        request.setResponseCode(200 if why is None else 503)
        return b"ok\n" if why is None else f"unhealthy: {why}\n".encode()

    @staticmethod
    def _finish(request, body):
        request.write(body)
        request.finish()
