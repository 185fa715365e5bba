"""
The echolab epoll reactor as a Twisted reactor plugin: C{twistd
--help-reactors} lists it, C{twistd -r echolab-epoll} picks it. The module
is named by a string, so listing reactors does not import it. If the
running Twisted fails echolab's check of the internals the reactor uses,
Twisted's own epoll reactor is installed instead (one warning in the log).
"""

from twisted.application.reactors import Reactor

echolab_epoll = Reactor(
    "echolab-epoll",
    "echotwist.reactor",
    "epoll, without the legacy log context per event (echolab; Linux).",
)
