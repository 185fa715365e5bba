# -*- test-case-name: tests.test_check -*-
"""
Lab task 1: the server accepts every connection with a C{welcome}, keeps
listening after a client leaves, serves several clients at once, says
C{bye} before it closes, and cuts a silent client (when its time-out is
short enough to watch).
"""

import time

from echotwist.check.connection import CheckFailed, Skip, describe
from echotwist.check.runner import check
from echotwist.messages import MODES


@check(
    "welcome",
    1,
    [2, 4],
    "welcome comes first, at once",
    'a welcome as the first frame: server "echolab", version (a string), '
    "mode (echo, ident or auth; the one given by --mode), max_message "
    "(a positive integer)",
    "Send the welcome as soon as a connection is accepted, framed like "
    "every other message (4-byte big-endian length, then the JSON).",
)
def welcome(context):
    connection = context.connect()
    message = connection.welcome
    problems = []
    if message.get("server") != "echolab":
        problems.append('server: "echolab"')
    if not isinstance(message.get("version"), str):
        problems.append("version: a string")
    mode = message.get("mode")
    if mode not in MODES:
        problems.append("mode: echo, ident or auth")
    elif context.mode and mode != context.mode:
        problems.append(f'mode: "{context.mode}" (as --mode says)')
    limit = message.get("max_message")
    if type(limit) is not int or limit < 1:
        problems.append("max_message: a positive integer")
    if problems:
        raise CheckFailed("welcome with " + ", ".join(problems), describe(message))
    context.mode = mode
    context.max_message = limit


def _first_question(context, connection):
    """
    Read what follows the welcome in ident and auth mode (an ask, or a
    greet for a known address).
    """
    if context.mode != "echo":
        connection.receive("the first ask (or greet)")


@check(
    "quit.bye",
    1,
    [3],
    "quit gets bye, then the connection closes",
    "quit answered by bye, then the server closes the connection",
    "On quit, send bye and then close the connection (the server itself "
    "keeps listening).",
)
def quit_bye(context):
    context.ready().quit()


@check(
    "session.reconnect",
    1,
    [4],
    "the server keeps listening after clients leave",
    "three connections in a row, each after the previous one quit, each "
    "welcomed and each answered bye on quit",
    "After a client disconnects, go back to accept(): the listening socket "
    "stays open for the next client.",
)
def reconnect(context):
    for _ in range(3):
        connection = context.connect()
        _first_question(context, connection)
        connection.quit()


@check(
    "session.concurrent",
    1,
    [4],
    "two clients at once, each independent",
    "a second connection welcomed while the first is open and idle; the "
    "first still answered after the second quit",
    "Serve each client on its own (a thread, a task or Twisted's protocol "
    "per connection), not one client after another.",
)
def concurrent(context):
    first = context.connect()
    _first_question(context, first)
    second = context.connect()
    _first_question(context, second)
    second.quit()
    first.quit()


@check(
    "timeout.silent-client",
    1,
    [5],
    "a silent client is cut after the server's time-out",
    "error timeout, then bye, then a close, within the server's login/idle "
    "time-out (--server-timeout) plus 3 s",
    "Give every connection a deadline (login and idle): when it passes, "
    "send error timeout and bye, then close.",
    limit=60.0,
)
def silent_client(context):
    timeout = context.server_timeout
    if timeout is None:
        raise Skip(
            "the contract's time-outs are 60 s or more, too long to watch; "
            "start the server with short ones and give --server-timeout"
        )
    needed = timeout + 3.0
    if context.time_left() < needed:
        raise Skip(f"needs {needed:g} s, more than the run's budget has left")
    connection = context.connect()
    _first_question(context, connection)
    connection.sock.deadline = time.monotonic() + needed
    connection.transcript.sent.append(f"(nothing, for up to {needed:g} s)")
    connection.expect_error("timeout")
    connection.expect_bye_and_close()
