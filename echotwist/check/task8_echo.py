# -*- test-case-name: tests.test_check -*-
"""
Lab task 8: many messages both ways, several replies to one. C{say} and
its C{echo}es (C{repeat}, C{n} and C{of}), replies in order, C{repeat}'s
limits, and the messages a ready session refuses (C{bad_state}).
"""

from echotwist.check.runner import check
from echotwist.check.steps import (
    expect_echoes,
    refused_when_ready,
    say_and_expect,
    stays_open,
)


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
    say_and_expect(context, "hello, echolab")


@check(
    "echo.empty-text",
    8,
    [3],
    "say with an empty text",
    "one echo with an empty text",
    "An empty string is a valid text: echo it like any other (do not treat "
    "an empty text as the end of the connection).",
)
def empty_text(context):
    say_and_expect(context, "")


@check(
    "echo.repeat",
    8,
    [2, 3],
    "repeat 4 gets four echoes",
    "four echoes, n 1 to 4, of 4, and no fifth",
    "For repeat N send N echo frames, numbered n = 1..N, each with of = N.",
)
def repeat(context):
    say_and_expect(context, "four times", 4)


@check(
    "echo.repeat-one",
    8,
    [2, 3],
    "repeat 1 is a plain echo",
    "one echo without n or of",
    "n and of are present exactly when repeat is over 1.",
)
def repeat_one(context):
    say_and_expect(context, "once", 1)


@check(
    "echo.repeat-100",
    8,
    [3, 6],
    "repeat 100, the most allowed",
    "a hundred echoes, n 1 to 100, of 100",
    "repeat may be anything from 1 to 100 inclusive.",
)
def repeat_100(context):
    say_and_expect(context, "a hundred", 100)


@check(
    "echo.repeat-out-of-range",
    8,
    [5, 6],
    "repeat outside 1..100 is a bad value",
    "error bad_value for repeat 0, 101 and -1; the connection stays open",
    "Check 1 <= repeat <= 100 and answer bad_value otherwise, without closing.",
)
def repeat_out_of_range(context):
    refused_when_ready(
        context,
        [{"type": "say", "text": "out of range", "repeat": r} for r in (0, 101, -1)],
        "bad_value",
    )


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
        refused_when_ready(context, [message], "bad_state")


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
