# -*- test-case-name: tests.test_check -*-
"""
Lab task 8: many messages both ways, several replies to one. C{say} and
its C{echo}es (C{repeat}, C{n} and C{of}), replies in order, C{repeat}'s
limits, and the messages a ready session refuses (C{bad_state}).
"""

from echotwist.check.connection import CheckFailed, describe
from echotwist.check.runner import check
from echotwist.check.task7_framing import stays_open


def expect_echoes(connection, text, count):
    """
    The C{count} echoes of one say: C{n} and C{of} exactly when
    C{count} > 1.
    """
    for n in range(1, count + 1):
        message, _ = connection.receive(f"echo {n} of {count}")
        if count == 1:
            wanted = {"type": "echo", "text": text}
        else:
            wanted = {"type": "echo", "text": text, "n": n, "of": count}
        shown = {k: message.get(k) for k in ("type", "text", "n", "of") if k in message}
        if shown != wanted:
            raise CheckFailed(describe(wanted), describe(message))


@check(
    "echo.say",
    8,
    [2, 3],
    "say gets one echo",
    "one echo with the same text and no n or of",
    'Answer say with {"type": "echo", "text": ...}; add n and of only '
    "when repeat is over 1.",
)
def say(context):
    connection = context.ready()
    connection.send({"type": "say", "text": "hello, echolab"})
    probe = connection.send_probe()
    expect_echoes(connection, "hello, echolab", 1)
    stays_open(context, connection, probe)


@check(
    "echo.repeat",
    8,
    [2, 3],
    "repeat 4 gets four echoes",
    "four echoes, n 1 to 4, of 4, and no fifth",
    "For repeat N send N echo frames, numbered n = 1..N, each with of = N.",
)
def repeat(context):
    connection = context.ready()
    connection.send({"type": "say", "text": "four times", "repeat": 4})
    probe = connection.send_probe()
    expect_echoes(connection, "four times", 4)
    stays_open(context, connection, probe)


@check(
    "echo.repeat-one",
    8,
    [2, 3],
    "repeat 1 is a plain echo",
    "one echo without n or of",
    "n and of are present exactly when repeat is over 1.",
)
def repeat_one(context):
    connection = context.ready()
    connection.send({"type": "say", "text": "once", "repeat": 1})
    probe = connection.send_probe()
    expect_echoes(connection, "once", 1)
    stays_open(context, connection, probe)


@check(
    "echo.repeat-100",
    8,
    [3, 6],
    "repeat 100, the most allowed",
    "a hundred echoes, n 1 to 100, of 100",
    "repeat may be anything from 1 to 100 inclusive.",
)
def repeat_100(context):
    connection = context.ready()
    connection.send({"type": "say", "text": "a hundred", "repeat": 100})
    probe = connection.send_probe()
    expect_echoes(connection, "a hundred", 100)
    stays_open(context, connection, probe)


@check(
    "echo.repeat-out-of-range",
    8,
    [5, 6],
    "repeat outside 1..100 is a bad value",
    "error bad_value for repeat 0, 101 and -1; the connection stays open",
    "Check 1 <= repeat <= 100 and answer bad_value otherwise, without closing.",
)
def repeat_out_of_range(context):
    connection = context.ready()
    for value in (0, 101, -1):
        connection.send({"type": "say", "text": "out of range", "repeat": value})
    probe = connection.send_probe()
    for _ in range(3):
        connection.expect_error("bad_value")
    stays_open(context, connection, probe)


@check(
    "echo.pipelined",
    8,
    [4],
    "replies in the order of the messages",
    "for says a (repeat 2), b, c (repeat 3) sent back to back: a 1/2, "
    "a 2/2, b, c 1/3, c 2/3, c 3/3",
    "Handle one connection's messages one at a time, in order, and send all "
    "replies to one before the next.",
)
def pipelined(context):
    connection = context.ready()
    for text, count in (("a", 2), ("b", 1), ("c", 3)):
        connection.send({"type": "say", "text": text, "repeat": count})
    probe = connection.send_probe()
    for text, count in (("a", 2), ("b", 1), ("c", 3)):
        expect_echoes(connection, text, count)
    stays_open(context, connection, probe)


def _refused_when_ready(id, title, message, hint, modes=("echo", "ident", "auth")):
    @check(
        id,
        8,
        [4, 5],
        title,
        "error bad_state; the connection stays open",
        hint,
        modes=modes,
    )
    def refused(context):
        connection = context.ready()
        connection.send(message)
        probe = connection.send_probe()
        connection.expect_error("bad_state")
        stays_open(context, connection, probe)


_refused_when_ready(
    "state.answer-when-ready",
    "an answer when no question is pending",
    {"type": "answer", "field": "name", "value": "nobody asked"},
    "An answer is only valid for the pending ask; with none pending, answer bad_state.",
)
_refused_when_ready(
    "state.token-when-ready",
    "a token outside auth mode or after authentication",
    {"type": "token", "token": "not-a-token-at-all"},
    "token is only for auth mode before authentication; otherwise answer bad_state.",
)
_refused_when_ready(
    "state.logout-outside-auth",
    "logout outside auth mode",
    {"type": "logout"},
    "logout exists only in auth mode; in echo and ident mode answer bad_state.",
    modes=("echo", "ident"),
)
