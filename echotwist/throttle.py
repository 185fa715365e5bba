# -*- test-case-name: tests.test_throttle -*-
"""
Throttling of login attempts, as OWASP and NIST SP 800-63B describe: after
some free consecutive failures, each further failure blocks its key (a
login, an address, or both) for a time that doubles up to a cap.

Every attempt is counted before it is checked. A password check under way
counts against its keys as a failure would until its verdict is in, so
opening more connections buys no extra guesses: once the free attempts are
used up or under way, the next one waits. A login has at most one password
check under way at a time, server-wide.

Tables are bounded however many keys an attacker tries, and never let a
blocked key go ahead of one that is not (L{echotwist.tables}).
"""

import math
from dataclasses import dataclass

from echotwist.addresses import network_key
from echotwist.optionspec import COUNT, SECONDS, number, setting
from echotwist.tables import HeldTable


class RateLimited(Exception):
    """
    Too many attempts lately; this one was not even checked.

    @ivar wait: seconds until an attempt may be checked again.
    """

    def __init__(self, wait, why="too many failed attempts"):
        super().__init__(f"{why}; try again in {math.ceil(wait)} s")
        self.wait = wait


@dataclass(frozen=True)
class Limits:
    """
    Thresholds, each a server option. With these defaults honest use (a
    class behind one NAT address included) does not trip them; the
    per-login limit is NIST SP 800-63B's ceiling of 100 consecutive
    failures. On one connection the third failed password attempt (and the
    fiftieth refused token) closes it first, whatever the throttle says.

    @ivar per_login_address: free consecutive failures of one login from
        one address.
    @ivar per_login: free consecutive failures of one login, all addresses.
    @ivar per_address: free consecutive password failures from one address.
    @ivar tokens_per_address: free consecutive refused tokens from one
        address (kept apart: token logins are not slowed by password
        failures).
    @ivar first_block: seconds of the first block; each later one doubles.
    @ivar max_block: the longest block, in seconds.
    @ivar max_keys: the most keys a table keeps.
    @ivar registrations: registrations one address may start per
        C{registrations_window} seconds.
    @ivar lookups: logins one address may ask about (answers to the
        C{login} question) per C{lookups_window} seconds.
    @ivar ipv6_prefix: IPv6 clients are counted by network of this prefix
        length: one subscriber is given a whole /64.
    """

    per_login_address: int = setting(
        30,
        "throttle-login-address",
        "Free failed logins of one login from one address.",
        COUNT,
    )
    per_login: int = setting(
        100,
        "throttle-login",
        "Free failed logins of one login from all addresses.",
        COUNT,
    )
    per_address: int = setting(
        300, "throttle-address", "Free failed password logins from one address.", COUNT
    )
    tokens_per_address: int = setting(
        100, "throttle-tokens", "Free refused tokens from one address.", COUNT
    )
    first_block: float = 1.0
    max_block: float = setting(
        900.0,
        "throttle-max-block",
        "Longest block after failed logins, seconds.",
        SECONDS,
    )
    max_keys: int = 65536
    registrations: int = setting(
        60,
        "budget-registrations",
        "Registrations one address may start per 10 minutes.",
        COUNT,
    )
    registrations_window: float = 600.0
    lookups: int = setting(
        300, "budget-lookups", "Logins one address may ask about per minute.", COUNT
    )
    lookups_window: float = 60.0
    ipv6_prefix: int = setting(
        64,
        "ipv6-prefix",
        "Throttles and budgets count an IPv6 client by its network of this many bits.",
        number(int, 32, 128),
    )


class _Record:
    __slots__ = ("failures", "checking", "until", "last")

    def __init__(self, now):
        self.failures = 0
        self.checking = 0  # attempts under way, counted as failures until done
        self.until = 0.0  # blocked until then
        self.last = now


class Backoff:
    """
    Consecutive failures per key, the attempts under way, and how long each
    key is blocked.
    """

    def __init__(self, clock, free, first_block, max_block, max_keys):
        self._clock = clock
        self.free = free
        self.first_block = first_block
        self.max_block = max_block
        self._records = HeldTable(
            max_keys,
            holds=lambda r: r.checking or r.until > clock.seconds(),
            in_use=lambda r: r.checking,
        )

    def __len__(self):
        return len(self._records)

    def _record(self, key):
        """
        The record of C{key}, or L{None}; one quiet for twice the longest
        block is forgiven.
        """
        record = self._records.get(key)
        if record is not None and not record.checking:
            if self._clock.seconds() - record.last > self.max_block * 2:
                self._records.pop(key)
                return None
        return record

    def wait(self, key):
        """
        @return: seconds before an attempt for C{key} may be checked; 0 when
            it may be now.
        """
        record = self._record(key)
        if record is None:
            return 0
        blocked = record.until - self._clock.seconds()
        if blocked > 0:
            return blocked
        if record.checking and record.failures + record.checking >= self.free:
            # Past the free attempts, one at a time: its verdict decides.
            return self.first_block
        return 0

    def checking(self, key):
        """@return: how many attempts for C{key} are under way."""
        record = self._record(key)
        return 0 if record is None else record.checking

    def started(self, key):
        """
        An attempt for C{key} is about to be checked: count it now.
        """
        now = self._clock.seconds()
        record = self._record(key) or _Record(now)
        record.checking += 1
        record.last = now
        self._records.put(key, record)

    def finished(self, key, failed):
        """
        The verdict on an attempt L{started} for C{key}.
        """
        now = self._clock.seconds()
        record = self._records.get(key) or _Record(now)
        record.checking = max(0, record.checking - 1)
        if failed:
            record.failures += 1
            record.last = now
            record.until = max(record.until, self._blocked_until(record.failures, now))
        self._records.put(key, record)

    def _blocked_until(self, failures, last):
        over = failures - self.free
        block = self.first_block * 2 ** min(over - 1, 32) if over > 0 else 0
        return last + min(self.max_block, block) if block else 0.0

    def raise_to(self, key, failures, last):
        """
        Count at least C{failures} for C{key}, the last one at C{last}: what
        other processes counted (L{echotwist.shared_throttle}).
        """
        record = self._record(key)
        if record is not None and record.failures >= failures:
            return
        record = record or _Record(last)
        record.failures, record.last = failures, max(record.last, last)
        record.until = max(record.until, self._blocked_until(failures, last))
        self._records.put(key, record)

    def failed(self, key):
        """A failure that was not L{started} (checked at once)."""
        self.started(key)
        self.finished(key, failed=True)

    def forgive(self, key):
        """Clear C{key}'s failures (attempts under way still count)."""
        record = self._records.get(key)
        if record is None:
            return
        if record.checking:
            record.failures = 0
            record.until = 0.0
            self._records.put(key, record)
        else:
            self._records.pop(key)


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens, stamp):
        self.tokens = tokens
        self.stamp = stamp


class Budget:
    """
    At most C{size} attempts per C{window} seconds for each key, as a token
    bucket: a burst of C{size} at once, then one more every C{window /
    size} seconds.
    """

    def __init__(self, clock, size, window, max_keys):
        self._clock = clock
        self.size = size
        self._rate = size / window
        self._buckets = HeldTable(max_keys, holds=lambda b: self._level(b) < 1)

    def __len__(self):
        return len(self._buckets)

    def _level(self, bucket):
        elapsed = self._clock.seconds() - bucket.stamp
        return min(self.size, bucket.tokens + elapsed * self._rate)

    def take(self, key):
        """
        Spend one attempt of C{key}'s budget, if there is one.

        @return: 0 when it was spent; else the seconds until there is one.
        """
        bucket = self._buckets.get(key)
        level = self.size if bucket is None else self._level(bucket)
        if level < 1:
            return (1 - level) / self._rate
        self._buckets.put(key, _Bucket(level - 1, self._clock.seconds()))
        return 0


class LoginThrottle:
    """
    The tables auth mode consults before it checks a password or a token,
    and the budgets of registrations and login look-ups. Addresses are
    counted by L{key}.
    """

    backoff_type = Backoff

    def __init__(self, clock, limits=Limits()):
        def backoff(free):
            return self.backoff_type(
                clock, free, limits.first_block, limits.max_block, limits.max_keys
            )

        def budget(size, window):
            return Budget(clock, size, window, limits.max_keys)

        self.first_block = limits.first_block
        self._ipv6_prefix = limits.ipv6_prefix
        self._login_address = backoff(limits.per_login_address)
        self._login = backoff(limits.per_login)
        self._address = backoff(limits.per_address)
        self._token_address = backoff(limits.tokens_per_address)
        self._registrations = budget(limits.registrations, limits.registrations_window)
        self._lookups = budget(limits.lookups, limits.lookups_window)

    def key(self, address):
        """
        What C{address} is counted as (its network, for IPv6).
        """
        return network_key(address, self._ipv6_prefix)

    def _password_keys(self, login, address):
        login, address = login.lower(), self.key(address)
        return (
            (self._login_address, (login, address)),
            (self._login, login),
            (self._address, address),
        )

    def refresh(self, login, address):
        """
        @return: L{None}: one process has no others' counts to take in
            before an attempt (L{echotwist.shared_throttle} has).
        """
        return None

    def settled(self):
        """@return: L{None}: no count to share before a verdict goes out."""
        return None

    def start_password(self, login, address):
        """
        Count a password attempt for C{login} from C{address}, which is
        about to be checked; L{finish_password} gives the verdict.

        @raise RateLimited: it may not be checked now (and was not counted).
        """
        if self._login.checking(login.lower()):
            raise RateLimited(
                self.first_block, "another password check for this login is under way"
            )
        wait = self.password_wait(login, address)
        if wait:
            raise RateLimited(wait)
        for table, key in self._password_keys(login, address):
            table.started(key)

    def finish_password(self, login, address, matched):
        """
        The verdict on an attempt L{start_password} counted. After a
        success, that login's failures from that address count no more
        (NIST SP 800-63B); the address's failures over other logins do: an
        attacker with one account could otherwise reset them.

        @param matched: whether the password was right; L{None} when it
            was not checked after all (the client left, or hashing was
            refused).
        """
        keys = self._password_keys(login, address)
        for table, key in keys:
            table.finished(key, failed=matched is False)
        if matched:
            table, key = keys[0]
            table.forgive(key)

    def password_wait(self, login, address):
        """
        @return: seconds before a password for C{login} from C{address} may
            be checked; 0 when it may be now.
        """
        return max(
            table.wait(key) for table, key in self._password_keys(login, address)
        )

    def start_token(self, address, refused_before):
        """
        A token from C{address} is about to be checked.

        @param refused_before: whether its connection had a token refused.
        @raise RateLimited: C{address} refused too many tokens lately and
            this connection is one that failed.
        """
        if refused_before:
            wait = self._token_address.wait(self.key(address))
            if wait:
                raise RateLimited(wait, "too many refused tokens")

    def token_refused(self, address):
        self._token_address.failed(self.key(address))

    def start_registration(self, address):
        """
        @raise RateLimited: C{address} used up its registrations for now.
        """
        wait = self._registrations.take(self.key(address))
        if wait:
            raise RateLimited(wait, "too many registrations from your address")

    def start_lookup(self, address):
        """
        @raise RateLimited: C{address} asked about too many logins lately.
        """
        wait = self._lookups.take(self.key(address))
        if wait:
            raise RateLimited(wait, "too many logins asked about from your address")
