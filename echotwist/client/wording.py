# -*- test-case-name: tests.test_client_conversation -*-
"""
The client's own words for what the server says with a code: its
questions (by field), greetings (by name and C{known}), and errors (by
code), in the person's language. The server's C{text} is shown only for
what this client does not know, or as the detail of an error whose text
says more than its code (which value, how long to wait).
"""

from echotwist import messages as m
from echotwist.i18n import N_, _

_ERRORS = {
    m.BAD_PASSWORD: N_("wrong password"),
    m.BAD_TOKEN: N_("the token is not valid (revoked, expired or unknown)"),
    m.TOO_MANY_ATTEMPTS: N_("too many attempts"),
    m.TOO_LARGE: N_("the message is too large"),
    m.TIMEOUT: N_("timed out"),
    m.BUSY: N_("the server is busy"),
    m.SERVER_ERROR: N_("internal error on the server; please try again"),
}
_ERRORS_WITH_DETAIL = {
    m.BAD_MESSAGE: N_("malformed message"),
    m.BAD_STATE: N_("not now"),
    m.BAD_VALUE: N_("refused value"),
    m.WEAK_PASSWORD: N_("the password is too weak"),
    m.RATE_LIMITED: N_("too many attempts; wait"),
}


def error_text(code, server_text):
    """
    What an error with C{code} means, for the person.
    """
    if code in _ERRORS:
        return _(_ERRORS[code])
    if code in _ERRORS_WITH_DETAIL:
        own = _(_ERRORS_WITH_DETAIL[code])
        return f"{own}: {server_text}" if server_text else own
    return server_text


def ending_text(code, server_text):
    """
    Why the server ended the session: the client's own words for the code
    of the error it sent just before its C{bye}, if it knows the code,
    else the C{bye}'s text.
    """
    if code in _ERRORS:
        return _(_ERRORS[code])
    return server_text


def question_text(field, server_text):
    """
    The question the server asks with C{field}.
    """
    if isinstance(field, str) and field in m.SECRET_FIELDS | {"login", "name"}:
        return m.prompt_text(field)
    return server_text or f"{field}:"


def greeting(name, known, server_text):
    """
    The server's greeting of C{name}.
    """
    if isinstance(name, str) and name and isinstance(known, bool):
        return m.greet_text(name, known)
    return server_text
