# -*- test-case-name: tests.test_twisted_internals -*-
"""
Every private Twisted name echolab uses, in one place, and the start-up
check that the running Twisted still has them and they still behave.

echolab's fast paths (L{echotwist.reactor}, L{echotwist.tcp}) and its
PROXY v2 parsing (L{echotwist.proxy}) reach into Twisted below its public
API; they get those names from here only. Twisted may rename or change any
of them in any release, so L{check} looks each up and runs each fast path
once on a local socket pair; a fast path whose check fails is not used
(stock Twisted is, with one warning in the log), rather than breaking.

What is used, by area (L{PRIVATE_NAMES}):

  - C{reactor}: C{twisted.internet.epollreactor.EPollReactor}'s
    C{_poller} (the C{select.epoll}), C{_selectables} (a dict, descriptor
    to selectable) and C{_doReadOrWrite(selectable, fd, event)}; our
    C{doPoll} replaces Twisted's.
  - C{tcp}: the write queue of C{twisted.internet.abstract.FileDescriptor}
    (C{_tempDataLen}, C{offset}, C{dataBuffer}, C{_writeDisconnecting}),
    and C{twisted.internet.tcp.Connection}'s C{socket} and C{TLS} (set by
    C{startTLS}, from C{twisted.internet._newtls}); the self-test also
    passes C{tcp.Server} a port with C{_realPortNumber}.
  - C{adopt}: C{twisted.internet.tcp.Port._fromListeningDescriptor}, so
    that a worker adopting its parent's listening socket (L{adopt_port})
    serves with echolab's transports (C{reactor.adoptStreamPort} makes
    Twisted's); without it, C{adoptStreamPort} is used.
  - C{proxy}: C{twisted.protocols.haproxy._v2parser.V2Parser} (C{PREFIX},
    C{feed(data)} giving C{(info, rest)}); without it, L{echotwist.proxy_v2}
    parses v2 headers.

Checked against the Twisted releases in L{CHECKED_VERSIONS}: C{setup.cfg}
pins that range, and C{.ci/twisted-range} runs the tests on its ends. (These
names, and the tests of what uses them, were also found to hold on 23.10.0,
24.3.0 and 24.7.0; the range starts at 26.4.0 for the rest of echolab:
before it, tests.test_service.LateEndpointTests.test_listening_later finds
the reactor stopped once a listener's endpoint answers late.)
"""

import socket
from types import SimpleNamespace

import twisted
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

CHECKED_VERSIONS = ("26.4.0", "26.10.0")

PRIVATE_NAMES = {
    "reactor": ("_poller", "_selectables", "_doReadOrWrite"),
    "tcp": (
        "_tempDataLen",
        "offset",
        "dataBuffer",
        "_writeDisconnecting",
        "socket",
        "TLS",
    ),
    "proxy": ("twisted.protocols.haproxy._v2parser.V2Parser",),
    "adopt": ("twisted.internet.tcp.Port._fromListeningDescriptor",),
}

log = Logger()


# -- reactor ---------------------------------------------------------------


def epoll_parts(reactor):
    """
    @return: C{(poll, selectables, handle)} of an epoll reactor: its epoll
        object's C{poll}, its dict of selectables by descriptor, and the
        method handling one event.
    """
    return reactor._poller.poll, reactor._selectables, reactor._doReadOrWrite


# -- tcp -------------------------------------------------------------------


def fast_socket(transport):
    """
    @return: C{transport}'s socket if bytes may be sent to it directly now
        (nothing queued, connected, not closing, no TLS), else L{None}.
    """
    if (
        transport._tempDataLen
        or transport.offset != len(transport.dataBuffer)
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnecting
        or transport.TLS  # bytes must go through TLS: never around it
    ):
        return None
    return transport.socket


# -- proxy -----------------------------------------------------------------


def _twisted_v2_parser():
    """
    @return: Twisted's v2 parser class if it is there and parses a header
        as expected, else a sentence saying what is wrong.
    """
    try:
        from twisted.protocols.haproxy._v2parser import V2Parser
    except ImportError as e:
        return f"no twisted.protocols.haproxy._v2parser.V2Parser ({e})"
    try:
        header = (
            V2Parser.PREFIX + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 192, 0, 2, 2])
        ) + b"\x15\xb3\x23\x82"
        info, rest = V2Parser().feed(header + b"after")
        assert rest == b"after", rest
        assert (info.source.host, info.source.port) == ("192.0.2.1", 5555)
        assert (info.destination.host, info.destination.port) == ("192.0.2.2", 9090)
    except Exception as e:
        return f"V2Parser does not parse as expected ({type(e).__name__}: {e})"
    return V2Parser


_found = _twisted_v2_parser()
if isinstance(_found, str):
    from echotwist.proxy_v2 import V2Parser

    _proxy_problem = _found
else:
    V2Parser = _found
    _proxy_problem = None
del _found


# -- the check -------------------------------------------------------------


def _missing(thing, area):
    return [n for n in PRIVATE_NAMES[area] if not hasattr(thing, n)]


class _Readable:
    def __init__(self, sock):
        self.sock = sock
        self.read = b""

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return "twisted_internals self-test"

    def doRead(self):
        self.read += self.sock.recv(100)

    def connectionLost(self, reason):
        pass


def _received(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def check_reactor():
    """
    Build a throwaway echolab epoll reactor and handle one event with it.

    @return: L{None} if it works, else a sentence saying what failed.
    """
    import select

    if not hasattr(select, "epoll"):
        return None  # (no epoll here: the reactor is not offered at all)
    from echotwist.reactor import EPollReactor  # (it imports this module)

    ours, theirs = socket.socketpair()
    reactor = None
    try:
        reactor = EPollReactor()
        missing = _missing(reactor, "reactor")
        if missing:
            return f"EPollReactor has no {', '.join(missing)}"
        readable = _Readable(ours)
        reactor.addReader(readable)
        theirs.send(b"x")
        reactor.doIteration(0)
        if readable.read != b"x":
            return "the reactor's doPoll did not handle a readable socket"
        reactor.removeReader(readable)
        if ours.fileno() in epoll_parts(reactor)[1]:
            return "a removed reader is still among _selectables"
        return None
    except Exception as e:
        return f"the reactor's self-test failed ({type(e).__name__}: {e})"
    finally:
        ours.close()
        theirs.close()
        if reactor is not None:
            _dispose(reactor)


def _dispose(reactor):
    """
    Close what a reactor that never ran holds (its epoll and its waker).
    """
    try:
        reactor.removeAll()
        waker = getattr(reactor, "waker", None)
        if waker is not None:
            waker.connectionLost(None)
        reactor._poller.close()
    except Exception:  # a leak, not a failure
        pass


def check_tcp():
    """
    Run the write-through path of a C{tcp.Server} on a socket pair: the
    queue reads as empty, then (after a queued write) as not, then (once
    drained) as empty again, and a direct send arrives after the queued
    bytes.

    @return: L{None} if it works, else a sentence saying what failed.
    """
    from twisted.internet.testing import MemoryReactorClock

    ours, theirs = socket.socketpair()
    try:
        theirs.setblocking(False)
        port = SimpleNamespace(_realPortNumber=0)
        transport = tcp.Server(
            ours, Protocol(), ("127.0.0.1", 0), port, 1, MemoryReactorClock()
        )
        missing = _missing(transport, "tcp")
        if missing:
            return f"tcp.Server has no {', '.join(missing)}"
        if fast_socket(transport) is not ours:
            return "a new connection's write queue does not read as empty"
        tcp.Server.write(transport, b"queued,")
        if fast_socket(transport) is not None:
            return "a queued write is not seen in the write queue"
        transport.doWrite()
        sock = fast_socket(transport)
        if sock is not ours:
            return "a drained write queue does not read as empty"
        sock.send(b"direct")
        received = _received(theirs)
        if received != b"queued,direct":
            return f"the peer received {received!r}, not b'queued,direct'"
        transport.loseConnection()
        if fast_socket(transport) is not None:
            return "a closing connection still takes direct writes"
        return None
    except Exception as e:
        return f"the write-through self-test failed ({type(e).__name__}: {e})"
    finally:
        ours.close()
        theirs.close()


_CHECKS = {"reactor": check_reactor, "tcp": check_tcp}
_problems = None


def problems():
    """
    Run the start-up check once (later calls give the same answer); log one
    warning naming whatever failed.

    @return: a dict, area (C{"reactor"}, C{"tcp"}, C{"proxy"}) to a
        sentence saying what failed, for each area that did.
    """
    global _problems
    if _problems is None:
        found = {area: run() for area, run in _CHECKS.items()}
        found["proxy"] = _proxy_problem
        _problems = {area: p for area, p in found.items() if p}
        if _problems:
            log.warn(
                "Twisted {version} (echolab is checked with {checked}) fails "
                "echolab's check of the Twisted internals it uses, so stock "
                "Twisted is used instead for: {failed}",
                version=twisted.__version__,
                checked=" to ".join(CHECKED_VERSIONS),
                failed="; ".join(f"{a}: {p}" for a, p in sorted(_problems.items())),
            )
    return _problems


def usable(area):
    """
    @return: whether the fast path of C{area} (C{"reactor"}, C{"tcp"}) passed
        the start-up check.
    """
    return area not in problems()


def adopt_port(reactor, port_class, fd, family, factory):
    """
    C{reactor.adoptStreamPort(fd, family, factory)}, listening with
    C{port_class} (a C{tcp.Port} subclass) when the C{tcp} fast path
    passed its check and Twisted still adopts through that class method.
    """
    adopt = getattr(port_class, "_fromListeningDescriptor", None)
    if adopt is None or not usable("tcp"):
        return reactor.adoptStreamPort(fd, family, factory)
    port = adopt(reactor, fd, family, factory)
    port.startListening()
    return port


def _forget():
    """
    (For tests: run the check again on the next call.)
    """
    global _problems
    _problems = None


__all__ = [
    "CHECKED_VERSIONS",
    "PRIVATE_NAMES",
    "V2Parser",
    "adopt_port",
    "epoll_parts",
    "fast_socket",
    "problems",
    "usable",
]
