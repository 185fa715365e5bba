"""
Tests for L{echotwist.metrics}: what metered connections count, over a
L{StringTransport}, and the samples a scrape gives (the registry read as
Prometheus reads it); the reactor lag on a L{Clock}.
"""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist import observer as seen
from echotwist.metering import WHOLE_BELOW
from echotwist.metrics import LAG_INTERVAL, ServerMetrics
from echotwist.protocol import ServerProtocol
from echotwist.wire import HEADER_SIZE, split_frames
from tests.helpers import Conversation, frame, make_factory


def metered(testcase, mode="echo", **overrides):
    """
    A factory with metrics on, as C{makeService} builds it, and its
    L{ServerMetrics}.
    """
    clock = Clock()
    metrics = ServerMetrics(clock, "9.9.9", mode)
    factory = make_factory(
        testcase, mode, clock=clock, accounts_class=metrics.accounts, **overrides
    )
    metrics.watch(factory)
    return factory, metrics


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


class CountingTests(SynchronousTestCase):
    def setUp(self):
        self.factory, self.metrics = metered(self)
        self.c = Conversation(self.factory)

    def counts(self):
        names = ("messages_received", "messages_sent", "received_bytes", "sent_bytes")
        return {n: value(self.metrics, f"echolab_{n}_total") for n in names}

    def test_off_by_default(self):
        """
        A factory without metrics builds the plain connection class: its
        code is what runs when metrics are off.
        """
        self.assertIs(make_factory(self, "echo").protocol, ServerProtocol)
        self.assertIsNot(self.factory.protocol, ServerProtocol)

    def test_messages_and_bytes(self):
        """
        Frames and bytes in and out are counted exactly, whether a read
        holds one frame or many, and a frame split across reads counts
        once.
        """
        welcome = self.c.transport.value()
        sent = [frame({"type": "say", "text": f"m{i}"}) for i in range(16)]
        self.c.send_bytes(b"".join(sent))
        split = frame({"type": "say", "text": "split"})
        self.c.send_bytes(split[:3])
        self.c.send_bytes(split[3:])
        written = self.c.transport.value()
        self.assertEqual(len(list(split_frames(written))), 18)
        self.assertEqual(
            self.counts(),
            {
                "messages_received": 17,
                "messages_sent": 18,  # welcome and 17 echoes
                "received_bytes": sum(map(len, sent)) + len(split),
                "sent_bytes": len(written),
            },
        )
        self.assertGreater(len(written), len(welcome))

    def test_large_and_repeated(self):
        """
        Large replies (gathered as header and payload apart), replies at
        the edge of that size, and the echoes of a C{repeat} written one by
        one are counted as frames, exactly.
        """
        reads = [
            [WHOLE_BELOW - 30, WHOLE_BELOW + 30, 10, 5000],
            [10, 5000, 10],  # a large one between small ones
            [100] * 30,  # many small ones, more than WHOLE_BELOW in all
        ]
        for sizes in reads:
            self.c.send(*[{"type": "say", "text": "x" * n} for n in sizes])
        self.c.send({"type": "say", "text": "again", "repeat": 5})
        written = self.c.transport.value()
        frames = list(split_frames(written))
        self.assertEqual(len(frames), 1 + 4 + 3 + 30 + 5)
        counts = self.counts()
        self.assertEqual(counts["messages_sent"], len(frames))
        self.assertEqual(counts["sent_bytes"], len(written))
        self.assertEqual(counts["messages_received"], 4 + 3 + 30 + 1)
        self.assertNotIn(HEADER_SIZE, [len(f) for f in frames])

    def test_errors_by_code(self):
        """
        Error messages are counted by code; every known code is there at 0.
        """
        self.c.send_bytes(frame(b"not json"))
        self.c.send({"type": "say", "text": "x", "repeat": 0})
        self.c.send({"type": "answer", "field": "name", "value": "x"})
        self.assertEqual(
            value(self.metrics, "echolab_errors_total", code="bad_message"), 1
        )
        self.assertEqual(
            value(self.metrics, "echolab_errors_total", code="bad_value"), 1
        )
        self.assertEqual(
            value(self.metrics, "echolab_errors_total", code="bad_state"), 1
        )
        self.assertEqual(value(self.metrics, "echolab_errors_total", code="busy"), 0)

    def test_connections(self):
        """
        Connections open and total, and those refused as C{busy}.
        """
        factory, metrics = metered(self, max_connections=2)
        first = Conversation(factory)
        Conversation(factory)
        refused = Conversation(factory)
        self.assertEqual(refused.replies()[0]["code"], "busy")
        first.lose()
        self.assertEqual(value(metrics, "echolab_connections_total"), 3)
        self.assertEqual(value(metrics, "echolab_connections_refused_total"), 1)
        self.assertEqual(value(metrics, "echolab_connections_open"), 1)
        self.assertEqual(value(metrics, "echolab_errors_total", code="busy"), 1)


class LoginTests(SynchronousTestCase):
    def test_logins_by_method_and_result(self):
        """
        Registrations, password and token logins are counted by result:
        a wrong password is C{refused}, an unknown token too.
        """
        factory, metrics = metered(self, "auth")
        c = Conversation(factory)
        c.send({"type": "answer", "field": "login", "value": "alice"})
        c.send(
            {
                "type": "answer",
                "field": "new_password",
                "value": "otters-in-the-rain-42",
            }
        )
        token = [r for r in c.replies() if r["type"] == "auth_ok"][0]["token"]
        c = Conversation(factory)
        c.send({"type": "answer", "field": "login", "value": "alice"})
        c.send({"type": "answer", "field": "password", "value": "wrong-wrong-wrong"})
        c.send(
            {"type": "answer", "field": "password", "value": "otters-in-the-rain-42"}
        )
        for t in (token, "not-a-token"):
            Conversation(factory).send({"type": "token", "token": t})

        def logins(method, result):
            return value(metrics, "echolab_logins_total", method=method, result=result)

        self.assertEqual(logins(seen.REGISTRATION, seen.OK), 1)
        self.assertEqual(logins(seen.PASSWORD, seen.REFUSED), 1)
        self.assertEqual(logins(seen.PASSWORD, seen.OK), 1)
        self.assertEqual(logins(seen.TOKEN, seen.OK), 1)
        self.assertEqual(logins(seen.TOKEN, seen.REFUSED), 1)
        self.assertEqual(logins(seen.PASSWORD, seen.RATE_LIMITED), 0)
        self.assertEqual(value(metrics, "echolab_errors_total", code="bad_password"), 1)

    def test_hash_and_store_timing(self):
        """
        The observer hears of each hash and store write, and the
        histograms count them.
        """
        clock = Clock()
        metrics = ServerMetrics(clock, "9.9.9", "auth")
        metrics.hashed(0.07)
        metrics.stored(0.002, failed=False)
        metrics.stored(5.5, failed=True)
        self.assertEqual(value(metrics, "echolab_hash_duration_seconds_count"), 1)
        self.assertEqual(
            value(metrics, "echolab_hash_duration_seconds_bucket", le="0.1"), 1
        )
        self.assertEqual(
            value(metrics, "echolab_store_write_duration_seconds_count"), 2
        )
        self.assertEqual(value(metrics, "echolab_store_write_failures_total"), 1)


class ScrapeTests(SynchronousTestCase):
    def test_text_format(self):
        """
        The registry renders as Prometheus text, with the server's own
        families, the process ones, and the version and mode.
        """
        factory, metrics = metered(self, "auth")
        names = {
            f.name
            for f in text_string_to_metric_families(
                generate_latest(metrics.registry).decode()
            )
        }
        for name in (
            "echolab_connections_open",
            "echolab_connections",
            "echolab_messages_received",
            "echolab_errors",
            "echolab_logins",
            "echolab_hash_duration_seconds",
            "echolab_store_write_duration_seconds",
            "echolab_reactor_lag_seconds",
            "process_cpu_seconds",
            "process_resident_memory_bytes",
            "python_gc_collections",
        ):
            self.assertIn(name, names)
        self.assertEqual(
            value(metrics, "echolab_info", version="9.9.9", mode="auth", worker=""), 1
        )

    def test_hash_queue(self):
        """
        With a hasher, the queue's length is sampled when scraped.
        """
        clock = Clock()
        factory = make_factory(self, "auth", clock=clock)
        metrics = ServerMetrics(clock, "9.9.9", "auth")

        class Queue:
            running = 2

            def __len__(self):
                return 5

        class Hasher:
            queue = Queue()

        hasher = Hasher()
        metrics.watch(factory, hasher=hasher)
        self.assertIs(hasher.observer, metrics)
        self.assertEqual(value(metrics, "echolab_hash_queue_length"), 5)
        self.assertEqual(value(metrics, "echolab_hashes_running"), 2)


class ReactorLagTests(SynchronousTestCase):
    def test_lag(self):
        """
        A timer due every L{LAG_INTERVAL} measures how late it runs,
        intervals it missed included.
        """
        clock = Clock()
        metrics = ServerMetrics(clock, "9.9.9", "echo")
        metrics.startService()
        self.addCleanup(metrics.stopService)
        clock.advance(LAG_INTERVAL)
        self.assertEqual(value(metrics, "echolab_reactor_last_lag_seconds"), 0)
        clock.advance(3 * LAG_INTERVAL + 0.2)  # a busy reactor: 0.2 s late
        self.assertAlmostEqual(value(metrics, "echolab_reactor_last_lag_seconds"), 0.2)
        self.assertEqual(value(metrics, "echolab_reactor_lag_seconds_count"), 2)
        metrics.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])


class TimedWritesTests(SynchronousTestCase):
    def test_writes_timed(self):
        """
        With metrics on, every store write is timed, failed ones counted.
        """
        from tests.helpers import InlineDatabase

        metrics = ServerMetrics(Clock(), "9.9.9", "ident")

        database = metrics.timed_database(InlineDatabase(self.mktemp(), None))
        database.open()
        self.addCleanup(database.close)
        database.write(("CREATE TABLE t (x)", ()))
        failed = database.write(("INSERT INTO nowhere VALUES (1)", ()))
        self.failureResultOf(failed)
        self.assertEqual(
            value(metrics, "echolab_store_write_duration_seconds_count"), 2
        )
        self.assertEqual(value(metrics, "echolab_store_write_failures_total"), 1)
        self.assertIsInstance(
            database.write(("INSERT INTO t VALUES (1)", ())), defer.Deferred
        )


class LogNamespaceTests(SynchronousTestCase):
    def test_same_namespace(self):
        """
        A metered connection logs in the plain connection's namespace, so
        log filters match with metrics on or off.
        """
        factory, _ = metered(self)
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        Conversation(factory)
        namespaces = {e["log_namespace"] for e in events if "peer" in e}
        self.assertEqual(namespaces, {"echotwist.protocol.ServerProtocol"})
