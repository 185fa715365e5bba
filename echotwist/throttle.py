# -*- test-case-name: tests.test_throttle -*-
"""
Throttling of failed logins: after some free consecutive failures, each
further failure blocks its key (a login, an address, or both) for a time
that doubles up to a cap, as OWASP and NIST SP 800-63B describe. Tables
are bounded, whatever the number of keys an attacker tries.
"""

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """
    Thresholds, each a server option. With these defaults honest use (a
    test suite included) does not trip them; the per-login limit is
    NIST SP 800-63B's ceiling of 100 consecutive failures. On one
    connection the third failed password attempt (and the fiftieth refused
    token) closes it first, whatever the throttle says.

    @ivar per_login_address: free consecutive failures of one login from
        one address.
    @ivar per_login: free consecutive failures of one login, all addresses.
    @ivar per_address: free consecutive password failures from one address.
    @ivar tokens_per_address: free consecutive refused tokens from one
        address (kept apart: token logins are not slowed by password
        failures).
    @ivar first_block: seconds of the first block; each later one doubles.
    @ivar max_block: the longest block, in seconds.
    @ivar max_keys: the most keys a table keeps (least recent go first).
    """

    per_login_address: int = 30
    per_login: int = 100
    per_address: int = 300
    tokens_per_address: int = 100
    first_block: float = 1.0
    max_block: float = 900.0
    max_keys: int = 65536


class Backoff:
    """
    Consecutive failures per key, and how long each key is blocked.
    """

    def __init__(self, clock, free, first_block, max_block, max_keys):
        self._clock = clock
        self.free = free
        self.first_block = first_block
        self.max_block = max_block
        self.max_keys = max_keys
        # key -> [consecutive failures, blocked until, last failure]
        self._entries = OrderedDict()

    def __len__(self):
        return len(self._entries)

    def blocked_for(self, key):
        """
        @return: seconds until C{key} may try again; 0 when it may now.
        """
        entry = self._entries.get(key)
        if entry is None:
            return 0
        now = self._clock.seconds()
        if now - entry[2] > self.max_block * 2:
            del self._entries[key]  # quiet for long enough: forgiven
            return 0
        return max(0.0, entry[1] - now)

    def failed(self, key):
        now = self._clock.seconds()
        entry = self._entries.get(key)
        if entry is None or now - entry[2] > self.max_block * 2:
            entry = self._entries[key] = [0, 0.0, now]
        self._entries.move_to_end(key)
        entry[0] += 1
        entry[2] = now
        over = entry[0] - self.free
        if over > 0:
            block = min(self.max_block, self.first_block * 2 ** min(over - 1, 32))
            entry[1] = now + block
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def succeeded(self, key):
        self._entries.pop(key, None)


class LoginThrottle:
    """
    The tables the auth mode consults before checking a password or token.
    """

    def __init__(self, clock, limits=Limits()):
        def table(free):
            return Backoff(
                clock, free, limits.first_block, limits.max_block, limits.max_keys
            )

        self._login_address = table(limits.per_login_address)
        self._login = table(limits.per_login)
        self._address = table(limits.per_address)
        self._token_address = table(limits.tokens_per_address)

    def password_wait(self, login, address):
        """
        @return: seconds before a password for C{login} from C{address} may
            be checked; 0 when it may be now.
        """
        login = login.lower()
        return max(
            self._login_address.blocked_for((login, address)),
            self._login.blocked_for(login),
            self._address.blocked_for(address),
        )

    def password_failed(self, login, address):
        login = login.lower()
        self._login_address.failed((login, address))
        self._login.failed(login)
        self._address.failed(address)

    def password_succeeded(self, login, address):
        """
        NIST SP 800-63B: after a success, that login's earlier failures from
        that address count no more. (Not the address's failures over other
        logins: an attacker with one account could otherwise reset them.)
        """
        self._login_address.succeeded((login.lower(), address))

    def token_wait(self, address):
        return self._token_address.blocked_for(address)

    def token_failed(self, address):
        self._token_address.failed(address)

    def token_succeeded(self, address):
        self._token_address.succeeded(address)
