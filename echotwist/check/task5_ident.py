# -*- test-case-name: tests.test_check -*-
"""
Lab task 5: identification by IP address (ident mode). A new address is
asked its name, stored and greeted; the same address is known on its next
connection; names are trimmed and bounded; the question is asked again
after every refusal.

Each check connects from an address of its own (L{Context.fresh_source}),
so each starts as a stranger to the server.
"""

import secrets

from echotwist.check.connection import Skip
from echotwist.check.runner import check
from echotwist.check.steps import refusal_check, stays_open

IDENT = ("ident",)


def _stranger(context):
    """
    A connection from a new address, its C{ask} for a name read.
    """
    connection = context.connect(context.fresh_source())
    connection.expect("ask", field="name", secret=False)
    return connection


@check(
    "ident.first-visit",
    5,
    [2, 4, 6],
    "a new address is asked its name",
    "ask name (secret: false); the answer, trimmed, greeted with known: false",
    "Look the client's IP address up; when it is unknown ask its name, "
    "strip() it, store it, then greet.",
    modes=IDENT,
)
def first_visit(context):
    connection = _stranger(context)
    name = f"Проверка 🙂 {secrets.token_hex(2)}"
    connection.send({"type": "answer", "field": "name", "value": f"  {name}  "})
    probe = connection.send_probe()
    connection.expect("greet", known=False, name=name)
    stays_open(context, connection, probe)


@check(
    "ident.reconnect",
    5,
    [2, 4],
    "the same address is known on its next connection",
    "after identifying and quitting, a new connection from the same address "
    "gets greet with known: true and the same name, and no ask",
    "Store name by address durably (a file or a database) before greeting, "
    "and look it up on every new connection.",
    modes=IDENT,
)
def reconnect(context):
    try:
        source = context.fresh_source()
    except Skip:
        source = None
    first = context.connect(source)
    greet = context.identify(first, f"check {secrets.token_hex(3)}")
    first.quit()
    again = context.connect(source)
    again.expect("greet", known=True, name=greet.get("name"))
    stays_open(context, again, again.send_probe())


def _refused_while_asked(id, title, message, code, hint, sections=(4, 5)):
    refusal_check(id, 5, sections, title, hint, _stranger, "name", message, code, IDENT)


def _refused_name(id, title, value, hint):
    answer = {"type": "answer", "field": "name", "value": value}
    _refused_while_asked(id, title, answer, "bad_value", hint, sections=(5, 6))


_refused_name(
    "ident.name-empty",
    "a name that is empty once trimmed",
    "   ",
    "strip() the name first; an empty one is a bad_value, and the question "
    "is asked again.",
)
_refused_name(
    "ident.name-too-long",
    "a name of 65 characters",
    "n" * 65,
    "A name has 1 to 64 code points (after strip()); count characters, not bytes.",
)
_refused_name(
    "ident.name-not-printable",
    "a name with a control character",
    "check\x07bell",
    "Every character of a name must be printable (str.isprintable()).",
)


@check(
    "ident.name-64",
    5,
    [6],
    "a name of 64 characters, Cyrillic included",
    "greet with known: false and the whole 64-character name",
    "The limit is 64 code points, not bytes: Cyrillic takes 2 bytes a "
    "character in UTF-8 and is still one character.",
    modes=IDENT,
)
def name_64(context):
    connection = _stranger(context)
    name = "Я" * 60 + secrets.token_hex(2)
    connection.send({"type": "answer", "field": "name", "value": name})
    probe = connection.send_probe()
    connection.expect("greet", known=False, name=name)
    stays_open(context, connection, probe)


_refused_while_asked(
    "ident.say-before-name",
    "say before the name is given",
    {"type": "say", "text": "too early"},
    "bad_state",
    "Until the client is identified, say is bad_state; then ask the "
    "pending question again.",
)
_refused_while_asked(
    "ident.answer-wrong-field",
    "an answer for a field that is not asked",
    {"type": "answer", "field": "login", "value": "someone"},
    "bad_state",
    "An answer must name the pending field; otherwise bad_state, and ask again.",
)
_refused_while_asked(
    "ident.token-bad-state",
    "token in ident mode",
    {"type": "token", "token": "not-a-token-at-all"},
    "bad_state",
    "token belongs to auth mode: in ident mode it is bad_state, and the "
    "pending question is asked again.",
)
_refused_while_asked(
    "ident.bad-message-while-asked",
    "a bad message while the name is asked",
    b"hello, world!",
    "bad_message",
    "After any error that leaves the connection open, send the pending ask "
    "again, so the client knows what is still expected.",
)
