# -*- test-case-name: tests.test_passwords -*-
"""
Passwords: how they are hashed, and which new ones are refused.

Hashes are argon2id through passlib's L{CryptContext} (from the maintained
C{libpass} fork): a slow, memory-hard hash with a fresh random salt per
hash, stored in the PHC string format. A hash made under older parameters
is replaced at the owner's next login (C{verify_and_update}). Hashing takes
tens of milliseconds and tens of MiB, so it runs in a small pool of its own
threads, as many as there are cores: a flood of logins waits its turn
instead of stalling the reactor or exhausting memory.
"""

import ctypes
import os
import sys
import threading
import time
import unicodedata
from importlib import resources

from passlib.context import CryptContext
from passlib.utils import MAX_PASSWORD_SIZE
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from echotwist.messages import MAX_PASSWORD, MIN_PASSWORD

# OWASP's floor for argon2id (Password Storage Cheat Sheet): 19 MiB, t=2, p=1.
MIN_MEMORY_KIB = 19 * 1024
MIN_TIME_COST = 2
# The default costs about 45 ms per hash on the machines we measured.
DEFAULT_MEMORY_KIB = 32 * 1024
DEFAULT_TIME_COST = 2


def make_context(memory_kib=DEFAULT_MEMORY_KIB, time_cost=DEFAULT_TIME_COST):
    """
    The hashing policy: argon2id, parallelism 1, at least OWASP's minimum.

    @raise ValueError: for costs below that minimum.
    """
    if memory_kib < MIN_MEMORY_KIB or time_cost < MIN_TIME_COST:
        raise ValueError(
            f"argon2id needs at least {MIN_MEMORY_KIB} KiB and time cost "
            f"{MIN_TIME_COST} (OWASP)"
        )
    return _context(memory_kib, time_cost)


def _context(memory_kib, time_cost):
    return CryptContext(
        schemes=["argon2"],
        deprecated="auto",
        argon2__type="ID",
        argon2__memory_cost=memory_kib,
        argon2__rounds=time_cost,
        argon2__parallelism=1,
    )


# passlib refuses longer secrets; NFKC can make a password of 1,024
# characters (the contract's limit) many times longer ("\ufdfa" is 18).
MAX_NORMALIZED = MAX_PASSWORD_SIZE


def normalize(password):
    """
    NFKC, as NIST SP 800-63B advises, so the same password typed on two
    keyboards (composed or decomposed accents) is the same password.
    """
    return unicodedata.normalize("NFKC", password)


def common_passwords():
    """
    The common-password list, read once. Auth mode reads it as it starts:
    read on the first registration, it held the reactor up for 5-15 ms.
    """
    global _common
    if _common is None:
        text = resources.files("echotwist").joinpath("data/common-passwords.txt")
        _common = frozenset(
            line
            for line in text.read_text("utf-8").splitlines()
            if line and not line.startswith("#")
        )
    return _common


_common = None


def weakness(login, password):
    """
    Why C{password} may not become the password of C{login}.

    @return: a reason for a person, or L{None} when it is acceptable.
    """
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password may have at most {MAX_PASSWORD} characters"
    normalized = normalize(password)
    if len(normalized) > MAX_NORMALIZED:
        return "that password is too long once normalized (NFKC)"
    folded = normalized.lower()
    if folded == login.lower():
        return "the password must not be the login"
    if folded in common_passwords():
        return "that is one of the most common passwords; choose another"
    return None


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
    and an echo waited milliseconds now and then); else nice 19.

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
    kernel zeroes it: a third of a 32 MiB hash's time (41.8 -> 28.3 ms
    here, C{docs/performance.md}). Raising glibc's mmap and trim thresholds
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


class Hasher:
    """
    Hash and verify passwords on a pool of threads of their own, one per
    usable CPU, at idle priority unless told otherwise.

    @ivar starved_after: at idle priority, seconds a hash may wait for a
        CPU before the log says that logins are being held up.
    @ivar warn_every: seconds between two such warnings.
    """

    log = Logger()
    starved_after = 1.0
    warn_every = 600.0
    _warned_at = None

    def __init__(
        self, context, reactor, threads=None, memory_kib=None, priority="idle"
    ):
        """
        @param memory_kib: the hashes' memory cost, to keep allocated from
            one hash to the next (L{keep_hash_memory}); L{None}: do not.
        @param priority: C{"idle"}: hash only when the CPU has nothing else
            to do (L{_at_low_priority}); C{"normal"}: take a fair share of
            it, as any thread does.
        """
        if priority not in PRIORITIES:
            raise ValueError(f"hash priority {priority!r} is not one of {PRIORITIES}")
        self.context = context
        self._reactor = reactor
        self._memory_kib = memory_kib
        self.priority = priority
        size = threads or cpus_usable()
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name="echolab-hash")

    def start(self):
        if self._memory_kib:
            keep_hash_memory(self._memory_kib)
        self._pool.start()

    def stop(self):
        self._pool.stop()

    def hash(self, password):
        """
        @return: a L{Deferred} firing with the hash of C{password}.
        """
        return self._run(self.context.hash, normalize(password))

    def verify(self, password, hash):
        """
        Check C{password} against a stored C{hash}.

        @return: a L{Deferred} firing with (matches, replacement hash or
            L{None}); a replacement is given when C{hash} was made under
            older parameters and the password matches.
        """
        password = normalize(password)
        if len(password) > MAX_NORMALIZED:
            return defer.succeed((False, None))  # could never have been set
        return self._run(self.context.verify_and_update, password, hash)

    def _run(self, function, *args):
        if self.priority != "idle":
            return threads.deferToThreadPool(self._reactor, self._pool, function, *args)
        d = threads.deferToThreadPool(
            self._reactor, self._pool, _at_low_priority, function, *args
        )
        return d.addCallback(self._check_starved)

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
