# -*- test-case-name: tests.test_check -*-
"""
Lab task 6, tokens: like cookies, a token logs its login in before any
question is answered; an unknown one is refused; a new one leaves the
older ones valid; logout revokes the one used or issued on its
connection.
"""

import secrets

from echotwist.check.connection import CheckFailed
from echotwist.check.runner import check
from echotwist.check.steps import refused_while_asked, stays_open
from echotwist.check.task6_auth import (
    AUTH,
    HASHING,
    asked_login,
    log_in_with_password,
    send_token,
)
from echotwist.check.context import new_login


@check(
    "auth.token-login",
    6,
    [2, 4],
    "a token logs in",
    "auth_ok via token, with the login and no new token, then greet with known: true",
    "Keep tokens (as hashes) with their login and expiry; a valid token "
    "logs its login in without a password.",
    modes=AUTH,
)
def token_login(context):
    account = context.account()
    connection = send_token(context, account.token)
    probe = connection.send_probe()
    ok = connection.expect("auth_ok", via="token", login=account.login)
    if "token" in ok:
        raise CheckFailed("auth_ok via token without a token member", "a token member")
    connection.expect("greet", known=True, name=account.login)
    stays_open(context, connection, probe)


def _token_while_asked(context, login, field):
    """
    While C{field} is asked for C{login}, the token of the checker's own
    login logs that one in.
    """
    account = context.account()
    connection = asked_login(context)
    connection.send({"type": "answer", "field": "login", "value": login})
    connection.expect_ask(field)
    connection.send({"type": "token", "token": account.token})
    probe = connection.send_probe()
    connection.expect("auth_ok", via="token", login=account.login)
    connection.expect("greet", name=account.login)
    stays_open(context, connection, probe)


@check(
    "auth.token-any-pending",
    6,
    [4],
    "a token while new_password is asked",
    "a token sent while new_password is asked for a new login gets auth_ok "
    "via token for the token's login, then greet",
    "Accept token at any point before authentication, whatever ask is pending.",
    modes=AUTH,
)
def token_any_pending(context):
    _token_while_asked(context, new_login(), "new_password")


@check(
    "auth.token-while-password-asked",
    6,
    [4],
    "a token while the password of another login is asked",
    "a token sent while the password of another login is asked gets auth_ok "
    "via token for the token's login (not the other one), then greet",
    "A token logs in its own login, whichever login's password was being asked.",
    modes=AUTH,
    limit=HASHING,
)
def token_while_password_asked(context):
    other = context.register()
    _token_while_asked(context, other.login, "password")


@check(
    "auth.bad-token",
    6,
    [4, 5],
    "an unknown token",
    "error bad_token, then ask login again; the connection stays open",
    "Refuse an unknown token with bad_token and ask the pending question again.",
    modes=AUTH,
)
def bad_token(context):
    _refused_token(context, f"check-{secrets.token_urlsafe(32)}")


@check(
    "auth.tokens-coexist",
    6,
    [4],
    "a new token does not revoke older ones",
    "after a password login issued a second token, both tokens log in",
    "Store several tokens per login (one per device); a new one must not "
    "replace the old.",
    modes=AUTH,
    limit=HASHING,
)
def tokens_coexist(context):
    connection, second = log_in_with_password(context)
    connection.quit()
    for token in (context.account().token, second):
        connection = send_token(context, token)
        connection.expect("auth_ok", via="token")
        connection.expect("greet")
        connection.quit()


def _refused_token(context, token):
    connection = asked_login(context)
    message = {"type": "token", "token": token}
    refused_while_asked(connection, message, "bad_token", "login")


@check(
    "auth.logout-revokes-issued",
    6,
    [3, 4],
    "logout revokes the token issued on the connection",
    "after a password login, logout gets bye and a close; its token then "
    "gets bad_token",
    "On logout, revoke (delete) the token issued or used on this connection "
    "before sending bye.",
    modes=AUTH,
    limit=HASHING,
)
def logout_revokes_issued(context):
    connection, token = log_in_with_password(context)
    connection.send({"type": "logout"})
    connection.expect_bye_and_close()
    _refused_token(context, token)


@check(
    "auth.logout-revokes-used",
    6,
    [3, 4],
    "logout revokes the token used on the connection",
    "after a token login, logout gets bye and a close; that token then gets bad_token",
    "Remember which token logged the connection in; logout revokes it.",
    modes=AUTH,
    limit=HASHING,
)
def logout_revokes_used(context):
    connection, token = log_in_with_password(context)
    connection.quit()
    connection = send_token(context, token)
    connection.expect("auth_ok", via="token")
    connection.expect("greet")
    connection.send({"type": "logout"})
    connection.expect_bye_and_close()
    _refused_token(context, token)
