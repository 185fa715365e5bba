# -*- test-case-name: tests.test_check -*-
"""
What the checks share during one run: where the server is, the current
check's deadline and transcript, a ready session a passed check left
behind for the next, and the login the checker registered for itself.

The checker logs in only with logins it made up (C{check-} and random
hex); its passwords pass echolab's weak-password rules. On this machine's
IPv4 loopback each run connects from an address of its own (127.x.y.z,
made up): identifications and throttling then touch neither the user's
address nor an earlier run's.
"""

import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field

from echotwist.check.connection import CheckFailed, Connection, Skip, describe
from echotwist.check.sockets import TLSSocket
from echotwist.prompts import format_address


MAX_CONNECTIONS = 60
"""
The most connections one run opens: the load on the server stays small,
however many checks fail (a passing echolab needs 39 in auth mode).
"""


@dataclass(frozen=True)
class Target:
    """
    The server under test, resolved once (a check's time limit never
    waits on a name server).
    """

    host: str
    port: int
    family: int
    sockaddr: tuple
    tls: ssl.SSLContext = None

    @property
    def where(self):
        return format_address(self.host, self.port)

    @property
    def on_loopback_v4(self):
        return (
            self.family == socket.AF_INET
            and ipaddress.ip_address(self.sockaddr[0]).is_loopback
        )


def resolve(host, port, tls=False, ca=None):
    """
    @raise ValueError: with one line for a person.
    """
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        )[0]
    except (OSError, UnicodeError) as e:
        raise ValueError(
            f"cannot resolve {host!r} ({getattr(e, 'strerror', e)})"
        ) from None
    context = None
    if tls:
        try:
            context = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise ValueError(f"--ca: cannot use {ca} ({reason})") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.sslsocket_class = TLSSocket
    return Target(host, port, family, sockaddr, context)


@dataclass
class Transcript:
    sent: list = field(default_factory=list)
    got: list = field(default_factory=list)


@dataclass(frozen=True)
class Account:
    login: str
    password: str
    token: str


def new_login():
    """A login nobody has: C{check-} and 10 random hex digits."""
    return f"check-{secrets.token_hex(5)}"


def new_password():
    """A random password that passes echolab's weak-password rules."""
    return f"check-pw-{secrets.token_hex(8)}"


class Context:
    """
    @ivar mode: the server's mode (given, or read from its welcome).
    @ivar server_timeout: the server's login/idle timeout, when it was
        started with one short enough to observe, else L{None}.
    """

    max_message = None
    connections = 0
    """How many connections were opened (or tried)."""

    def __init__(self, target, mode, server_timeout, clock=time.monotonic):
        self.target = target
        self.mode = mode
        self.server_timeout = server_timeout
        self.clock = clock
        self.deadline = float("inf")
        self.transcript = Transcript()
        self._opened = []
        self._kept = None
        self._account = None
        self._account_failure = None
        self.home = self.fresh_source() if self._fresh_sources_work() else None

    def _fresh_sources_work(self):
        if not self.target.on_loopback_v4:
            return False
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind((f"127.{secrets.randbelow(256)}.{secrets.randbelow(256)}.2", 0))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    # The run's steps: one check at a time.

    def begin(self, deadline):
        """
        Start a check: its deadline, and a new transcript (the kept
        session's too).
        """
        self.deadline = deadline
        self.transcript = Transcript()
        if self._kept is not None:
            self._kept.sock.deadline = deadline
            self._kept.transcript = self.transcript
        return self.transcript

    def end(self):
        """
        End a check: close its connections but the one it kept.
        """
        for connection in self._opened:
            if connection is not self._kept:
                connection.close()
        self._opened = [self._kept] if self._kept else []

    def close(self):
        self._kept = None
        self.end()

    def time_left(self):
        """Seconds left to the current check."""
        return self.deadline - self.clock()

    # Connections.

    def connect(self, source=None):
        """
        A new connection, its welcome read (from C{source}, or the run's
        own address).
        """
        if self.connections >= MAX_CONNECTIONS:
            raise Skip(
                f"the run's allowance of {MAX_CONNECTIONS} connections was spent"
            )
        self.connections += 1
        connection = Connection.open(
            self.target, self.deadline, self.transcript, source or self.home
        )
        self._opened.append(connection)
        return connection

    def fresh_source(self):
        """
        A client address the server has not seen (127.x.y.z, made up).

        @raise Skip: when the server is not on this machine's IPv4 loopback.
        """
        if not self.target.on_loopback_v4:
            raise Skip(
                "needs a client address the server has not seen; the checker "
                "makes one up (127.x.y.z) only for a server on this machine's "
                "IPv4 loopback"
            )
        return ".".join(
            ["127"]
            + [str(secrets.randbelow(256)) for _ in range(2)]
            + [str(2 + secrets.randbelow(250))]
        )

    def ready(self):
        """
        A session where C{say} is allowed: the one the previous check kept,
        or a new one (identified, or logged in by token, as the mode asks).
        """
        if self._kept is not None:
            connection, self._kept = self._kept, None
            if connection.idle():
                return connection
            connection.close()  # the server closed it, or sent more
        connection = self.connect()
        if self.mode == "ident":
            self.identify(connection)
        elif self.mode == "auth":
            self.log_in(connection)
        return connection

    def keep(self, connection):
        """
        Leave C{connection}, ready, for the next check (a passed check only).
        """
        self._kept = connection

    def identify(self, connection, name=None):
        """
        Be identified (ident mode): answer the name if asked, then the
        greet.

        @return: the C{greet}.
        """
        message, _ = connection.receive("greet, or ask for a name")
        if message["type"] == "ask" and message.get("field") == "name":
            connection.send(
                {"type": "answer", "field": "name", "value": name or new_login()}
            )
            message, _ = connection.receive("greet")
        if message["type"] != "greet":
            raise CheckFailed(
                "greet (or ask for a name, then greet)", describe(message)
            )
        return message

    def log_in(self, connection):
        """
        Log in (auth mode) with the token of the checker's own login.
        """
        account = self.account()
        connection.expect_ask("login")
        connection.send({"type": "token", "token": account.token})
        connection.expect("auth_ok", via="token", login=account.login)
        connection.expect("greet")

    def account(self, report_failure=False):
        """
        The login this run registered for itself (registered on first use).

        @param report_failure: raise L{CheckFailed} if registering fails
            (the registration check); other checks are skipped instead.
        """
        if self._account is None and self._account_failure is None:
            try:
                self._account = self.register()
            except CheckFailed as e:
                self._account_failure = e
                if report_failure:
                    raise
        if self._account is None:
            e = self._account_failure
            if report_failure:
                raise CheckFailed(e.expected, e.got)
            raise Skip(
                "needs a login of the checker's own, and registering one "
                f"failed (see auth.register): expected {e.expected}; got {e.got}"
            )
        return self._account

    def register(self):
        """
        Register a new login, checking each step, and quit.

        @rtype: L{Account}
        """
        login, password = new_login(), new_password()
        connection = self.connect()
        connection.expect_ask("login")
        connection.send({"type": "answer", "field": "login", "value": login})
        connection.expect("ask", field="new_password", secret=True)
        connection.send({"type": "answer", "field": "new_password", "value": password})
        ok = connection.expect("auth_ok", via="register", login=login)
        token = check_token(ok)
        connection.expect("greet", known=False, name=login)
        connection.quit()
        return Account(login, password, token)


def check_token(auth_ok):
    """
    The new token of an C{auth_ok}, checked: a string, and an C{expires}
    in the future (unix seconds, an integer).
    """
    token, expires = auth_ok.get("token"), auth_ok.get("expires")
    if not (isinstance(token, str) and token):
        raise CheckFailed("auth_ok with a new token (a string)", describe(auth_ok))
    if type(expires) is not int or expires <= time.time():
        raise CheckFailed(
            "auth_ok with expires: the token's expiry in unix seconds "
            "(an integer, in the future)",
            describe(auth_ok),
        )
    return token
