"""
Tests for L{echotwist.service}: port fallback (lab task 4), the listening
line, start-up failures as one line, and the log file (lab task 3).
"""

import io
import os
import socket

from twisted.application.service import Application, Service
from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor, MemoryReactorClock
from twisted.logger import ILogObserver, Logger, eventAsText
from twisted.trial.unittest import SynchronousTestCase, TestCase

from echotwist import service as service_module
from echotwist.listening import (
    FallbackPortEndpoint,
    ListenerService,
    listen_with_fallback,
)
from echotwist.service import EchoService, StoresService
from echotwist.startup import StartupError
from echotwist.store import Database


class BusyReactor(MemoryReactor):
    """
    A L{MemoryReactor} on which some ports are taken.
    """

    def __init__(self, busy):
        super().__init__()
        self.busy = set(busy)

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port in self.busy:
            raise CannotListenError(
                interface, port, OSError(98, "Address already in use")
            )
        return super().listenTCP(port, factory, backlog, interface)


class FallbackTests(SynchronousTestCase):
    def test_first_free(self):
        """
        Taken ports are skipped; the first free one is used, on the given
        interface and backlog.
        """
        r = BusyReactor({9090, 9091})
        port = listen_with_fallback(r.listenTCP, Factory(), 9090, 10, "127.0.0.1", 1024)
        self.assertEqual(port.getHost().port, 9092)
        self.assertEqual([s[0] for s in r.tcpServers], [9092])
        self.assertEqual(r.tcpServers[0][2:], (1024, "127.0.0.1"))

    def test_tries_include_first(self):
        """
        C{tries} counts the first port: with 3 tries, 9090-9092.
        """
        r = BusyReactor({9090, 9091, 9092})
        e = self.assertRaises(
            StartupError,
            listen_with_fallback,
            r.listenTCP,
            Factory(),
            9090,
            3,
            "127.0.0.1",
            50,
        )
        self.assertEqual(
            str(e), "cannot listen on 127.0.0.1: ports 9090-9092 are all taken"
        )

    def test_any_port(self):
        """
        Port 0 (any free port) is one try.
        """
        r = BusyReactor({0})
        e = self.assertRaises(
            StartupError, listen_with_fallback, r.listenTCP, Factory(), 0, 10, "::1", 50
        )
        self.assertIn("cannot listen on ::1:0", str(e))

    def test_top_port(self):
        """
        Fallback stops at port 65535.
        """
        r = BusyReactor({65534, 65535})
        e = self.assertRaises(
            StartupError,
            listen_with_fallback,
            r.listenTCP,
            Factory(),
            65534,
            10,
            "127.0.0.1",
            50,
        )
        self.assertIn("65534-65535", str(e))


class Top(EchoService):
    def __init__(self, testcase):
        self.out, self.err = io.StringIO(), io.StringIO()
        super().__init__(
            reactor,
            os.path.join(testcase.mktemp() + ".log"),
            1000,
            2,
            30,
            self.out,
            self.err,
        )


class ListenerTests(SynchronousTestCase):
    def test_announce(self):
        """
        The listening line names the port really got, on stdout.
        """
        top = Top(self)
        r = BusyReactor({9090})
        factory = Factory()
        factory.say_goodbye = lambda: None
        ListenerService.on_port(
            r.listenTCP, factory, 9090, 10, "127.0.0.1", 50, top.announce
        ).setServiceParent(top)
        top.privilegedStartService()
        self.assertEqual(top.out.getvalue(), "listening on 127.0.0.1:9091\n")

    def test_ipv6_announce(self):
        """
        IPv6 addresses are bracketed in the listening line.
        """
        top = Top(self)
        ListenerService.on_port(
            MemoryReactor().listenTCP, Factory(), 7000, 1, "::1", 50, top.announce
        ).setServiceParent(top)
        top.privilegedStartService()
        self.assertEqual(top.out.getvalue(), "listening on [::1]:7000\n")

    def test_all_taken(self):
        """
        When every port is taken, start-up fails with one line on standard
        error and an exception, which twistd reports (status 1), in daemon
        mode too: it does not report L{SystemExit}.
        """
        top = Top(self)
        ListenerService.on_port(
            BusyReactor({5000, 5001}).listenTCP,
            Factory(),
            5000,
            2,
            "127.0.0.1",
            50,
            top.announce,
        ).setServiceParent(top)
        e = self.assertRaises(StartupError, top.privilegedStartService)
        self.assertEqual(
            str(e), "cannot listen on 127.0.0.1: ports 5000-5001 are all taken"
        )
        self.assertEqual(
            top.err.getvalue(),
            "echolab: cannot listen on 127.0.0.1: ports 5000-5001 are all taken\n",
        )
        self.assertEqual(top.out.getvalue(), "")

    def test_bad_database(self):
        """
        A database that cannot be opened stops start-up with one line.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"not a database" * 200)
        top = Top(self)
        StoresService(Database(path, reactor)).setServiceParent(top)
        self.assertRaises(StartupError, top.privilegedStartService)
        self.assertTrue(top.err.getvalue().startswith("echolab: "), top.err.getvalue())
        self.assertEqual(top.err.getvalue().count("\n"), 1)

    def test_unexpected_failure(self):
        """
        Any exception while starting is one line too, naming it, and is
        raised for twistd to report; what did start is stopped.
        """
        top = Top(self)
        stopped = []

        class Started(Service):
            def stopService(self):
                stopped.append(self)

        class Broken(Service):
            def privilegedStartService(self):
                raise PermissionError(13, "Permission denied", "/x/echolab.lock")

        first = Started()
        first.setServiceParent(top)
        Broken().setServiceParent(top)
        self.assertRaises(PermissionError, top.privilegedStartService)
        self.assertEqual(stopped, [first])
        self.assertEqual(
            top.err.getvalue(),
            "echolab: cannot start: PermissionError: [Errno 13] Permission "
            "denied: '/x/echolab.lock'\n",
        )


class LaterEndpoint:
    """
    An endpoint that answers when the test says, as one that has to ask
    something first would, after the services started.
    """

    def __init__(self):
        self.waiting = []

    def listen(self, factory):
        d = defer.Deferred()
        self.waiting.append(d)
        return d


class LateEndpointTests(SynchronousTestCase):
    def start(self, name="tcp:7000"):
        """
        A server on a L{MemoryReactorClock} with one listener whose endpoint
        has not answered once the services started. Returns the server, its
        reactor and the endpoint's L{Deferred}.
        """
        self.out, self.err = io.StringIO(), io.StringIO()
        r = MemoryReactorClock()
        top = EchoService(r, self.mktemp() + ".log", 1000, 2, 30, self.out, self.err)
        endpoint = LaterEndpoint()
        ListenerService(
            endpoint, Factory(), top.announce, lambda port: "there", name
        ).setServiceParent(top)
        top.privilegedStartService()
        top.startService()
        [waiting] = endpoint.waiting
        self.assertEqual((self.out.getvalue(), self.err.getvalue()), ("", ""))
        self.assertIs(top.console_out, self.out)  # (kept for the line)
        return top, r, waiting

    def test_listening_later(self):
        """
        The listening line is said once the endpoint answers; then the
        console is let go.
        """
        top, r, waiting = self.start()
        port = MemoryReactor().listenTCP(7000, Factory())
        waiting.callback(port)
        self.assertEqual(self.out.getvalue(), "listening on there\n")
        self.assertIsNone(top.console_out)
        [listener] = top
        self.assertIs(listener.listening, port)
        self.assertFalse(r.hasStopped)

    def test_failing_later(self):
        """
        An endpoint that fails after the services started fails start-up all
        the same: one line on standard error, the reactor stopped, and exit
        status 1, which twistd can no longer give.
        """
        statuses = []
        self.patch(service_module, "exit_status", statuses.append)
        top, r, waiting = self.start()
        r.running = True
        waiting.errback(CannotListenError("", 7000, OSError(98, "in use")))
        self.assertEqual(self.out.getvalue(), "")
        self.assertEqual(
            self.err.getvalue(),
            "echolab: cannot listen on tcp:7000: Couldn't listen on any:7000: "
            "[Errno 98] in use.\n",
        )
        self.assertIsNone(top.console_err)
        self.assertEqual(statuses, [1])
        self.assertTrue(r.hasStopped)
        self.successResultOf(top.stopService())

    def test_stopped_before_answer(self):
        """
        Stopped before its endpoint answered, the listener stops waiting for
        it, and the console is let go.
        """
        top, r, waiting = self.start()
        self.successResultOf(top.stopService())
        self.assertTrue(waiting.called)  # (cancelled)
        [listener] = top
        self.assertNoResult(listener.listened)
        self.assertIsNone(top.console_out)
        self.assertEqual((self.out.getvalue(), self.err.getvalue()), ("", ""))


class EndpointTests(SynchronousTestCase):
    def test_port_is_an_endpoint(self):
        """
        C{--port}'s fallback is an endpoint, answering at once.
        """
        endpoint = FallbackPortEndpoint(
            BusyReactor({9090}).listenTCP, 9090, 3, "127.0.0.1", 50
        )
        port = self.successResultOf(endpoint.listen(Factory()))
        self.assertEqual(port.getHost().port, 9091)
        endpoint = FallbackPortEndpoint(
            BusyReactor({9090}).listenTCP, 9090, 1, "127.0.0.1", 50
        )
        self.failureResultOf(endpoint.listen(Factory()), StartupError)

    def test_endpoint_fails_at_once(self):
        """
        An endpoint string that fails while the service starts fails
        start-up with one line naming it.
        """
        top = Top(self)
        r = BusyReactor({7000})
        ListenerService.on_endpoint(
            r, Factory(), "tcp:7000:interface=127.0.0.1", None, top.announce
        ).setServiceParent(top)
        e = self.assertRaises(StartupError, top.privilegedStartService)
        self.assertTrue(
            str(e).startswith("cannot listen on tcp:7000:interface=127.0.0.1: "), e
        )
        self.assertEqual(top.err.getvalue(), f"echolab: {e}\n")


class ConsoleTests(SynchronousTestCase):
    def duplicates(self, daemon=False):
        """
        A service on the console as L{makeService} makes it, attached to
        twistd's application: its duplicates of standard output and error
        are pipes' write ends here. Returns the service and the read ends.
        """
        reads, writes = [], {}
        for fd in (1, 2):
            read, write = os.pipe()
            self.addCleanup(os.close, read)
            reads.append(read)
            writes[fd] = os.fdopen(write, "w")
            self.addCleanup(writes[fd].close)
        self.patch(service_module, "console", writes.pop)
        top = EchoService(
            MemoryReactorClock(),
            self.mktemp() + ".log",
            1000,
            2,
            30,
            None,
            None,
            daemon=daemon,
        )
        self.assertEqual(len(writes), 2)  # (none taken yet)
        top.setServiceParent(Application("echolab"))
        self.addCleanup(top.logfile.close)
        self.assertEqual(writes, {})
        return (top, *reads)

    def test_daemon(self):
        """
        Attached to the application of a twistd that is about to daemonize,
        the service leaves failures to the daemon: twistd's parent process
        would only repeat them.
        """
        left = []
        self.patch(
            service_module, "leave_failures_to_the_daemon", lambda: left.append(1)
        )
        self.duplicates()
        self.assertEqual(left, [])
        self.duplicates(daemon=True)
        self.assertEqual(left, [1])

    def test_released_once_started(self):
        """
        Once started, the service closes its console: a daemon keeps no
        hold on the terminal or pipe it was started from (the reader sees
        the end), and writes nothing more there.
        """
        top, out_read, err_read = self.duplicates()
        ListenerService.on_port(
            MemoryReactor().listenTCP, Factory(), 7000, 1, "127.0.0.1", 50, top.announce
        ).setServiceParent(top)
        top.privilegedStartService()
        top.startService()
        self.assertEqual(os.read(out_read, 100), b"listening on 127.0.0.1:7000\n")
        self.assertEqual(os.read(out_read, 100), b"")
        self.assertEqual(os.read(err_read, 100), b"")
        self.assertIsNone(top.console_out)
        top.announce("listening on 127.0.0.1:7001")  # (nowhere, and no error)

    def test_released_on_failure(self):
        """
        A failed start says why and closes the console too.
        """
        top, out_read, err_read = self.duplicates()
        ListenerService.on_port(
            BusyReactor({7000}).listenTCP,
            Factory(),
            7000,
            1,
            "127.0.0.1",
            50,
            top.announce,
        ).setServiceParent(top)
        self.assertRaises(StartupError, top.privilegedStartService)
        self.assertEqual(os.read(out_read, 100), b"")
        self.assertEqual(
            os.read(err_read, 200),
            b"echolab: cannot listen on 127.0.0.1:7000: [Errno 98] Address already in use\n",
        )
        self.assertEqual(os.read(err_read, 100), b"")

    def test_unowned_kept(self):
        """
        A console the service was given (not duplicated for it) stays open.
        """
        out, err = io.StringIO(), io.StringIO()
        top = EchoService(
            MemoryReactor(), self.mktemp() + ".log", 1000, 2, 30, out, err
        )
        top.privilegedStartService()
        top.startService()
        self.assertFalse(out.closed)
        self.assertFalse(err.closed)


class RealPortTests(TestCase):
    def test_held_port(self):
        """
        With a port held by another socket, the server listens on a later one.
        """
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        taken = held.getsockname()[1]
        port = listen_with_fallback(
            reactor.listenTCP, Factory(), taken, 5, "127.0.0.1", 50
        )
        self.addCleanup(port.stopListening)
        self.assertGreater(port.getHost().port, taken)
        self.assertLessEqual(port.getHost().port, taken + 4)


class LogFileTests(SynchronousTestCase):
    def test_application_logs_to_file(self):
        """
        Attached to a twistd application, the service makes its log file the
        application's log observer; events go there, with mode 0600.
        """
        top = Top(self)
        application = Application("echolab")
        top.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        Logger(observer=observer).info("connection from {peer}", peer="10.0.0.1:5")
        top.logfile.close()
        with open(top.log_path) as f:
            self.assertIn("connection from 10.0.0.1:5", f.read())
        self.assertEqual(os.stat(top.log_path).st_mode & 0o777, 0o600)
        self.assertEqual(top.out.getvalue(), "")

    def test_levels_and_tracebacks(self):
        """
        Debug events are left out; failures are written with their traceback.
        """
        top = Top(self)
        application = Application("echolab")
        top.setServiceParent(application)
        log = Logger(observer=application.getComponent(ILogObserver))
        log.debug("chatter {n}", n=1)
        try:
            raise ZeroDivisionError("on purpose")
        except ZeroDivisionError:
            log.failure("while serving {peer}", peer="10.0.0.9")
        log.warn("careful")
        top.logfile.close()
        with open(top.log_path) as f:
            text = f.read()
        self.assertNotIn("chatter", text)
        self.assertIn("while serving 10.0.0.9", text)
        self.assertIn("ZeroDivisionError", text)
        # the traceback's lines go on the entry's, marked with a tab
        self.assertRegex(text, r"\n\t\S*ZeroDivisionError: on purpose\n")
        self.assertRegex(
            text, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* \[\S+#warn\] careful\n"
        )

    def test_lines_as_twisted_formats_them(self):
        """
        Each line is the time and what Twisted's C{eventAsText} makes of the
        event, whether the server's quick formatting takes it (plain fields,
        attributes, indexes, format specs, non-ASCII) or leaves it to
        Twisted (a C{method()} field, a field that is missing).
        """

        class Thing:
            size = 5

            def name(self):
                return "called"

        events = [
            dict(format="connection from {peer}", peer="10.0.0.1:5"),
            dict(format="{t.size} {d[k]} {{x}} {n:>4}", t=Thing(), d=dict(k=1), n=3),
            dict(format="name {t.name()}", t=Thing()),
            dict(format="missing {nobody}"),
            dict(format="Привет, {name}", name="Мир"),
        ]
        top = Top(self)
        application = Application("echolab")
        top.setServiceParent(application)
        write_line = application.getComponent(ILogObserver)
        emitted = []

        def observe(event):
            emitted.append(event)
            write_line(event)

        log = Logger(observer=observe)
        for event in events:
            log.warn(**event)
        top.logfile.close()
        with open(top.log_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        expected = [eventAsText(e, includeTimestamp=False) for e in emitted]
        self.assertEqual([line.split(" ", 1)[1] for line in lines], expected)
        self.assertEqual(expected[1], f"[{log.namespace}#warn] 5 1 {{x}}    3")
        self.assertIn("called", expected[2])
        self.assertIn("Unable to format event", expected[3])

    def test_rotation(self):
        """
        The log file is rotated by size, keeping a bounded number of files.
        """
        top = Top(self)
        application = Application("echolab")
        top.setServiceParent(application)
        log = Logger(observer=application.getComponent(ILogObserver))
        for i in range(200):
            log.info("line {i} {pad}", i=i, pad="x" * 50)
        top.logfile.close()
        names = sorted(os.listdir(os.path.dirname(top.log_path)))
        base = os.path.basename(top.log_path)
        self.assertEqual(names, [base, base + ".1", base + ".2"])
