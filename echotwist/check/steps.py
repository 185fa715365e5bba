# -*- test-case-name: tests.test_check -*-
"""
Steps many checks share: a refusal that must leave the connection open
(with the pending question asked again, or a ready session still
working), and the echoes of one C{say}.

Each step sends the message under test and, right behind it, a probe
(a C{say}, or C{quit}): the contract answers a connection's messages in
order, so a reply missing or one too many shows as the probe's reply
arriving out of place, at once, instead of as a wait until the time
limit.
"""

from echotwist.check.connection import CheckFailed, describe
from echotwist.check.runner import check


def stays_open(context, connection, probe):
    """
    The probe (L{Connection.send_probe}) gets its echo next: the
    connection stayed open and owed nothing more. The session is then
    left for the next check.
    """
    connection.expect_probe(probe)
    context.keep(connection)


def refused_when_ready(context, messages, code):
    """
    On a ready session each of C{messages} (dicts, or payload bytes) gets
    C{error} C{code}, and the session goes on.
    """
    connection = context.ready()
    for message in messages:
        send(connection, message)
    probe = connection.send_probe()
    for _ in messages:
        connection.expect_error(code)
    stays_open(context, connection, probe)


def refused_while_asked(connection, message, code, field):
    """
    While C{field} is asked, C{message} gets C{error} C{code}, then the
    same C{ask} again; C{quit} then still gets C{bye}.
    """
    send(connection, message)
    connection.send_quit()
    connection.expect_asked_again(code, field)
    connection.expect_bye_and_close()


def refusal_check(
    id, task, sections, title, hint, opening, field, message, code, modes
):
    """
    Register a check: on the connection C{opening(context)} returns, with
    C{field} asked, C{message} is refused with C{code} and asked again.
    """

    @check(
        id,
        task,
        sections,
        title,
        f"error {code}, then ask {field} again; the connection stays open",
        hint,
        modes=modes,
    )
    def refused(context):
        refused_while_asked(opening(context), message, code, field)


def send(connection, message):
    """
    Send a message (a dict), or a payload as it is (bytes) in one frame.
    """
    if isinstance(message, bytes):
        connection.send_payload(message)
    else:
        connection.send(message)


def say_and_expect(context, text, count=None):
    """
    On a ready session, C{say} C{text} (with C{repeat} C{count} when
    given) gets its echoes, and the session goes on.
    """
    connection = context.ready()
    message = {"type": "say", "text": text}
    if count is not None:
        message["repeat"] = count
    connection.send(message)
    probe = connection.send_probe()
    expect_echoes(connection, text, count or 1)
    stays_open(context, connection, probe)


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
