# -*- test-case-name: tests.test_tables -*-
"""
Bounded tables keyed by client, for the throttles and budgets: an attacker
who can try any number of keys must neither grow them without end nor make
them forget the keys that are holding him back.
"""

from collections import OrderedDict


class HeldTable:
    """
    A mapping of at most C{max_keys} entries in two tiers: entries that hold
    a key back (it is blocked, or has a check under way) and the rest. When
    the table is full, the least recently used of the rest goes first; held
    entries go only when nothing else is left, oldest first, and entries
    the caller says are in use never go.

    @ivar max_keys: the most entries kept.
    """

    def __init__(self, max_keys, holds, in_use=lambda entry: False):
        """
        @param holds: C{holds(entry)}: whether C{entry} holds its key back
            now (asked again whenever a held entry might be let go).
        @param in_use: C{in_use(entry)}: whether C{entry} must be kept
            whatever the pressure (a check under way will come back to it).
        """
        self.max_keys = max_keys
        self._holds = holds
        self._in_use = in_use
        self._free = OrderedDict()
        self._held = {}

    def __len__(self):
        return len(self._free) + len(self._held)

    def get(self, key):
        entry = self._held.get(key)
        if entry is None:
            entry = self._free.get(key)
        return entry

    def put(self, key, entry):
        """
        Add or update C{key}, filed by whether C{entry} holds it back now
        (and as the most recent of its tier).
        """
        self.pop(key)
        if self._holds(entry):
            self._held[key] = entry
        else:
            self._free[key] = entry
        while len(self) > self.max_keys and self._evict_one():
            pass

    def pop(self, key):
        if self._held.pop(key, None) is None:
            self._free.pop(key, None)

    def _evict_one(self):
        """
        Drop the least recent evictable entry; failing that, among the
        oldest held entries, one whose hold has lapsed, else the oldest not
        in use.

        @return: whether an entry was dropped.
        """
        if self._free:
            self._free.popitem(last=False)
            return True
        fallback = None
        for scanned, (key, entry) in enumerate(self._held.items()):
            if self._in_use(entry):
                continue
            if not self._holds(entry):
                fallback = key
                break
            if fallback is None:
                fallback = key
            if scanned >= _SCAN:
                break
        if fallback is None:
            return False  # every entry is in use: over the bound until one ends
        del self._held[fallback]
        return True


# Held entries looked at for a lapsed one before the oldest is dropped: the
# look stays short however many keys are held.
_SCAN = 64
