# -*- test-case-name: tests.test_messages -*-
"""
The messages of the echolab contract: what a client may send (decoded and
type-checked here, so a session only ever sees well-formed messages), what
the server sends, the error codes, and the limits on names, logins and
passwords.
"""

import re
from typing import Union

import msgspec

from echotwist.i18n import N_, _

# Error codes (contract section 5).
BAD_MESSAGE = "bad_message"
BAD_STATE = "bad_state"
BAD_VALUE = "bad_value"
BAD_TOKEN = "bad_token"
BAD_PASSWORD = "bad_password"
WEAK_PASSWORD = "weak_password"
TOO_MANY_ATTEMPTS = "too_many_attempts"
RATE_LIMITED = "rate_limited"
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
BUSY = "busy"
SERVER_ERROR = "server_error"

MODES = ("echo", "ident", "auth")
SECRET_FIELDS = frozenset({"password", "new_password"})

MAX_REPEAT = 100
MAX_NAME = 64
MAX_LOGIN = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_LOGIN = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_LOGIN)


# What a client sends (contract section 3). msgspec checks every member's
# JSON type in C: a missing member, a wrong type (null included), 3.0 or
# true for an int all fail to decode. Unknown members are ignored.


class Answer(msgspec.Struct, tag_field="type", tag="answer"):
    field: str
    value: str


class Token(msgspec.Struct, tag_field="type", tag="token"):
    token: str


class Say(msgspec.Struct, tag_field="type", tag="say"):
    text: str
    repeat: int = 1


class Logout(msgspec.Struct, tag_field="type", tag="logout"):
    pass


class Quit(msgspec.Struct, tag_field="type", tag="quit"):
    pass


ClientMessage = Union[Answer, Token, Say, Logout, Quit]

_decode_client = msgspec.json.Decoder(ClientMessage).decode


class BadMessage(ValueError):
    """
    A payload that is not a well-formed client message (C{bad_message}).
    """


def decode_client_message(payload):
    """
    Decode and type-check one payload from a client.

    @type payload: L{bytes}
    @rtype: one of L{Answer}, L{Token}, L{Say}, L{Logout}, L{Quit}
    @raise BadMessage: with a reason a person can read.
    """
    if not payload:
        raise BadMessage("empty frame")
    try:
        message = _decode_client(payload)
        if not payload.isascii():
            # msgspec checks the strings it decodes, not the members it
            # skips; the whole payload must be UTF-8 (contract section 1).
            payload.decode("utf-8")
        return message
    except msgspec.ValidationError as e:
        raise BadMessage(_explained(payload, str(e))) from None
    except msgspec.DecodeError as e:
        raise BadMessage(_explained(payload, f"not a JSON object: {e}")) from None
    except UnicodeDecodeError:
        raise BadMessage(_explained(payload, "not UTF-8")) from None
    except RecursionError:
        raise BadMessage("JSON nested too deeply") from None


def _explained(payload, reason):
    """
    C{reason} (the decoder's) said for a person (L{echotwist.explain}; only
    refused messages pay for it).
    """
    from echotwist.explain import bad_payload

    return bad_payload(payload, reason)


# Limits on values (contract section 6). Each returns a reason for a person
# when the value is refused, None when it is fine.


def check_name(name):
    """
    @return: L{None} if C{name} (already trimmed) is acceptable, else why not.
    """
    if not name:
        return _("the name is empty")
    if len(name) > MAX_NAME:
        return _("the name is longer than {max} characters").format(max=MAX_NAME)
    if not name.isprintable():
        return _("the name has characters that cannot be printed")
    return None


def check_login(login):
    """
    @return: L{None} if C{login} is acceptable, else why not.
    """
    if not login:
        return _("the login is empty")
    if len(login) > MAX_LOGIN:
        return _("the login is longer than {max} characters").format(max=MAX_LOGIN)
    if not _LOGIN.fullmatch(login):
        return _("a login may hold only A-Z a-z 0-9 . _ -")
    return None


def check_repeat(repeat):
    """
    @return: L{None} if C{repeat} is in range, else why not.
    """
    if not 1 <= repeat <= MAX_REPEAT:
        return _("repeat must be from 1 to {max}").format(max=MAX_REPEAT)
    return None


# What the server sends (contract section 2), as compact UTF-8 JSON
# without \u escapes. One JSON library, msgspec, chosen by measurement
# (docs/performance.md): it decodes and type-checks a message in one pass,
# the cost every message pays.

encode = msgspec.json.Encoder().encode


def welcome(version, mode, max_message):
    return {
        "type": "welcome",
        "server": "echolab",
        "version": version,
        "mode": mode,
        "max_message": max_message,
    }


_PROMPTS = {
    "name": N_("What is your name?"),
    "login": N_("Login:"),
    "password": N_("Password:"),
    "new_password": N_("New login. Choose a password (at least {min} characters):"),
}


def prompt_text(field):
    """
    The question for C{field} in the language in use (the server's reply
    text, and the client's own words for the fields it knows).
    """
    return _(_PROMPTS[field]).format(min=MIN_PASSWORD)


def greet_text(name, known):
    """
    The greeting of C{name}, in the language in use.
    """
    if known:
        return _("Welcome back, {name}!").format(name=name)
    return _("Nice to meet you, {name}!").format(name=name)


def ask(field):
    return {
        "type": "ask",
        "field": field,
        "text": prompt_text(field),
        "secret": field in SECRET_FIELDS,
    }


def greet(name, known):
    return {
        "type": "greet",
        "name": name,
        "known": known,
        "text": greet_text(name, known),
    }


def auth_ok(login, via, token=None, expires=None):
    message = {"type": "auth_ok", "login": login, "via": via}
    if token is not None:
        message["token"] = token
        message["expires"] = expires
    return message


def error(code, text):
    return {"type": "error", "code": code, "text": text}


def bye(text):
    return {"type": "bye", "text": text}


ECHO_HEAD = b'{"type":"echo","text":'


def echo_payload(text):
    """
    The C{echo} answering a C{say} without C{repeat}.

    (Joined around the encoded text: encoding the whole dict is slower.)
    """
    return b"".join((ECHO_HEAD, encode(text), b"}"))


def echo_payloads(text, repeat):
    """
    The payloads answering C{say}: one C{echo}, or C{repeat} of them
    numbered C{n} of C{of}. The text is encoded once, however many copies.

    @rtype: iterator of L{bytes}
    """
    if repeat == 1:
        yield echo_payload(text)
        return
    head = ECHO_HEAD + encode(text) + b',"n":'
    tail = b',"of":%d}' % repeat
    join = b"".join  # one copy of the text per echo (+ would make two)
    for n in range(1, repeat + 1):
        yield join((head, b"%d" % n, tail))
