# -*- test-case-name: tests.test_auth -*-
"""
Authentication for auth mode, on L{twisted.cred}: a L{Portal} with one
checker for passwords and one for session tokens, and a realm whose
avatars are L{Account}s.

cred fits the check step (credentials in, an avatar out, failures as
L{UnauthorizedLogin}) as it does for POP3 and SSH. It has no notion of
registering an unknown login or of throttling, so L{Accounts}, the one
object sessions talk to, adds those around the portal.
"""

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.logger import Logger

from echotwist import passwords
from echotwist.credentials import AccountChanged, LoginTaken
from echotwist.throttle import RateLimited

from echotwist.checkers import (
    IAccount,
    IssuedToken,
    LoggedIn,
    PasswordAttempt,
    PasswordChecker,
    Realm,
    TokenChecker,
    TokenCredentials,
    token_digest,
)

__all__ = ["Accounts", "LoggedIn", "LoginTaken", "RateLimited", "IssuedToken"]


class Accounts:
    """
    Everything auth mode needs, over the credential store: log in by
    password or token (throttled), register, issue and revoke tokens.
    Every attempt is counted by the throttle before it is checked.
    Failures and successes are logged with the client address; passwords
    and tokens never are.
    """

    log = Logger()

    def __init__(self, credentials, hasher, throttle, clock, token_ttl):
        self._credentials = credentials
        self._hasher = hasher
        self._throttle = throttle
        self._clock = clock
        self._token_ttl = token_ttl
        self.portal = Portal(
            Realm(),
            [PasswordChecker(credentials, hasher), TokenChecker(credentials)],
        )
        passwords.common_passwords()  # now, not on the reactor's time

    def registered_login(self, login, address):
        """
        @return: a L{Deferred} firing with C{login} as registered, or
            L{None} when it is not; or failing with L{RateLimited} when
            C{address} asked about too many logins lately.
        """
        try:
            self._throttle.start_lookup(address)
        except RateLimited as e:
            _log_refusal(self.log, e, "refused login look-up", address)
            return defer.fail(e)
        return self._credentials.user(login).addCallback(lambda row: row and row[0])

    def weakness(self, login, password):
        """
        @return: why C{password} may not be registered for C{login}, or
            L{None}.
        """
        return passwords.weakness(login, password)

    def login_with_password(self, login, password, address):
        """
        @return: a L{Deferred} firing with L{LoggedIn} (a new token issued),
            or failing with L{UnauthorizedLogin} or L{RateLimited}.
        """
        refreshed = self._throttle.refresh(login, address)
        return _after(refreshed, self._login_with_password, login, password, address)

    def _login_with_password(self, login, password, address):
        throttle = self._throttle
        try:
            throttle.start_password(login, address)
        except RateLimited as e:
            _log_refusal(self.log, e, f"throttled password login for {login}", address)
            return defer.fail(e)
        creds = PasswordAttempt(
            login.encode("utf-8"), password.encode("utf-8"), throttle.key(address)
        )
        d = self.portal.login(creds, None, IAccount)

        def accepted(result):
            registered = result[1].login
            throttle.finish_password(login, address, matched=True)
            self._credentials.last_logins.seen(registered)
            self.log.info(
                "{login} logged in with a password from {address}",
                login=registered,
                address=address,
                client=address,
            )
            return self._issue_token(registered, "password", creds.verified_hash)

        def refused(failure):
            if failure.check(UnauthorizedLogin):
                text = "wrong password for {login} from {address}"
            elif failure.check(defer.CancelledError):
                # The client hung up before the verdict: counted as a
                # failure, or guessing and hanging up would keep the
                # hashing threads busy where no throttle sees it.
                text = "password check for {login} abandoned by {address}"
            else:  # never checked (the hashing queue was full): no failure
                throttle.finish_password(login, address, matched=None)
                return failure
            throttle.finish_password(login, address, matched=False)
            self.log.warn(text, login=login, address=address, client=address)
            return _after(throttle.settled(), lambda: failure)

        return d.addCallbacks(accepted, refused)

    def login_with_token(self, token, address, refused_before):
        """
        @param refused_before: whether this connection had a token refused
            already: while C{address} is throttled for refused tokens, only
            such connections (the guesser, not its neighbours) are held back.
        @return: a L{Deferred} firing with L{LoggedIn}, or failing with
            L{UnauthorizedLogin} or L{RateLimited}.
        """
        refreshed = self._throttle.refresh(None, address) if refused_before else None
        return _after(refreshed, self._login_with_token, token, address, refused_before)

    def _login_with_token(self, token, address, refused_before):
        try:
            self._throttle.start_token(address, refused_before)
        except RateLimited as e:
            _log_refusal(self.log, e, "throttled token login", address)
            return defer.fail(e)
        d = self.portal.login(TokenCredentials(token), None, IAccount)

        def accepted(result):
            registered = result[1].login
            self._credentials.last_logins.seen(registered)
            self.log.info(
                "{login} logged in with a token from {address}",
                login=registered,
                address=address,
                client=address,
            )
            return LoggedIn(registered, "token", token_digest(token))

        def refused(failure):
            failure.trap(UnauthorizedLogin)
            self._throttle.token_refused(address)
            self.log.warn(
                "refused token from {address}", address=address, client=address
            )
            return _after(self._throttle.settled(), lambda: failure)

        return d.addCallbacks(accepted, refused)

    @defer.inlineCallbacks
    def register(self, login, password, address):
        """
        Register C{login} (whose password was checked by L{weakness}) with
        its first token.

        @return: a L{Deferred} firing with L{LoggedIn} (its first token
            issued), or failing with L{LoginTaken} or L{RateLimited}.
        """
        try:
            self._throttle.start_registration(address)
        except RateLimited as e:
            _log_refusal(self.log, e, f"refused registration of {login}", address)
            raise
        hashed = yield self._hasher.hash(password, self._throttle.key(address))
        token = IssuedToken.new(self._clock.seconds(), self._token_ttl)
        try:
            yield self._credentials.add_user(login, hashed, token.digest, token.expires)
        except LoginTaken:
            self.log.info(
                "{login} was registered by another connection first ({address})",
                login=login,
                address=address,
                client=address,
            )
            raise
        self.log.info(
            "registered {login} from {address}",
            login=login,
            address=address,
            client=address,
        )
        return LoggedIn(login, "register", token.digest, token)

    def _issue_token(self, login, via, verified_hash):
        """
        Store a new token for C{login} (as registered), whose password
        matched C{verified_hash}.

        @return: a L{Deferred} firing with L{LoggedIn} once it is stored,
            or failing with L{UnauthorizedLogin} if an administrator deleted
            the account or reset its password meanwhile.
        """
        token = IssuedToken.new(self._clock.seconds(), self._token_ttl)
        d = self._credentials.add_token(
            login, token.digest, token.expires, verified_hash
        )

        def changed(failure):
            failure.trap(AccountChanged)
            self.log.warn("{login} was changed during its password check", login=login)
            raise UnauthorizedLogin("the account changed during the check")

        d.addCallbacks(lambda _: LoggedIn(login, via, token.digest, token), changed)
        return d

    def revoke(self, digest, address):
        """
        Revoke the token with this C{digest}; fires once committed.
        """
        self.log.info(
            "revoking a token on logout from {address}", address=address, client=address
        )
        return self._credentials.revoke(digest)


def _log_refusal(log, refusal, what, address):
    """Log a refused attempt (never its password or token)."""
    log.warn(
        "{what} from {address}: {why}",
        what=what,
        address=address,
        why=str(refusal),
        client=address,
    )


def _after(deferred, function, *args):
    """
    C{function(*args)} once C{deferred} has fired (the throttle sharing its
    counts), or at once when there is no C{deferred}.
    """
    if deferred is None:
        return function(*args)
    return deferred.addCallback(lambda _: function(*args))
