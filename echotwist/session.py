# -*- test-case-name: tests.test_session -*-
"""
What each message means at each point of a conversation (contract section
4), one small state machine per mode.

A session never sees bytes or frames: the protocol hands it decoded
messages (L{echotwist.messages}) and it answers through its peer, the
connection, which provides L{ISessionPeer}. A handler that starts slow work
(a database write, a password hash) returns its L{Deferred}; the protocol
holds the connection's next messages until it fires, so messages are
handled one at a time, in order.
"""

from twisted.cred.error import UnauthorizedLogin
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from echotwist import messages as m
from echotwist.auth import LoginTaken, RateLimited
from echotwist.explain import expected

from echotwist.i18n import N_, _

# What kind of refusal counts against a connection's bad-message budget.
_STRIKES = frozenset({m.BAD_MESSAGE, m.BAD_STATE, m.BAD_VALUE})


class ISessionPeer(Interface):
    """
    What a session may ask of its connection
    (L{echotwist.protocol.ServerProtocol}), and all it may ask.
    """

    address = Attribute("The client's IP address, as text.")

    def send(message):
        """
        Send one message (a L{dict}, see L{echotwist.messages}).
        """

    def send_echoes(text, repeat):
        """
        Answer a C{say}: C{repeat} echoes of C{text}, numbered if more than
        one, written as fast as the client reads them.
        """

    def finish(*messages):
        """
        Send C{messages}, then close the connection. Once it is closing (or
        gone) this does nothing.
        """


class Session:
    """
    The part every mode shares: C{welcome}, C{say}, C{quit}, and refusing
    what is out of turn while re-asking the pending question.

    @ivar ready: true once the client may C{say} (after identification or
        authentication in those modes).
    @ivar pending: the field of the pending C{ask}, or L{None}.
    @ivar account: the login (as registered) this session is logged in as
        (auth mode), or L{None}: what the factory finds sessions by when an
        administrator changes an account (L{echotwist.changes}).
    """

    mode = "echo"
    log = Logger()
    ready = False
    pending = None
    account = None
    strikes = 0

    def __init__(self, peer, server):
        """
        @param peer: the connection, an L{ISessionPeer}.
        @param server: the factory: C{settings}, C{version} and the stores.
        """
        self.peer = peer
        self.server = server

    def start(self):
        """
        The connection is accepted: greet it with C{welcome}.
        """
        settings = self.server.settings
        self.peer.send(m.welcome(self.server.version, self.mode, settings.max_message))
        return self.begin()

    def begin(self):
        """
        Open the conversation after C{welcome}.
        """
        self.ready = True

    def handle(self, message):
        """
        Answer one well-formed client message.

        @return: L{None}, or a L{Deferred} that fires when it is answered.
        """
        return self._handlers[type(message)](self, message)

    def refuse(self, code, text):
        """
        Send C{error}, then the pending question again; close the
        connection once it has sent too many bad messages. A C{bad_state}
        says what is expected instead.
        """
        if code == m.BAD_STATE:
            text = f"{text}; expected now: {expected(self)}"
        self.peer.send(m.error(code, text))
        if code in _STRIKES:
            self.strikes += 1
            if self.strikes >= self.server.settings.max_bad_messages:
                self.log.info(
                    "closing {peer}: {count} refused messages",
                    peer=self.peer.address,
                    count=self.strikes,
                    client=self.peer.address,
                )
                self.peer.finish(
                    m.error(m.TOO_MANY_ATTEMPTS, _("too many refused messages")),
                    m.bye(_("Too many refused messages; closing.")),
                )
                return
        if self.pending is not None:
            self.peer.send(m.ask(self.pending))

    def ask(self, field):
        self.pending = field
        self.peer.send(m.ask(field))

    def on_say(self, message):
        if not self.ready:
            return self.refuse(m.BAD_STATE, _(self._not_ready))
        repeat = message.repeat
        if not 1 <= repeat <= m.MAX_REPEAT:  # (the hot path: no call to check)
            return self.refuse(m.BAD_VALUE, m.check_repeat(repeat))
        self.peer.send_echoes(message.text, repeat)

    def on_quit(self, message):
        self.peer.finish(m.bye(_("Goodbye.")))

    def on_answer(self, message):
        if message.field != self.pending:
            if self.pending is None:
                why = _("no question is pending")
            else:
                why = _("the pending question is {field!r}").format(field=self.pending)
            return self.refuse(m.BAD_STATE, why)
        return self.answered(message.field, message.value)

    def answered(self, field, value):
        """
        Take the answer C{value} to the pending question C{field}.
        """
        raise NotImplementedError()

    def on_token(self, message):
        return self.refuse(m.BAD_STATE, _("token logins are for auth mode"))

    def on_logout(self, message):
        return self.refuse(m.BAD_STATE, _("logout is for auth mode"))

    _not_ready = N_("not ready for that yet")
    _handlers = {
        m.Say: on_say,
        m.Quit: on_quit,
        m.Answer: on_answer,
        m.Token: on_token,
        m.Logout: on_logout,
    }

    def __init_subclass__(cls, **kwargs):
        # The table holds functions (no attribute lookup on the hot path):
        # give each subclass one of its own overrides.
        super().__init_subclass__(**kwargs)
        cls._handlers = {t: getattr(cls, f.__name__) for t, f in cls._handlers.items()}


class EchoSession(Session):
    """
    Echo mode: ready at once.
    """


class IdentSession(Session):
    """
    Ident mode (lab task 5): clients are known by their IP address; an
    unknown one is asked its name, which is stored before it is greeted.
    """

    mode = "ident"
    _not_ready = N_("identify first: answer the pending question")

    def begin(self):
        d = self.server.identities.name_for(self.peer.address)
        d.addCallback(self._looked_up)
        return d

    def _looked_up(self, name):
        if name is None:
            self.ask("name")
        else:
            self._greet(name, known=True)

    def answered(self, field, value):
        name = value.strip()
        why = m.check_name(name)
        if why:
            return self.refuse(m.BAD_VALUE, why)
        d = self.server.identities.remember(self.peer.address, name)
        d.addCallback(lambda ignored: self._greet(name, known=False))
        return d

    def _greet(self, name, known):
        self.pending = None
        self.ready = True
        self.log.info(
            "{peer} identified as {name} ({how})",
            peer=self.peer.address,
            name=name,
            how="known" if known else "new",
            client=self.peer.address,
        )
        self.peer.send(m.greet(name, known))


class AuthSession(Session):
    """
    Auth mode (lab task 6): a login with a password, or a token from an
    earlier C{auth_ok}; unknown logins register.

    @ivar login: the login being answered for (as the client typed it).
    @ivar token_digest: the digest of the token used or issued on this
        connection, which C{logout} revokes.
    @ivar failures: failed password attempts on this connection (wrong or
        throttled).
    @ivar refused_tokens: tokens refused on this connection.
    """

    mode = "auth"
    _not_ready = N_("log in first: answer the pending question")
    login = None
    token_digest = None
    failures = 0
    max_failures = 3  # the contract's number, not an option
    refused_tokens = 0
    # Below the per-address throttle of refused tokens (100 by default), so
    # on one connection the close comes before any rate_limited.
    max_refused_tokens = 50

    def begin(self):
        self.ask("login")

    def answered(self, field, value):
        return getattr(self, "_answer_" + field)(value)

    def _answer_login(self, login):
        why = m.check_login(login)
        if why:
            return self.refuse(m.BAD_VALUE, why)
        d = self.server.accounts.registered_login(login, self.peer.address)
        d.addCallbacks(self._login_looked_up, self._rate_limited, (login,))
        return d

    def _login_looked_up(self, registered, login):
        self.login = login
        self.ask("new_password" if registered is None else "password")

    def _rate_limited(self, failure):
        failure.trap(RateLimited)
        self.refuse(m.RATE_LIMITED, str(failure.value))

    def _answer_password(self, password):
        d = self.server.accounts.login_with_password(
            self.login, password, self.peer.address
        )
        d.addCallbacks(self._logged_in, self._password_refused)
        return d

    def _password_refused(self, failure):
        failure.trap(UnauthorizedLogin, RateLimited)
        # A throttled attempt counts too: whatever the throttle says, the
        # third failed attempt on a connection closes it.
        self.failures += 1
        self._attempt_refused(
            failure,
            self.failures >= self.max_failures,
            (_("too many wrong passwords"), _("Too many wrong passwords; closing.")),
            m.BAD_PASSWORD,
            _("wrong password"),
        )

    def _attempt_refused(self, failure, last, closing, code, text):
        """
        Answer a refused login attempt: C{too_many_attempts} and close when
        it was the C{last} one allowed (C{closing}: the error's text and the
        C{bye}'s), else C{rate_limited} or C{code}.
        """
        if last:
            closing_why, closing_bye = closing
            self.peer.finish(
                m.error(m.TOO_MANY_ATTEMPTS, closing_why), m.bye(closing_bye)
            )
        elif failure.check(RateLimited):
            self.refuse(m.RATE_LIMITED, str(failure.value))
        else:
            self.refuse(code, text)

    def _answer_new_password(self, password):
        accounts = self.server.accounts
        why = accounts.weakness(self.login, password)
        if why:
            return self.refuse(m.WEAK_PASSWORD, why)
        d = accounts.register(self.login, password, self.peer.address)
        d.addCallbacks(self._logged_in, self._not_registered)
        return d

    def _not_registered(self, failure):
        if failure.trap(LoginTaken, RateLimited) is RateLimited:
            return self._rate_limited(failure)
        # Another connection registered this login first: it is now a
        # known login, so its password is what we need.
        self.pending = "password"
        self.refuse(
            m.BAD_VALUE,
            _("the login {login!r} was just taken").format(login=self.login),
        )

    def on_token(self, message):
        if self.ready:
            return self.refuse(m.BAD_STATE, _("already logged in"))
        d = self.server.accounts.login_with_token(
            message.token, self.peer.address, refused_before=self.refused_tokens > 0
        )
        d.addCallbacks(self._logged_in, self._token_refused)
        return d

    def _token_refused(self, failure):
        failure.trap(UnauthorizedLogin, RateLimited)
        self.refused_tokens += 1
        self._attempt_refused(
            failure,
            self.refused_tokens >= self.max_refused_tokens,
            (_("too many refused tokens"), _("Too many refused tokens; closing.")),
            m.BAD_TOKEN,
            _("the token is unknown, expired or revoked"),
        )

    def _logged_in(self, logged_in):
        """
        Authenticated (L{echotwist.auth.LoggedIn}): C{auth_ok}, with the new
        token if one was issued, then C{greet}.
        """
        self.token_digest = logged_in.digest
        self.account = logged_in.login
        self.pending = None
        self.ready = True
        token = logged_in.token
        if token is None:
            self.peer.send(m.auth_ok(logged_in.login, logged_in.via))
        else:
            self.peer.send(
                m.auth_ok(logged_in.login, logged_in.via, token.value, token.expires)
            )
        self.peer.send(m.greet(logged_in.login, known=logged_in.via != "register"))

    def on_logout(self, message):
        if not self.ready:
            return self.refuse(m.BAD_STATE, _("not logged in"))
        d = self.server.accounts.revoke(self.token_digest, self.peer.address)
        d.addCallback(
            lambda ignored: self.peer.finish(m.bye(_("Logged out. Goodbye.")))
        )
        return d


SESSIONS = {cls.mode: cls for cls in (EchoSession, IdentSession, AuthSession)}
