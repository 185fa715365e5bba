# -*- test-case-name: tests.test_hashing -*-
"""
Where password hashes are computed: a small pool of threads of their own,
one per usable CPU, at idle CPU priority unless told otherwise. Hashing
takes tens of milliseconds and tens of MiB, so it never runs on the
reactor thread.
"""

import ctypes
import os
import sys
import threading
import time
from dataclasses import dataclass

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from echotwist.observer import NO_OBSERVER
from echotwist.optionspec import COUNT, choice, number, setting
from echotwist.passwords import (
    DEFAULT_MEMORY_KIB,
    DEFAULT_TIME_COST,
    MAX_NORMALIZED,
    MIN_MEMORY_KIB,
    MIN_TIME_COST,
    normalize,
)
from echotwist.workqueue import BoundedWork


def cpus_usable():
    """
    How many CPUs this process may run on (its affinity, where known).
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_thread = threading.local()


def _at_low_priority(function, *args):
    """
    Call C{function} on a thread running at the lowest CPU priority.
    Hashing is CPU-bound for tens of milliseconds; on a busy core it would
    otherwise take turns with the reactor thread and delay every
    connection's replies. Linux sets priorities per thread: C{SCHED_IDLE}
    where allowed, which any other thread preempts the moment it wakes
    (at nice 19 alone the scheduler may let the hash run on for its slice,
    and an echo then waits for it); else nice 19.

    The price: such a thread runs only when its CPU has nothing else to
    do. Another process keeping that CPU busy starves the logins, and the
    reactor then waits for the GIL whenever a starved thread holds it
    (C{--hash-priority normal} is for such machines).

    @return: (what C{function} returned, the seconds the call spent off
        the CPU): hashing is pure computation, so time it was not running
        is time it waited for a CPU.
    """
    if not getattr(_thread, "lowered", False):
        _thread.lowered = True
        if sys.platform.startswith("linux"):
            thread_id = threading.get_native_id()
            try:
                os.setpriority(os.PRIO_PROCESS, thread_id, 19)
                os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
            except OSError:
                pass
    started, cpu_started = time.monotonic(), time.thread_time()
    result = function(*args)
    off_cpu = (time.monotonic() - started) - (time.thread_time() - cpu_started)
    return result, off_cpu


# mallopt(3) parameters (glibc's malloc.h); it takes a C int.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


def keep_hash_memory(memory_kib):
    """
    Keep argon2's working memory allocated from one hash to the next.

    glibc gives a block this large its own C{mmap} and unmaps it when it is
    freed, so every hash page-faults its whole memory back in and the
    kernel zeroes it, a large share of the hash's time
    (C{docs/performance.md}). Raising glibc's mmap and trim thresholds
    above the block's size makes it come from, and stay in, the hashing
    thread's heap. The cost: each hashing thread keeps that memory once it
    has hashed. Elsewhere than glibc, or for costs over 1 GiB, this does
    nothing.

    @return: whether the thresholds were raised.
    """
    block = (memory_kib + 1024) * 1024  # (room for the allocator's headers)
    if 2 * block > _INT_MAX:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, block) and mallopt(_M_TRIM_THRESHOLD, 2 * block)
    )


PRIORITIES = ("idle", "normal")


@dataclass(frozen=True)
class HashSettings:
    """
    How passwords are hashed and how many hashes may wait. The queue's
    bounds let a class of 30 behind one NAT address log in at once and wait
    a few seconds at most, and refuse a flood at once rather than queue it
    for minutes.
    """

    memory_kib: int = setting(
        DEFAULT_MEMORY_KIB,
        "hash-memory",
        "argon2id memory cost, KiB (each hashing thread keeps this much).",
        number(int, MIN_MEMORY_KIB, 4 * 1024 * 1024),
    )
    time_cost: int = setting(
        DEFAULT_TIME_COST,
        "hash-time",
        "argon2id time cost (passes).",
        number(int, MIN_TIME_COST, 100),
    )
    threads: int = setting(
        0,
        "hash-threads",
        "Passwords hashed at once (0: one per CPU).",
        number(int, 0, 256),
    )
    priority: str = setting(
        "idle",
        "hash-priority",
        "CPU priority of hashing: idle (only when the CPU is otherwise free: "
        "best echo latency when the server has its CPUs to itself, but logins "
        "stall while other processes keep them busy) or normal (a fair share).",
        choice(*PRIORITIES),
    )
    max_pending: int = setting(
        256,
        "hash-queue",
        "Password hashes waiting or running, in all; more are refused (rate_limited).",
        COUNT,
    )
    max_pending_per_client: int = setting(
        48,
        "hash-queue-per-address",
        "Password hashes waiting or running for one address.",
        COUNT,
    )


class Hasher:
    """
    Hash and verify passwords on a pool of threads of their own, one per
    usable CPU, at idle priority unless told otherwise. Each hash is work
    for one client: it waits in a L{BoundedWork} queue, bounded in all and
    per client, and is dropped if its client goes before it starts.

    @ivar starved_after: at idle priority, seconds a hash may wait for a
        CPU before the log says that logins are being held up.
    @ivar warn_every: seconds between two such warnings.
    @ivar queue: the L{BoundedWork} of hashes waiting and running.
    @ivar observer: told how long each hash took on its thread
        (L{echotwist.observer.IServerObserver}).
    """

    log = Logger()
    observer = NO_OBSERVER
    starved_after = 1.0
    warn_every = 600.0
    _warned_at = None

    def __init__(
        self,
        context,
        reactor,
        threads=None,
        memory_kib=None,
        priority="idle",
        max_pending=HashSettings.max_pending,
        max_pending_per_client=HashSettings.max_pending_per_client,
    ):
        """
        @param memory_kib: the hashes' memory cost, to keep allocated from
            one hash to the next (L{keep_hash_memory}); L{None}: do not.
        @param priority: C{"idle"}: hash only when the CPU has nothing else
            to do (L{_at_low_priority}); C{"normal"}: take a fair share of
            it, as any thread does.
        @param max_pending: hashes waiting or running, in all.
        @param max_pending_per_client: hashes waiting or running for one
            client address.
        """
        if priority not in PRIORITIES:
            raise ValueError(f"hash priority {priority!r} is not one of {PRIORITIES}")
        self.context = context
        self._reactor = reactor
        self._memory_kib = memory_kib
        self.priority = priority
        size = threads or cpus_usable()
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name="echolab-hash")
        self.queue = BoundedWork(self._run, size, max_pending, max_pending_per_client)

    def start(self):
        if self._memory_kib:
            keep_hash_memory(self._memory_kib)
        self._pool.start()

    def stop(self):
        """
        Drop the hashes that wait, and wait only for those running: the
        clients that asked for them are gone when the server stops.
        """
        self.queue.stop()
        self._pool.stop()

    def hash(self, password, client):
        """
        @param client: who asked (its address key), for the queue's bound.
        @return: a L{Deferred} firing with the hash of C{password}, or
            failing with L{RateLimited} when too many hashes wait.
        """
        return self.queue.submit(client, self.context.hash, normalize(password))

    def verify(self, password, hash, client):
        """
        Check C{password} against a stored C{hash}.

        @param client: who asked (its address key), for the queue's bound.
        @return: a L{Deferred} firing with (matches, replacement hash or
            L{None}), or failing with L{RateLimited} when too many hashes
            wait; a replacement is given when C{hash} was made under older
            parameters and the password matches.
        """
        password = normalize(password)
        if len(password) > MAX_NORMALIZED:
            return defer.succeed((False, None))  # could never have been set
        return self.queue.submit(client, self.context.verify_and_update, password, hash)

    def _run(self, function, *args):
        """
        Run one hash on the pool (L{BoundedWork} calls this when a thread
        is free).
        """
        started = self._reactor.seconds()
        if self.priority != "idle":
            d = threads.deferToThreadPool(self._reactor, self._pool, function, *args)
        else:
            d = threads.deferToThreadPool(
                self._reactor, self._pool, _at_low_priority, function, *args
            )
            d.addCallback(self._check_starved)
        return d.addBoth(self._timed, started)

    def _timed(self, result, started):
        self.observer.hashed(self._reactor.seconds() - started)
        return result

    def _check_starved(self, result_and_off_cpu):
        """
        Say so in the log (now and then) when an idle-priority hash waited
        long for a CPU: the CPUs are busy with other work, and logins wait.
        """
        result, off_cpu = result_and_off_cpu
        if off_cpu >= self.starved_after:
            now = self._reactor.seconds()
            if self._warned_at is None or now - self._warned_at >= self.warn_every:
                self._warned_at = now
                self.log.warn(
                    "a password hash waited {seconds:.1f} s for a CPU: hashing runs "
                    "at idle priority and the CPUs were busy with other work, so "
                    "logins are slow; --hash-priority normal gives it a fair share",
                    seconds=off_cpu,
                )
        return result
