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

C{doPoll} reads private parts of Twisted's epoll reactor, which it gets
from L{echotwist.twisted_internals}; when that module's start-up check
fails, L{install} installs Twisted's own epoll reactor instead (with one
warning in the log) and L{install_default} leaves the choice to Twisted.

C{makeService} installs this reactor when none is installed yet, epoll is
there and the check passes (C{twistd -n echolab}); C{twistd -r
echolab-epoll} names it (the plugin C{twisted/plugins/echolab_reactor.py});
C{twistd -r NAME} still picks any other.
"""

import errno
import select
import sys

from twisted.internet import epollreactor
from twisted.internet.main import installReactor
from twisted.python import log

from echotwist import twisted_internals


class EPollReactor(epollreactor.EPollReactor):
    """
    L{epollreactor.EPollReactor}, handling each event with a plain call.
    """

    def __init__(self):
        super().__init__()
        self._echolab_parts = twisted_internals.epoll_parts(self)

    def doPoll(self, timeout):
        if timeout is None:
            timeout = -1  # wait until something happens
        poll, selectables, handle = self._echolab_parts
        try:
            events = poll(timeout, len(selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
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


def usable():
    """
    @return: whether this system has epoll and the running Twisted passes
        the check of what L{EPollReactor} uses of its internals (the first
        call runs the check, logging one warning if it fails).
    """
    return hasattr(select, "epoll") and twisted_internals.usable("reactor")


def install():
    """
    Install an L{EPollReactor} as the global reactor, or Twisted's own epoll
    reactor if the running Twisted fails the check (L{usable}).
    """
    reactor = EPollReactor() if usable() else epollreactor.EPollReactor()
    installReactor(reactor)
    return reactor


def install_default():
    """
    Install an L{EPollReactor} if no reactor is installed yet, this system
    has epoll and the running Twisted passes the check of its internals;
    otherwise leave the choice (C{twistd -r}, else Twisted's default) alone.

    @return: the global reactor.
    """
    if "twisted.internet.reactor" not in sys.modules and usable():
        install()
    from twisted.internet import reactor

    return reactor
