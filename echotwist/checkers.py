# -*- test-case-name: tests.test_auth -*-
"""
The L{twisted.cred} side of auth mode: the credentials a client presents
(a password attempt, a session token), the checkers that judge them on
the stores, and the realm whose avatars are L{Account}s. L{Accounts}
(L{echotwist.auth}) puts them behind one portal.
"""

import hashlib
import math
import secrets
from dataclasses import dataclass

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.internet import defer
from zope.interface import Attribute, Interface, implementer

from echotwist.messages import MAX_PASSWORD, MIN_PASSWORD


TOKEN_BYTES = 32  # 256 random bits
MAX_TOKEN = 256  # longer strings cannot be ours


def token_digest(token):
    """
    What the store keeps of a token: its SHA-256. A token carries 256
    random bits, so a fast hash suffices (NIST SP 800-63B for look-up
    secrets), and lookups by digest give no timing oracle on the token.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class IssuedToken:
    """
    A new session token: C{value} goes to the client only, C{digest} to
    the store; C{expires} is in Unix seconds.
    """

    value: str
    digest: bytes
    expires: int

    @classmethod
    def new(cls, now, ttl):
        value = secrets.token_urlsafe(TOKEN_BYTES)
        return cls(value, token_digest(value), math.ceil(now) + ttl)

    def __repr__(self):
        return f"<IssuedToken expires={self.expires}>"  # never the value


class IToken(ICredentials):
    """
    A session token from an earlier C{auth_ok}.
    """

    token = Attribute("The token, as the client holds it (str).")


@implementer(IUsernamePassword)
class PasswordAttempt:
    """
    A login and password (UTF-8 bytes, as L{IUsernamePassword} has them)
    typed by a client, with the key of the client's address: the hashing
    queue is bounded per client.

    @ivar verified_hash: once the password matched, the stored hash it
        matched (or its upgrade): a token is issued only while it is still
        the stored one.
    """

    def __init__(self, username, password, client):
        self.username = username
        self.password = password
        self.client = client
        self.verified_hash = None

    def checkPassword(self, password):
        raise NotImplementedError("echolab checks passwords on its hashing threads")

    def __repr__(self):
        return f"<PasswordAttempt {self.username!r} from {self.client}>"  # no password


@implementer(IToken)
class TokenCredentials:
    def __init__(self, token):
        self.token = token


class IAccount(Interface):
    """
    An authenticated user.
    """

    login = Attribute("The login as registered.")


@implementer(IAccount)
class Account:
    def __init__(self, login):
        self.login = login


@dataclass(frozen=True)
class LoggedIn:
    """
    What every way of logging in gives: who, how, and the token the
    connection holds from then on, which its C{logout} revokes.

    @ivar login: the login as registered.
    @ivar via: C{"password"}, C{"token"} or C{"register"}.
    @ivar digest: the digest of the connection's token.
    @ivar token: the L{IssuedToken} to hand the client (after a password
        or a registration), or L{None} (it logged in with its own).
    """

    login: str
    via: str
    digest: bytes
    token: object = None


@implementer(ICredentialsChecker)
class PasswordChecker:
    """
    Check a login and password against the stored argon2id hash, upgrading
    the hash when it was made under older parameters.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, credentials, hasher):
        self._credentials = credentials
        self._hasher = hasher

    @defer.inlineCallbacks
    def requestAvatarId(self, creds):
        login = creds.username.decode("utf-8")
        password = creds.password.decode("utf-8")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise UnauthorizedLogin("wrong password")  # could never match
        user = yield self._credentials.user(login)
        if user is None:
            raise UnauthorizedLogin("unknown login")
        registered, stored = user
        matches, replacement = yield self._hasher.verify(password, stored, creds.client)
        if not matches:
            raise UnauthorizedLogin("wrong password")
        creds.verified_hash = stored
        if replacement is not None:
            yield self._credentials.replace_hash(registered, stored, replacement)
            creds.verified_hash = replacement
        return registered


@implementer(ICredentialsChecker)
class TokenChecker:
    """
    Accept a token that is known, unexpired and not revoked.
    """

    credentialInterfaces = (IToken,)

    def __init__(self, credentials):
        self._credentials = credentials

    def requestAvatarId(self, creds):
        if not 0 < len(creds.token) <= MAX_TOKEN:
            return defer.fail(UnauthorizedLogin("not a token"))
        d = self._credentials.token_login(token_digest(creds.token))

        def found(login):
            if login is None:
                raise UnauthorizedLogin("unknown, expired or revoked token")
            return login

        return d.addCallback(found)


@implementer(IRealm)
class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if IAccount not in interfaces:
            raise NotImplementedError("echolab only has accounts")
        return IAccount, Account(avatarId), lambda: None
