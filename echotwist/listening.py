# -*- test-case-name: tests.test_service -*-
"""
Listening, one way for every kind of address: C{--port} (with its
fallback to the next free port) and C{--listen} endpoint strings are both
L{IStreamServerEndpoint}s, listened on by a L{ListenerService}, which
announces the address really got on the console.
"""

from functools import partial

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.internet.defer import CancelledError
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from echotwist.i18n import N_
from echotwist.prompts import format_address
from echotwist.startup import StartupError

log = Logger()


def listen_with_fallback(listen, factory, port, tries, interface, backlog):
    """
    Listen on C{port}, or the first free one of the C{tries} ports from it
    (C{port} 0 takes any free port, in one try).

    @param listen: L{IReactorTCP.listenTCP}, or a function like it.
    @return: the C{IListeningPort}.
    @raise StartupError: when every port is taken.
    """
    last = port if port == 0 else min(65535, port + tries - 1)
    for candidate in range(port, last + 1):
        try:
            return listen(candidate, factory, backlog=backlog, interface=interface)
        except CannotListenError as e:
            log.info(
                "port {port} on {interface} is taken: {why}",
                port=candidate,
                interface=interface,
                why=str(e.socketError),
            )
            error = e
    if last == port:
        raise StartupError(
            N_("cannot listen on {interface}:{port}: {why}"),
            interface=interface,
            port=port,
            why=error.socketError,
        )
    raise StartupError(
        N_("cannot listen on {interface}: ports {port}-{last} are all taken"),
        interface=interface,
        port=port,
        last=last,
    )


@implementer(IStreamServerEndpoint)
class FallbackPortEndpoint:
    """
    C{--port} as an endpoint, so that it is listened on as any other: the
    first free port of C{tries} from C{port} (L{listen_with_fallback}).
    """

    def __init__(self, listen, port, tries, interface, backlog):
        """
        @param listen: L{IReactorTCP.listenTCP}, or a function like it
            (L{echotwist.tcp.listen_tcp}, for its transports).
        """
        self._listen = listen
        self.port = port
        self.tries = tries
        self.interface = interface
        self.backlog = backlog

    def listen(self, factory):
        return defer.execute(
            listen_with_fallback,
            self._listen,
            factory,
            self.port,
            self.tries,
            self.interface,
            self.backlog,
        )


def endpoint_from(reactor, description, backlog=None):
    """
    A server endpoint from a Twisted endpoint string (C{tcp:}, C{tcp6:},
    C{ssl:}, C{unix:}), or C{haproxy:} followed by one of those for
    connections that start with a PROXY header.

    @param backlog: the listen backlog, unless the string names one
        (Twisted's default of 50 drops connects from a burst).
    """
    if backlog is not None and "backlog=" not in description:
        description += f":backlog={backlog}"
    if description.startswith("haproxy:"):
        from echotwist.proxy import ProxyEndpoint

        inner = description[len("haproxy:") :]
        return ProxyEndpoint(endpoints.serverFromString(reactor, inner), reactor)
    return endpoints.serverFromString(reactor, description)


def _on_interface(interface, listening):
    """
    Where C{--port} listens: the interface as given, and the port got.
    """
    return format_address(interface, listening.getHost().port)


def _with_kind(describe, kind, listening):
    """
    Where C{describe} says C{listening} listens, and what is served there.
    """
    return f"{describe(listening)} ({kind})"


def _by_kind(scheme, listening):
    """
    Where an endpoint string listens, and what kind of endpoint it is.
    """
    host = listening.getHost()
    if hasattr(host, "port"):
        where = format_address(host.host, host.port)
    else:
        name = host.name.decode() if isinstance(host.name, bytes) else host.name
        where = f"unix:{name}"
    return f"{where} ({scheme})"


class ListenerService(StreamServerEndpointService):
    """
    Listen on an endpoint, then announce where (C{listening on ...}).

    Endpoints may answer at once or later. One that fails while the
    service starts makes starting fail (as Twisted's C{strports} services
    do), so that twistd reports it; one that answers later is told through
    L{listened}, which the server waits on before it lets go of the
    console.

    @ivar listening: the C{IListeningPort} once listening, else L{None}.
    @ivar listened: a L{Deferred} that fires with the C{IListeningPort}
        once listening, or fails with the reason (a L{StartupError} that
        says where) if listening fails after the service started. It does
        not fire when starting fails at once, nor when the service stops
        before the endpoint answered.
    """

    listening = None

    def __init__(self, endpoint, factory, announce, describe, name=None):
        """
        @param announce: says a line on the console and in the log.
        @param describe: where a C{IListeningPort} listens, as the
            listening line names it.
        @param name: what the endpoint was called, for the line saying it
            failed; L{None} if its own exceptions say it (L{StartupError}s,
            and anything unexpected is reported as such).
        """
        super().__init__(endpoint, factory)
        self.announce = announce
        self.describe = describe
        self.name = name
        self.listened = defer.Deferred()
        self._late, self._failed_now = False, None

    @classmethod
    def on_port(
        cls, listen, factory, port, tries, interface, backlog, announce, kind=None
    ):
        """
        Listen on C{--port}, with its fallback (L{FallbackPortEndpoint}).

        @param kind: what is served there, if not the framed protocol
            (C{"raw"}), for the listening line.
        """
        endpoint = FallbackPortEndpoint(listen, port, tries, interface, backlog)
        describe = partial(_on_interface, interface)
        if kind is not None:
            describe = partial(_with_kind, describe, kind)
        return cls(endpoint, factory, announce, describe)

    @classmethod
    def on_endpoint(cls, reactor, factory, description, backlog, announce, kind=None):
        """
        Listen on a C{--listen} endpoint string (L{endpoint_from}).

        @param kind: what is served there, if not the framed protocol
            (C{"raw"}), for the listening line.
        """
        scheme = description.split(":", 1)[0]
        if kind is not None:
            scheme = f"{scheme}, {kind}"
        return cls(
            endpoint_from(reactor, description, backlog),
            factory,
            announce,
            partial(_by_kind, scheme),
            description,
        )

    def privilegedStartService(self):
        """
        Listen, raising (a L{StartupError} that says where) if the endpoint
        fails at once.
        """
        service.Service.privilegedStartService(self)
        self._late, self._failed_now = False, None
        self._waitingForPort = self.endpoint.listen(self.factory)
        self._waitingForPort.addCallbacks(self._listening, self._not_listening)
        self._late = True
        if self._failed_now is not None:
            error, self._failed_now = self._failed_now, None
            raise error

    def _listening(self, listening):
        self.listening = listening
        self.announce(N_("listening on {where}"), where=self.describe(listening))
        self.listened.callback(listening)
        return listening

    def _not_listening(self, reason):
        """
        Say why listening failed: raised by L{privilegedStartService} if it
        failed at once, told through L{listened} if later. Nothing to stop.
        """
        if reason.check(CancelledError):
            return None
        error = reason.value
        if self.name is not None and not isinstance(error, StartupError):
            error = StartupError(
                N_("cannot listen on {name}: {why}"),
                name=self.name,
                why=reason.getErrorMessage(),
            )
        if self._late:
            self.listened.errback(error)
        else:
            self._failed_now = error
        return None

    def stopService(self):
        """
        Stop listening, or stop waiting for the endpoint.
        """
        self.listening = None
        if self._waitingForPort is None:  # (never started)
            return service.Service.stopService(self)
        return super().stopService()
