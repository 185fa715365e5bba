"""
Tests for L{echotwist.hashing}: hashes run off the reactor, on threads of
their own at the priority asked for.
"""

import os
import resource
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from echotwist import hashing, passwords
from echotwist.passwords import make_context


class KeepHashMemoryTests(SynchronousTestCase):
    def test_next_hash_reuses_the_memory(self):
        """
        Once L{hashing.keep_hash_memory} has raised glibc's thresholds, a
        hash reuses the memory the one before it freed, instead of having
        the kernel map and zero its 32 MiB again (8,192 page faults).
        """
        if not hashing.keep_hash_memory(passwords.DEFAULT_MEMORY_KIB):
            raise SkipTest("not glibc's malloc: there is nothing to keep")
        context = make_context()
        stored = context.hash("correct horse battery")  # (allocates, then frees)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.assertTrue(context.verify("correct horse battery", stored))
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        self.assertLess(faults, 1000)

    def test_huge_costs_left_alone(self):
        """
        A memory cost too large for mallopt's C int leaves glibc as it is.
        """
        self.assertFalse(hashing.keep_hash_memory(4 * 1024 * 1024))


class HasherTests(TestCase):
    def hash_on_pool(self, **priority):
        """
        Hash with a one-thread L{hashing.Hasher}.

        @return: a L{Deferred} firing with (the hash, and the hashing
            thread, its niceness and its scheduling policy).
        """
        hasher = _started_hasher(self, passwords._context(1024, 1), **priority)
        seen = []
        hasher.context = _Spy(hasher.context, seen)
        d = hasher.hash("correct horse battery", "10.0.0.1")
        return d.addCallback(lambda hashed: (hashed, *seen[0]))

    def test_off_reactor_low_priority(self):
        """
        Hashes are computed on a pool thread, not the reactor's, and (on
        Linux) at the lowest CPU priority, SCHED_IDLE, so serving connections
        comes first.
        """
        import threading

        def check(result):
            hashed, thread, niceness, policy = result
            self.assertIsNot(thread, threading.current_thread())
            if sys.platform.startswith("linux"):
                self.assertEqual(niceness, 19)
                self.assertEqual(policy, os.SCHED_IDLE)
            self.assertTrue(hashed.startswith("$argon2id$"))

        return self.hash_on_pool().addCallback(check)

    def test_normal_priority(self):
        """
        With priority C{"normal"}, hashes still run on a pool thread, but at
        the process's own priority: on a machine whose CPUs other processes
        keep busy, logins get their fair share instead of none.
        """
        import threading

        def check(result):
            hashed, thread, niceness, policy = result
            self.assertIsNot(thread, threading.current_thread())
            if sys.platform.startswith("linux"):
                self.assertEqual(niceness, os.getpriority(os.PRIO_PROCESS, 0))
                self.assertEqual(policy, os.sched_getscheduler(0))
                self.assertNotEqual(policy, os.SCHED_IDLE)
            self.assertTrue(hashed.startswith("$argon2id$"))

        return self.hash_on_pool(priority="normal").addCallback(check)

    def test_unknown_priority(self):
        """
        A priority other than idle or normal is refused at once.
        """
        e = self.assertRaises(
            ValueError,
            hashing.Hasher,
            passwords._context(1024, 1),
            None,
            priority="high",
        )
        self.assertIn("'high'", str(e))


class StarvedHashTests(TestCase):
    """
    At idle priority, a hash kept off the CPU for long is reported in the
    log, so that an operator whose logins are slow learns why.
    """

    def setUp(self):
        from twisted.logger import globalLogPublisher

        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def hasher(self, priority="idle", off_cpu=0.1):
        """
        A one-thread hasher whose hashes spend C{off_cpu} seconds off the
        CPU (asleep, as a starved thread would be).
        """
        hasher = _started_hasher(self, _Sleepy(off_cpu), priority=priority)
        hasher.starved_after = 0.05
        return hasher

    def warnings(self):
        return [e for e in self.events if "waited" in e.get("log_format", "")]

    def test_warned_once(self):
        """
        A hash that waited longer than C{starved_after} is one warning naming
        the way out; the next one within C{warn_every} is not.
        """
        hasher = self.hasher()
        d = hasher.hash("correct horse battery", "10.0.0.1")
        d.addCallback(lambda hashed: self.assertEqual(hashed, "$argon2id$slept"))
        d.addCallback(lambda _: hasher.hash("correct horse battery", "10.0.0.1"))

        def check(_):
            (warning,) = self.warnings()
            self.assertGreaterEqual(warning["seconds"], 0.05)
            self.assertIn("--hash-priority normal", warning["log_format"])

        return d.addCallback(check)

    def test_quick_hash_not_warned(self):
        """
        A hash that did not wait says nothing.
        """
        d = self.hasher(off_cpu=0).hash("correct horse battery", "10.0.0.1")
        return d.addCallback(lambda _: self.assertEqual(self.warnings(), []))

    def test_normal_priority_not_warned(self):
        """
        At normal priority hashing takes its share like any thread: nothing
        to warn about.
        """
        d = self.hasher(priority="normal").hash("correct horse battery", "10.0.0.1")
        return d.addCallback(lambda _: self.assertEqual(self.warnings(), []))


def _started_hasher(testcase, context, **priority):
    """
    A started one-thread L{hashing.Hasher} on the global reactor, stopped
    when C{testcase} ends.
    """
    from twisted.internet import reactor

    hasher = hashing.Hasher(context, reactor, threads=1, **priority)
    hasher.start()
    testcase.addCleanup(hasher.stop)
    return hasher


class _Sleepy:
    def __init__(self, seconds):
        self._seconds = seconds

    def hash(self, password):
        import time

        time.sleep(self._seconds)
        return "$argon2id$slept"


class _Spy:
    def __init__(self, context, seen):
        self._context = context
        self._seen = seen

    def hash(self, password):
        import threading

        thread_id = threading.get_native_id()
        policy = getattr(os, "sched_getscheduler", lambda _: None)(thread_id)
        self._seen.append(
            (
                threading.current_thread(),
                os.getpriority(os.PRIO_PROCESS, thread_id),
                policy,
            )
        )
        return self._context.hash(password)
