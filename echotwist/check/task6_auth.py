# -*- test-case-name: tests.test_check -*-
"""
Lab task 6: authentication (auth mode). Registration, password logins
right and wrong, the third wrong password, tokens like cookies (before
any question, refused when unknown, revoked by logout, several at once),
the limits on logins and passwords, and the question asked again after
every refusal.

Every login here is the checker's own (L{Context.account}, or made up on
the spot and never registered).
"""

import secrets

from echotwist.check.connection import CheckFailed
from echotwist.check.context import check_token, new_login, new_password
from echotwist.check.runner import check
from echotwist.check.steps import refusal_check, refused_while_asked, stays_open

AUTH = ("auth",)
HASHING = 10.0
"""Seconds for a check that waits on password hashes."""


def asked_login(context):
    connection = context.connect()
    connection.expect_ask("login")
    return connection


def asked_password(context, login=None):
    """
    A connection asked the password of the checker's own login (given
    in C{login}'s spelling).
    """
    account = context.account()
    connection = asked_login(context)
    connection.send(
        {"type": "answer", "field": "login", "value": login or account.login}
    )
    connection.expect("ask", field="password", secret=True)
    return connection, account


def log_in_with_password(context):
    """
    Log in with the password: the new token, on a ready connection.
    """
    connection, account = asked_password(context)
    connection.send({"type": "answer", "field": "password", "value": account.password})
    token = check_token(
        connection.expect("auth_ok", via="password", login=account.login)
    )
    connection.expect("greet", known=True, name=account.login)
    return connection, token


def send_token(context, token):
    connection = asked_login(context)
    connection.send({"type": "token", "token": token})
    return connection


@check(
    "auth.ask-login",
    6,
    [2, 4],
    "the login is asked first",
    "after the welcome, ask login (secret: false)",
    "In auth mode, follow the welcome with an ask for the login.",
    modes=AUTH,
)
def ask_login(context):
    connection = context.connect()
    connection.expect("ask", field="login", secret=False)
    connection.quit()


@check(
    "auth.register",
    6,
    [2, 4],
    "an unknown login registers",
    "ask new_password (secret: true); a good password gets auth_ok via "
    "register with a token and its expiry, then greet with known: false",
    "For an unknown login ask new_password, store a salted slow hash "
    "(never the password), issue a token, then greet.",
    modes=AUTH,
    limit=HASHING,
)
def register(context):
    context.register()


def _weak(id, title, password, hint):
    @check(
        id,
        6,
        [5, 6],
        title,
        "error weak_password, then ask new_password again",
        hint,
        modes=AUTH,
    )
    def weak(context):
        connection = asked_login(context)
        connection.send({"type": "answer", "field": "login", "value": new_login()})
        connection.expect_ask("new_password")
        answer = {"type": "answer", "field": "new_password", "value": password}
        refused_while_asked(connection, answer, "weak_password", "new_password")


_weak(
    "auth.weak-password",
    "a new password under 8 characters",
    "short12",
    "Refuse new passwords under 8 characters with weak_password and ask "
    "again; do not register the login.",
)
_weak(
    "auth.new-password-too-long",
    "a new password over 1024 characters",
    secrets.token_hex(513)[:1025],
    "A password has at most 1024 characters; refuse longer new ones with "
    "weak_password.",
)


@check(
    "auth.password-login",
    6,
    [2, 4, 6],
    "a known login with its password, typed in another case",
    "ask password (secret: true) for the login in capitals; the right "
    "password gets auth_ok via password, with the login as registered and "
    "a new token, then greet with known: true",
    "Compare logins case-insensitively (store them folded), reply with the "
    "spelling registered, and issue a new token on every password login.",
    modes=AUTH,
    limit=HASHING,
)
def password_login(context):
    connection, account = asked_password(context, context.account().login.upper())
    connection.send({"type": "answer", "field": "password", "value": account.password})
    probe = connection.send_probe()
    ok = connection.expect("auth_ok", via="password", login=account.login)
    if check_token(ok) == account.token:
        raise CheckFailed("a new token (not the one issued before)", "the same token")
    connection.expect("greet", known=True, name=account.login)
    stays_open(context, connection, probe)


@check(
    "auth.wrong-password",
    6,
    [4, 5],
    "a wrong password, then the right one",
    "error bad_password, ask password again; then the right password gets "
    "auth_ok via password",
    "On a wrong password send bad_password and ask again; keep the connection.",
    modes=AUTH,
    limit=HASHING,
)
def wrong_password(context):
    connection, account = asked_password(context)
    connection.send({"type": "answer", "field": "password", "value": new_password()})
    connection.send({"type": "answer", "field": "password", "value": account.password})
    probe = connection.send_probe()
    connection.expect_asked_again("bad_password", "password")
    connection.expect("auth_ok", via="password", login=account.login)
    connection.expect("greet")
    stays_open(context, connection, probe)


@check(
    "auth.third-wrong-password",
    6,
    [4, 5],
    "the third wrong password closes the connection",
    "bad_password and ask password twice, then too_many_attempts (not "
    "bad_password), bye, and the connection closes",
    "Count wrong passwords per connection; at the third send "
    "too_many_attempts and bye, then close.",
    modes=AUTH,
    limit=HASHING,
)
def third_wrong_password(context):
    connection, _ = asked_password(context)
    for _ in range(3):
        connection.send(
            {"type": "answer", "field": "password", "value": new_password()}
        )
    for _ in range(2):
        connection.expect_asked_again("bad_password", "password")
    connection.expect_error("too_many_attempts")
    connection.expect_bye_and_close()


@check(
    "auth.password-out-of-bounds",
    6,
    [5, 6],
    "a too-short password for a known login is just wrong",
    "error bad_password (not weak_password or bad_value), then ask password again",
    "Only new passwords are judged weak; a login's password answer outside "
    "8..1024 characters is simply wrong.",
    modes=AUTH,
    limit=HASHING,
)
def password_out_of_bounds(context):
    connection, _ = asked_password(context)
    answer = {"type": "answer", "field": "password", "value": "short"}
    refused_while_asked(connection, answer, "bad_password", "password")


def _refused_while_asked(id, title, message, code, hint, sections=(4, 5)):
    refusal_check(
        id, 6, sections, title, hint, asked_login, "login", message, code, AUTH
    )


_refused_while_asked(
    "auth.say-before-login",
    "say before authentication",
    {"type": "say", "text": "too early"},
    "bad_state",
    "Until the client is authenticated, say is bad_state; then ask the "
    "pending question again.",
)
_refused_while_asked(
    "auth.logout-before-login",
    "logout before authentication",
    {"type": "logout"},
    "bad_state",
    "logout is only valid after authentication; before, it is bad_state.",
)
_refused_while_asked(
    "auth.answer-wrong-field",
    "an answer for a field that is not asked",
    {"type": "answer", "field": "password", "value": "check-not-asked"},
    "bad_state",
    "An answer must name the pending field; otherwise bad_state, and ask again.",
)
_refused_while_asked(
    "auth.bad-message-while-asked",
    "a bad message while the login is asked",
    b"hello, world!",
    "bad_message",
    "After any error that leaves the connection open, send the pending ask again.",
)
_refused_while_asked(
    "auth.login-empty",
    "an empty login",
    {"type": "answer", "field": "login", "value": ""},
    "bad_value",
    "A login has 1 to 32 characters; refuse an empty one with bad_value.",
    sections=(5, 6),
)
_refused_while_asked(
    "auth.login-too-long",
    "a login of 33 characters",
    {"type": "answer", "field": "login", "value": "check-" + "x" * 27},
    "bad_value",
    "A login has at most 32 characters.",
    sections=(5, 6),
)
_refused_while_asked(
    "auth.login-bad-characters",
    "a login with a space and a '!'",
    {"type": "answer", "field": "login", "value": "check login!"},
    "bad_value",
    "A login uses only A-Z a-z 0-9 . _ - ; refuse anything else with bad_value.",
    sections=(5, 6),
)


@check(
    "auth.login-32",
    6,
    [6],
    "a login of 32 characters",
    "ask new_password for a new login of exactly 32 characters",
    "The limit is inclusive: 32 characters is a valid login.",
    modes=AUTH,
)
def login_32(context):
    connection = asked_login(context)
    login = (new_login() + "-" + "x" * 32)[:32]
    connection.send({"type": "answer", "field": "login", "value": login})
    connection.expect_ask("new_password")
    connection.quit()
