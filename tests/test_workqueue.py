"""
Tests for L{echotwist.workqueue}: work waits in a queue bounded in all and
per owner, runs a few at a time, and is dropped once its client is gone.
"""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from echotwist.throttle import RateLimited
from echotwist.workqueue import BoundedWork


class Executor:
    """
    Runs nothing by itself: each job's L{Deferred} waits until the test
    fires it.
    """

    def __init__(self):
        self.started = []  # (function name, Deferred)

    def __call__(self, function, *args):
        d = defer.Deferred()
        self.started.append((args, d))
        return d

    def finish(self, index=0, result="done"):
        args, d = self.started.pop(index)
        d.callback(result)


class BoundedWorkTests(SynchronousTestCase):
    def setUp(self):
        self.executor = Executor()
        self.work = BoundedWork(self.executor, slots=2, max_pending=5, max_per_owner=3)

    def submit(self, owner, n):
        return self.work.submit(owner, print, n)

    def test_slots(self):
        """
        Only C{slots} jobs run at once; the next starts as one finishes,
        oldest first, and each caller gets its own result.
        """
        results = [self.submit(f"a{i}", i) for i in range(4)]
        self.assertEqual([a for a, _ in self.executor.started], [(0,), (1,)])
        self.executor.finish(0, "zero")
        self.assertEqual(self.successResultOf(results[0]), "zero")
        self.assertEqual([a for a, _ in self.executor.started], [(1,), (2,)])
        self.assertEqual(len(self.work), 3)

    def test_bounded_in_all(self):
        """
        Past C{max_pending} jobs waiting or running, a job is refused at
        once with L{RateLimited}, not queued.
        """
        for i in range(5):
            self.submit(f"owner{i}", i)
        failure = self.failureResultOf(self.submit("late", 5), RateLimited)
        self.assertIn("too many passwords to check", str(failure.value))
        self.assertEqual(len(self.work), 5)

    def test_bounded_per_owner(self):
        """
        One owner has at most C{max_per_owner} jobs waiting or running;
        others are still served, and the owner may submit again once one
        of its own finishes.
        """
        for i in range(3):
            self.submit("noisy", i)
        self.failureResultOf(self.submit("noisy", 3), RateLimited)
        self.assertNoResult(self.submit("quiet", 4))
        self.executor.finish(0)
        self.assertNoResult(self.submit("noisy", 5))

    def test_cancelled_before_start_never_runs(self):
        """
        A job cancelled while it waits (its client hung up) is dropped: it
        never starts, and its places are free at once.
        """
        for i in range(2):
            self.submit("busy", i)
        waiting = self.submit("leaver", 2)
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(len(self.work), 2)
        self.executor.finish(0)
        self.executor.finish(0)
        self.assertEqual(self.executor.started, [])
        for i in range(3):
            self.assertNoResult(self.submit("leaver", i))

    def test_cancelled_while_running(self):
        """
        A running job cannot be stopped: its caller gets
        L{defer.CancelledError} at once, its result is dropped when it
        finishes, and its slot goes to the next job only then.
        """
        running = self.submit("a", 0)
        self.submit("b", 1)
        queued = self.submit("c", 2)
        running.cancel()
        self.failureResultOf(running, defer.CancelledError)
        self.assertNoResult(queued)
        self.executor.finish(0, "dropped")
        self.assertEqual([a for a, _ in self.executor.started], [(1,), (2,)])

    def test_failure_passed_on(self):
        """
        A job that fails fails its caller's L{Deferred}.
        """
        d = self.submit("a", 0)
        _, job = self.executor.started.pop()
        job.errback(ZeroDivisionError())
        self.failureResultOf(d, ZeroDivisionError)
        self.assertEqual(len(self.work), 0)

    def test_stop(self):
        """
        Stopping drops every waiting job and refuses new ones; running jobs
        finish.
        """
        running = [self.submit("a", i) for i in range(2)]
        waiting = [self.submit("b", i) for i in range(3)]
        self.work.stop()
        for d in waiting:
            self.failureResultOf(d, defer.CancelledError)
        self.failureResultOf(self.submit("c", 9), defer.CancelledError)
        self.executor.finish(0, "last")
        self.assertEqual(self.successResultOf(running[0]), "last")
        self.assertEqual(len(self.executor.started), 1)
