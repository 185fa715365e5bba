"""
What many tests share: servers built the way the real one is (with a
cheap password hash and, for unit tests, stores that answer at once), and
clients that speak frames.
"""

import contextlib
import io
import os
import shutil
import tempfile

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from twisted.application.service import Application
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import directlyProvides

from echotwist import tap, wire
from echotwist.auth import Accounts
from echotwist.factory import EchoFactory
from echotwist.framing import FrameReceiver
from echotwist.hashing import Hasher
from echotwist.passwords import _context
from echotwist.listening import ListenerService
from echotwist.settings import Settings
from echotwist.credentials import CredentialStore
from echotwist.store import Database, IdentityStore
from echotwist.throttle import Limits, LoginThrottle
from echotwist.wire import decode_message, encode_message


# Hypothesis as Twisted's own test suite configures it
# (twisted/trial/test/__init__.py): the same examples on every run, no
# deadline and no "too slow" health check (a loaded machine is not a bug);
# no example database either, so runs do not depend on earlier ones.
HYPOTHESIS = hypothesis_settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def cheap_context():
    """
    argon2id at its cheapest (about a millisecond): for tests only, which
    hash hundreds of passwords. Production refuses these parameters.
    """
    return _context(memory_kib=1024, time_cost=1)


def frame(message):
    """
    One framed message from a dict (or raw bytes as the payload).
    """
    return wire.frame(
        message if isinstance(message, bytes) else encode_message(message)
    )


def unframe(data):
    """
    Split bytes written by a server into messages, checking that nothing
    is left over.
    """
    return [decode_message(payload) for payload in wire.split_frames(data)]


class InlineDatabase(Database):
    """
    A L{Database} that runs each call at once on the calling thread, so
    unit tests of sessions and stores are synchronous (the real one runs
    them on its own thread; end-to-end tests use that).
    """

    def open(self):
        from echotwist.store import open_database

        self._db = open_database(self.path)

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def run(self, function, *args):
        return defer.maybeDeferred(function, *args)


class InlineHasher(Hasher):
    """
    A L{Hasher} hashing at once on the calling thread.
    """

    def _run(self, function, *args):
        return defer.maybeDeferred(function, *args)


def make_database(testcase, in_memory=False):
    """
    A synchronous L{InlineDatabase} in a temporary directory, closed when
    the test ends.

    @param in_memory: put it on a RAM file system (C{/dev/shm}) if there is
        one, where commits cost no disk flush: for tests that commit
        thousands of times and test something other than durability.
    """
    if in_memory and os.path.isdir("/dev/shm"):
        path = tempfile.mkdtemp(prefix="echolab-test-", dir="/dev/shm")
        testcase.addCleanup(shutil.rmtree, path, True)
    else:
        path = os.path.join(testcase.mktemp())
        os.makedirs(path)
    database = InlineDatabase(os.path.join(path, "echolab.db"), None)
    database.open()
    testcase.addCleanup(database.close)
    return database


def empty_database(database):
    """
    Forget every identity, user and token in C{database}, so one database
    can serve many short-lived factories (Hypothesis examples).
    """
    database.write(
        ("DELETE FROM identities", ()),
        ("DELETE FROM tokens", ()),
        ("DELETE FROM users", ()),
    )


def make_factory(
    testcase,
    mode="echo",
    clock=None,
    settings=None,
    limits=None,
    database=None,
    hasher=None,
    **overrides,
):
    """
    A server factory as C{makeService} builds it, with synchronous stores in
    a temporary directory (or in C{database}) and a cheap hash (computed at
    once unless another C{hasher} is given).
    """
    clock = clock or Clock()
    settings = settings or Settings(mode=mode, **overrides)
    identities = accounts = None
    if mode != "echo":
        if database is None:
            database = make_database(testcase)
        identities = IdentityStore(database, clock)
        accounts = Accounts(
            CredentialStore(database, clock),
            hasher or InlineHasher(cheap_context(), None),
            LoginThrottle(clock, limits or Limits()),
            clock,
            settings.token_ttl,
        )
    return EchoFactory(settings, clock, identities, accounts)


class HalfCloseableTransport(StringTransport):
    """
    A L{StringTransport} that, like TCP, can close its writing side alone.
    """

    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


class Conversation:
    """
    One server connection over a L{StringTransport}: send messages, read
    the replies as dicts.
    """

    def __init__(self, factory, host="10.0.0.7", port=40000, tls=False):
        """
        @param tls: whether the transport says it is TLS (L{ISSLTransport}),
            its handshake still to come.
        """
        self.factory = factory
        self.transport = HalfCloseableTransport(
            peerAddress=IPv4Address("TCP", host, port)
        )
        if tls:
            directlyProvides(self.transport, ISSLTransport)
        self.protocol = factory.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def send(self, *messages):
        self.protocol.dataReceived(b"".join(frame(m) for m in messages))

    def send_bytes(self, data):
        self.protocol.dataReceived(data)

    def replies(self):
        """
        The messages written since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return unframe(data)

    def types(self):
        return [r["type"] for r in self.replies()]

    @property
    def closing(self):
        """
        Whether the server began closing (a half-close or an abort).
        """
        return self.protocol.closing

    def lose(self):
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionDone()))


class MessageClient(FrameReceiver):
    """
    A Twisted client for end-to-end tests: every message received goes to a
    L{defer.DeferredQueue}.
    """

    MAX_LENGTH = 8 * 65536

    def connectionMade(self):
        self.queue = defer.DeferredQueue()
        self.lost = defer.Deferred()

    def stringReceived(self, payload):
        self.queue.put(decode_message(payload))

    def connectionLost(self, reason):
        self.lost.callback(None)

    def send(self, message):
        self.sendString(encode_message(message))

    def next(self, timeout=10):
        """
        The next message, failing the test if none comes within C{timeout}.
        """
        d = self.queue.get()
        timer = reactor.callLater(timeout, d.cancel)
        d.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
        return d

    @defer.inlineCallbacks
    def next_of(self, kind):
        """
        Skip messages until one of type C{kind}.
        """
        while True:
            message = yield self.next()
            if message["type"] == kind:
                return message


def connect(port, host="127.0.0.1", source=None):
    """
    @param source: the local address to connect from (any of 127/8 works
        on Linux, so ident mode sees a client of its own), or L{None}.
    @return: a L{Deferred} firing with a L{MessageClient} connected over
        real loopback TCP.
    """
    bind = (source, 0) if source else None
    endpoint = TCP4ClientEndpoint(reactor, host, port, bindAddress=bind)
    return connectProtocol(endpoint, MessageClient())


class ServerTestCase(TestCase):
    mode = "echo"
    args = ()

    def start_server(self, data_dir=None, hash_context=None, application=False):
        self.data_dir = data_dir or os.path.abspath(self.mktemp())
        options = tap.Options()
        options._stdin = None
        options.parseOptions(
            [
                "--port",
                "0",
                "--mode",
                self.mode,
                "--data-dir",
                self.data_dir,
                *self.args,
            ]
        )
        self.out = io.StringIO()
        service = tap.makeService(
            options, stdout=self.out, hash_context=hash_context or cheap_context()
        )
        if application:
            # As under twistd: the service installs its log file as the
            # application's observer, and twistd starts logging to it.
            app = Application("echolab")
            service.setServiceParent(app)
            observer = app.getComponent(ILogObserver)
            globalLogPublisher.addObserver(observer)
            self.addCleanup(globalLogPublisher.removeObserver, observer)
            self.addCleanup(service.logfile.close)  # (twistd's exit closes it)
        try:
            service.privilegedStartService()
            service.startService()
        except BaseException:
            # Stop what did start (each part on its own: some cannot stop
            # unstarted): its threads would keep the test run from exiting.
            for child in reversed(list(service)):
                with contextlib.suppress(Exception):
                    child.stopService()
            raise
        self.service = service
        listeners = [s for s in service if isinstance(s, ListenerService)]
        self.port = listeners[0].listening.getHost().port if listeners else None
        return service

    @defer.inlineCallbacks
    def stop_server(self):
        if self.service.running:
            yield self.service.stopService()

    def setUp(self):
        self.start_server()
        self.addCleanup(self.stop_server)

    @defer.inlineCallbacks
    def client(self):
        c = yield connect(self.port)
        self.addCleanup(self.close, c)
        welcome = yield c.next()
        self.assertEqual(welcome["type"], "welcome")
        return c

    @defer.inlineCallbacks
    def close(self, c):
        c.transport.loseConnection()
        yield c.lost
