# -*- test-case-name: tests.test_workqueue -*-
"""
A bounded queue of work that belongs to clients: password hashes, which
cost tens of milliseconds of CPU each.

Work a client asked for is its own: the queue holds a bounded number of
jobs in all and per client, refuses more at once instead of making the
client wait, and a job whose L{Deferred} is cancelled (its client hung up)
is dropped before it starts. Only C{slots} jobs run at a time, so the
executor under it (a thread pool) never queues anything of its own.
"""

from collections import Counter

from twisted.internet import defer
from twisted.python.failure import Failure

from echotwist.throttle import RateLimited


class _Job:
    __slots__ = ("owner", "function", "args", "deferred")

    def __init__(self, owner, function, args):
        self.owner = owner
        self.function = function
        self.args = args
        self.deferred = None


class BoundedWork:
    """
    Jobs waiting and running, at most C{max_pending} in all and
    C{max_per_owner} for one owner (a client address).

    @ivar running: how many jobs are running.
    """

    running = 0
    stopped = False

    def __init__(self, execute, slots, max_pending, max_per_owner):
        """
        @param execute: C{execute(function, *args)} runs a job and returns a
            L{Deferred} of its result (for example on a thread pool).
        @param slots: how many jobs may run at once.
        """
        self._execute = execute
        self.slots = slots
        self.max_pending = max_pending
        self.max_per_owner = max_per_owner
        self._waiting = {}  # job -> None, oldest first
        self._per_owner = Counter()

    def __len__(self):
        """
        Jobs waiting or running.
        """
        return len(self._waiting) + self.running

    def submit(self, owner, function, *args):
        """
        Run C{function(*args)} when a slot is free.

        @return: a L{Deferred} of its result. Cancelling it drops the job if
            it has not started; a job already running finishes, and its
            result is dropped.
        @raise RateLimited: the queue is full, in all or for C{owner}.
        """
        if self.stopped:
            return defer.fail(defer.CancelledError("the server is stopping"))
        if len(self) >= self.max_pending:
            return defer.fail(
                RateLimited(1, "the server has too many passwords to check")
            )
        if self._per_owner[owner] >= self.max_per_owner:
            return defer.fail(
                RateLimited(
                    1, "too many passwords from your address wait to be checked"
                )
            )
        job = _Job(owner, function, args)
        job.deferred = defer.Deferred(lambda _: self._drop(job))
        self._per_owner[owner] += 1
        self._waiting[job] = None
        self._dispatch()
        return job.deferred

    def stop(self):
        """
        Refuse new jobs and drop every waiting one (their L{Deferred}s fail
        with L{defer.CancelledError}); running jobs finish.
        """
        self.stopped = True
        while self._waiting:
            job = next(iter(self._waiting))
            job.deferred.cancel()

    def _drop(self, job):
        if self._waiting.pop(job, False) is None:  # it was waiting
            self._release(job.owner)

    def _release(self, owner):
        self._per_owner[owner] -= 1
        if self._per_owner[owner] <= 0:
            del self._per_owner[owner]

    def _dispatch(self):
        while self._waiting and self.running < self.slots:
            job = next(iter(self._waiting))
            del self._waiting[job]
            self.running += 1
            self._execute(job.function, *job.args).addBoth(self._finished, job)

    def _finished(self, result, job):
        self.running -= 1
        self._release(job.owner)
        self._dispatch()
        if not job.deferred.called:  # (else it was cancelled while it ran)
            if isinstance(result, Failure):
                job.deferred.errback(result)
            else:
                job.deferred.callback(result)
