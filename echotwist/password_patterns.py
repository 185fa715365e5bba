# -*- test-case-name: tests.test_passwords -*-
"""
Trivial passwords: repeated characters, straight sequences and keyboard
runs.

NIST SP 800-63B (5.1.1.2) has verifiers refuse, besides common passwords,
"repetitive or sequential characters (e.g. 'aaaaaa', '1234abcd')". The
common-password list holds a few of these (C{11111111}, C{qwertyui}) but
not most (C{aaaaaaaa}, C{abcdefgh}, C{87654321}, C{абвгдежз}), so
L{trivial_pattern} looks for the patterns themselves. It judges the
password as a whole: one that merely contains a run
(C{robot-password-1234}) is not trivial.

It runs on the reactor thread, on passwords of up to 4,096 characters once
normalized, so it is linear in the length and does its work in C (C{set},
slice comparisons, substring search): some 20 microseconds for 1,024
characters, at most a fifth of a millisecond for 4,096.
"""

from echotwist.i18n import _

# Fewer different characters than this (among the 8 or more a password
# has) is repetition: aaaaaaaa, 00000000, abababab, abcabcabc.
MIN_DISTINCT = 4
# A piece shorter than the shortest password does not become a password by
# being repeated: hellohello.
MIN_UNIT = 8

# Sequences: the alphabets and the digits. The Russian alphabet both with ё
# in its place and without it (code-point order: абвгдежз).
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
)

# Keyboard rows, left to right, as lower() leaves them: US QWERTY and
# Russian ЙЦУКЕН, unshifted and shifted.
KEYBOARD_ROWS = (
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "qwertyuiop{}|",
    "asdfghjkl;'",
    'asdfghjkl:"',
    "zxcvbnm,./",
    "zxcvbnm<>?",
    "ё1234567890-=",
    '!"№;%:?*()_+',
    "йцукенгшщзхъ\\",
    "йцукенгшщзхъ/",
    "фывапролджэ",
    "ячсмитьбю.",
    "ячсмитьбю,",
)


def _both_ways(lines):
    return tuple(lines) + tuple(line[::-1] for line in lines)


_SEQUENCES = _both_ways(SEQUENCES)
_KEYBOARD_ROWS = _both_ways(KEYBOARD_ROWS)
# A longer piece can be neither a sequence, nor a run, nor too short.
_LONGEST_UNIT = max(MIN_UNIT - 1, *map(len, _SEQUENCES + _KEYBOARD_ROWS))


def repeated_unit(folded):
    """
    The shortest piece of up to C{_LONGEST_UNIT} characters that, repeated
    at least twice (the last copy maybe cut short), spells C{folded}:
    C{"qwer"} for C{"qwerqwerqw"}. Else C{folded} itself.
    """
    for length in range(1, min(_LONGEST_UNIT, len(folded) // 2) + 1):
        if folded[length:] == folded[:-length]:
            return folded[:length]
    return folded


def _along(piece, lines):
    return any(piece in line for line in lines)


def trivial_pattern(folded):
    """
    Why the password C{folded} (NFKC-normalized, lower-cased) is trivial.

    It is when it has fewer than L{MIN_DISTINCT} (4) different characters;
    or when it is, or repeats, a straight sequence of letters or digits,
    forwards or backwards (C{abcdefgh}, C{87654321}, C{абвгдежз},
    C{abcdabcd}); or a run along one keyboard row, US QWERTY or Russian
    ЙЦУКЕН, forwards or backwards (C{qwertyui}, C{1234567890-},
    C{фывапрол}, C{lkjhgfds}, C{qwerqwer}); or when it repeats a piece of
    fewer than L{MIN_UNIT} (8) characters (C{hellohello}). Repeating means
    two or more copies, the last one maybe cut short.

    @return: a reason for a person, or L{None}.
    """
    if len(set(folded)) < MIN_DISTINCT:
        return _(
            "a password needs at least {min} different characters; choose another"
        ).format(min=MIN_DISTINCT)
    piece = repeated_unit(folded)
    if _along(piece, _SEQUENCES):
        return _("that password is a sequence (like abcd or 4321); choose another")
    if _along(piece, _KEYBOARD_ROWS):
        return _("that password is a keyboard run; choose another")
    if len(piece) < min(len(folded), MIN_UNIT):
        return _("that password repeats a short piece; choose another")
    return None
