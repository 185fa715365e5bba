# -*- test-case-name: tests.test_explain -*-
"""
Protocol mistakes said for a person: what a frame that is refused did
wrong, and what the server expects instead.

Students meet the protocol through its errors. "Expected `str`, got `int`
- at `$.text`" or a frame length of 1,751,477,356 says what went wrong to
the decoder, not to them. These functions run only when a message is
refused (or when tracing), never for a message that is fine.
"""

import json

import msgspec

from echotwist import messages as m
from echotwist.wire import HEADER

CLIENT_TYPES = (m.Answer, m.Token, m.Say, m.Logout, m.Quit)
# Larger payloads (--max-message allows 64 MiB) keep the decoder's reason:
# parsing them a second time would let a client double their cost.
EXPLAINED_UP_TO = 65536
_JSON_KIND = {
    str: "a string",
    int: "an integer (written without fraction or exponent)",
    bool: "true or false",
}


def headerless(length):
    """
    If the 4 bytes read as C{length} are printable text, the sentence
    saying the header was probably forgotten; else L{None}.
    """
    head = HEADER.pack(length)
    if not (head.isascii() and head.decode("ascii").isprintable()):
        return None
    shown = head.decode("ascii")
    return (
        f"the first 4 bytes {shown!r} read as a length of {length:,}: "
        "did you forget the 4-byte header?"
    )


def too_large(length, limit):
    """
    The text of C{too_large} for a frame whose header says C{length}.
    """
    text = f"a message may have at most {limit} bytes"
    hint = headerless(length)
    return f"{text}; {hint}" if hint else f"{text}, not {length:,}"


def _kind_of(value):
    """What a decoded JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "NaN or Infinity, which JSON does not have"
        return f"the number {value!r}"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _syntax(error):
    """
    Where the JSON breaks. (Not the text around it: it may hold a password,
    and error texts are traced.)
    """
    where = f"character {error.pos + 1}"
    if error.lineno > 1:
        where = f"line {error.lineno} column {error.colno} ({where})"
    return f"JSON syntax error at {where}: {error.msg}"


def bad_payload(payload, fallback):
    """
    Why C{payload} is not a well-formed client message, for a person.

    @param fallback: the decoder's own reason, said when none of the
        explanations here applies.
    @rtype: L{str}
    """
    if len(payload) > EXPLAINED_UP_TO:
        return fallback
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text: byte {e.start + 1} is 0x{payload[e.start]:02x}"
    try:
        message = json.loads(text)
    except json.JSONDecodeError as e:
        return _syntax(e)
    except (RecursionError, ValueError):  # too deep; an integer too long
        return fallback
    if not isinstance(message, dict):
        return f"{_kind_of(message)} where a JSON object is expected"
    kind = message.get("type")
    if "type" not in message:
        return "no member 'type': every message needs one, a string"
    if not isinstance(kind, str):
        return f"the member 'type' must be a string, not {_kind_of(kind)}"
    for cls in CLIENT_TYPES:
        if cls.__struct_config__.tag == kind:
            return _members(cls, kind, message) or fallback
    names = ", ".join(c.__struct_config__.tag for c in CLIENT_TYPES)
    return f"unknown type {kind!r}: a client sends {names}"


def _members(cls, kind, message):
    a = "an" if kind[:1] in "aeiou" else "a"
    for field in msgspec.structs.fields(cls):
        wanted = _JSON_KIND[field.type]
        if field.name not in message:
            if field.default is msgspec.NODEFAULT:
                return (
                    f"{a} {kind!r} message needs the member {field.name!r} ({wanted})"
                )
            continue
        value = message[field.name]
        if type(value) is not field.type:
            got = _kind_of(value)
            return (
                f"in {a} {kind!r} message, {field.name!r} must be {wanted}, not {got}"
            )
    return None


def expected(session):
    """
    What C{session} (an L{echotwist.session.Session}) accepts now, for a
    person: said after a C{bad_state}.
    """
    auth = session.mode == "auth"
    if session.ready:
        return "say or quit" + (", or logout" if auth else "")
    if session.pending is not None:
        answer = f"an answer with field {session.pending!r}"
        return answer + (", or a token" if auth else "") + ", or quit"
    return "nothing: the server is still working on the last message"
