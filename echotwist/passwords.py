# -*- test-case-name: tests.test_passwords -*-
"""
Passwords: how they are hashed, and which new ones are refused.

Hashes are argon2id through passlib's L{CryptContext} (from the maintained
C{libpass} fork): a slow, memory-hard hash with a fresh random salt per
hash, stored in the PHC string format. A hash made under older parameters
is replaced at the owner's next login (C{verify_and_update}). Where the
hashing runs is L{echotwist.hashing}'s business.
"""

import unicodedata
from importlib import resources

from passlib.context import CryptContext
from passlib.utils import MAX_PASSWORD_SIZE

from echotwist.messages import MAX_PASSWORD, MIN_PASSWORD
from echotwist.password_patterns import trivial_pattern
from echotwist.i18n import _

# OWASP's floor for argon2id (Password Storage Cheat Sheet): 19 MiB, t=2, p=1.
MIN_MEMORY_KIB = 19 * 1024
MIN_TIME_COST = 2
# The default: tens of milliseconds of a core per hash (docs/performance.md).
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
    read on the first registration, it would hold the reactor up for
    milliseconds.
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
    Why C{password} may not become the password of C{login}: too short or
    too long, the login itself, a common password, or a trivial one
    (L{echotwist.password_patterns.trivial_pattern}); all but the length
    judged after NFKC and in any case.

    @return: a reason for a person, or L{None} when it is acceptable.
    """
    if len(password) < MIN_PASSWORD:
        return _("a password needs at least {min} characters").format(min=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        return _("a password may have at most {max} characters").format(
            max=MAX_PASSWORD
        )
    normalized = normalize(password)
    if len(normalized) > MAX_NORMALIZED:
        return _("that password is too long once normalized (NFKC)")
    folded = normalized.lower()
    if folded == login.lower():
        return _("the password must not be the login")
    if folded in common_passwords():
        return _("that is one of the most common passwords; choose another")
    return trivial_pattern(folded)
