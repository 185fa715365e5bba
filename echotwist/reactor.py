# -*- test-case-name: tests.test_reactor -*-
"""
Twisted's epoll reactor, without the legacy log context around each event.

For every ready socket, Twisted's reactors call C{log.callWithLogger}: it
asks the connection for its log prefix and pushes a copy of the legacy
logging context (a dict) for the read, so that C{twisted.python.log.msg}
calls made meanwhile name the connection. That costs about 2.2 us of the
6.4 us of Python a 64-byte ping-pong takes here (C{docs/performance.md}).
echolab logs with C{twisted.logger}, which does not read that context; a
legacy message logged while an event is handled (Twisted's "Unhandled
Error", say) is still written, only without the connection's prefix.

C{makeService} installs this reactor when none is installed yet and epoll
is there (C{twistd -n echolab}); C{twistd -r NAME} still picks any other.
"""

import errno
import select
import sys

from twisted.internet import epollreactor
from twisted.internet.main import installReactor
from twisted.python import log


class EPollReactor(epollreactor.EPollReactor):
    """
    L{epollreactor.EPollReactor}, handling each event with a plain call.
    """

    def doPoll(self, timeout):
        if timeout is None:
            timeout = -1  # wait until something happens
        try:
            events = self._poller.poll(timeout, len(self._selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        handle = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:  # removed by an earlier event of this poll
                continue
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:  # as callWithLogger: log it and go on
                log.err(system=_log_prefix(selectable))

    doIteration = doPoll


def _log_prefix(selectable):
    try:
        return selectable.logPrefix()
    except BaseException:
        return "(buggy logPrefix method)"


def install():
    """
    Install an L{EPollReactor} as the global reactor.
    """
    reactor = EPollReactor()
    installReactor(reactor)
    return reactor


def install_default():
    """
    Install an L{EPollReactor} if no reactor is installed yet and this
    system has epoll; otherwise leave the choice (C{twistd -r}) alone.

    @return: the global reactor.
    """
    if "twisted.internet.reactor" not in sys.modules and hasattr(select, "epoll"):
        install()
    from twisted.internet import reactor

    return reactor
