# -*- test-case-name: tests.test_metrics -*-
"""
What the server tells whoever watches it (the metrics, L{echotwist.metrics})
about the few things that happen outside a connection's messages: how
login attempts end, and how long password hashes take.

Messages and bytes are not counted here: with metrics on, the factory
builds metered connections (L{echotwist.metrics}), which count per read;
with metrics off it builds the plain ones, whose code is unchanged, so
the per-message cost of metrics is nil when they are off. The calls here
happen once per login or hash (each costs milliseconds), so the observer
that does nothing (L{NO_OBSERVER}) costs nothing worth measuring.
"""

from zope.interface import Interface, implementer

# What a login attempt can come to (the "result" of IServerObserver.login).
OK = "ok"
REFUSED = "refused"  # a wrong password, an unknown token
RATE_LIMITED = "rate_limited"  # throttled, or too many hashes waiting
TAKEN = "taken"  # a registration lost the race for its login
ABANDONED = "abandoned"  # the client hung up before the verdict
RESULTS = (OK, REFUSED, RATE_LIMITED, TAKEN, ABANDONED)

# How (the "method").
PASSWORD, TOKEN, REGISTRATION = "password", "token", "registration"
METHODS = (PASSWORD, TOKEN, REGISTRATION)


class IServerObserver(Interface):
    """
    Told of the server's events that are not a connection's messages.
    """

    def login(method, result):
        """
        A login attempt by C{method} (one of L{METHODS}) came to C{result}
        (one of L{RESULTS}).
        """

    def hashed(seconds):
        """
        A password hash or check took C{seconds} on its thread.
        """


@implementer(IServerObserver)
class NoObserver:
    """
    Nobody watches: every call does nothing.
    """

    def login(self, method, result):
        pass

    def hashed(self, seconds):
        pass


NO_OBSERVER = NoObserver()
