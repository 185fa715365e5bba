# -*- test-case-name: tests.test_factory -*-
"""
L{EchoFactory}: what all connections share. The settings, the identity and
credential stores, the connection limits, and the clock that times
connections out.
"""

from collections import Counter

from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from echotwist import __version__
from echotwist import messages as m
from echotwist.addresses import is_loopback
from echotwist.i18n import N_, _
from echotwist.protocol import ServerProtocol
from echotwist.proxy import IClaimedAddress
from echotwist.session import SESSIONS

SWEEP_INTERVAL = 1.0


def on_this_machine(connection):
    """
    Whether C{connection}'s client is on this machine: its address is
    loopback (or a UNIX socket's C{local}), and its socket's own, not one
    claimed in a PROXY header, which anyone who can reach a C{haproxy:} port
    can claim.
    """
    return is_loopback(connection.address) and not IClaimedAddress.providedBy(
        connection.transport
    )


class EchoFactory(ServerFactory):
    """
    Builds a L{ServerProtocol} per connection, and holds what they share.

    @ivar settings: the L{echotwist.settings.Settings}.
    @ivar identities: the L{echotwist.store.IdentityStore} (ident mode).
    @ivar accounts: the L{echotwist.auth.Accounts} (auth mode).
    @ivar clock: an C{IReactorTime}, for timeouts.
    @ivar connections: the connections being served.
    @ivar waiting: the connections not served yet that count toward the
        limit meanwhile (see L{admit_waiting}).
    """

    protocol = ServerProtocol
    noisy = False
    log = Logger()
    version = __version__
    _all_closed = None

    def __init__(self, settings, clock, identities=None, accounts=None):
        self.settings = settings
        self.clock = clock
        self.identities = identities
        self.accounts = accounts
        self.session_class = SESSIONS.get(settings.mode)  # (raw: none)
        self.connections = set()
        self.waiting = set()
        self._per_address = Counter()
        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = clock

    def startFactory(self):
        self._sweeper.start(SWEEP_INTERVAL, now=False)

    def stopFactory(self):
        if self._sweeper.running:
            self._sweeper.stop()

    def admit(self, connection):
        """
        Count a new connection in, unless it is one too many.

        @return: L{None} when admitted, else why not.
        """
        settings = self.settings
        if self._full():
            return N_("too many connections")
        address = connection.address
        crowded = self._per_address[address] >= settings.max_per_address
        if crowded and not on_this_machine(connection):
            return N_("too many connections from your address")
        self.connections.add(connection)
        self._per_address[address] += 1
        connection.counted = True
        return None

    def admit_waiting(self, waiting):
        """
        Count in a connection that is not served yet: one whose PROXY header
        (and so its client's address) is still to come. It counts toward
        C{max_connections} meanwhile, or connections that never send their
        header could pile up past the limit. L{release_waiting} counts it
        out, before L{admit} counts it in as a served connection.

        @return: whether it was admitted.
        """
        if self._full():
            return False
        self.waiting.add(waiting)
        return True

    def release_waiting(self, waiting):
        self.waiting.discard(waiting)

    def _full(self):
        return (
            len(self.connections) + len(self.waiting) >= self.settings.max_connections
        )

    def release(self, connection):
        """
        Count a connection out.
        """
        self.connections.discard(connection)
        address = connection.address
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]
        if not self.connections and self._all_closed is not None:
            all_closed, self._all_closed = self._all_closed, None
            all_closed.callback(None)

    def session_for(self, connection):
        return self.session_class(connection, self)

    def _sweep(self):
        now = self.clock.seconds()
        for connection in list(self.connections):
            connection.check_timeouts(now)

    def end_sessions(self, login_key, *messages):
        """
        Send C{messages} to the sessions logged in as C{login_key} (a login
        in lower case; L{None}: every logged-in session) and close them: an
        administrator deleted the account, reset its password or revoked
        its tokens (L{echotwist.changes}). A scan of the connections, as
        such changes are rare: no index to keep up on every login.

        @return: how many sessions were ended.
        """
        ended = 0
        for connection in list(self.connections):
            account = getattr(connection.session, "account", None)
            if account is None or connection.closing:
                continue
            if login_key is None or account.lower() == login_key:
                connection.finish(*messages)
                ended += 1
        return ended

    def say_goodbye(self):
        """
        Send C{bye} to every client and close: the server is stopping.

        @return: a L{Deferred} that fires once every connection is closed
            (each is aborted if it takes longer than the linger time).
        """
        if not self.connections:
            return defer.succeed(None)
        self._all_closed = defer.Deferred()
        goodbye = _("The server is shutting down.")
        for connection in list(self.connections):
            connection.finish(m.bye(goodbye))
        return self._all_closed
