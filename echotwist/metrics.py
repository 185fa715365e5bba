# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics (C{--metrics ENDPOINT}): what the server counts, and
the small web site that serves them at C{/metrics} (prometheus_client's
Twisted resource) with C{/healthz} (L{echotwist.health}).

Costs. Without C{--metrics} nothing here is loaded, and the factory builds
plain connections. With it, the factory builds metered ones (subclasses
made per server by L{metered_classes}): they count bytes per read and the
frames they write per write (their replies are gathered into one write
per read), keeping plain integers in a L{Tally} that is turned into
Prometheus samples only when scraped. Only C{messages in} is counted per
message, one integer added. Logins, hashes and store writes, which cost
milliseconds each, go to prometheus_client's own counters and histograms.
"""

import time

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from echotwist import messages as m
from echotwist import observer as seen
from echotwist.flow import BUSY
from echotwist.health import Health, StoreProbe
from echotwist.listening import ListenerService, endpoint_from
from echotwist.output import Output
from echotwist.prompts import format_address
from echotwist.protocol import ServerProtocol
from echotwist.store import Database
from echotwist.wire import HEADER_SIZE

ERROR_CODES = (
    m.BAD_MESSAGE,
    m.BAD_STATE,
    m.BAD_VALUE,
    m.BAD_TOKEN,
    m.BAD_PASSWORD,
    m.WEAK_PASSWORD,
    m.TOO_MANY_ATTEMPTS,
    m.RATE_LIMITED,
    m.TOO_LARGE,
    m.TIMEOUT,
    m.BUSY,
    m.SERVER_ERROR,
)

WHOLE_BELOW = 2048
"""
L{Output} gathers a payload under this size joined to its header (a whole
frame in one piece), and a larger one as two pieces. So gathered pieces
that add up to less than this are whole frames, one each.
"""

# The *_created samples say when the process started, which
# process_start_time_seconds says already.
disable_created_metrics()

LAG_INTERVAL = 0.5  # seconds between two reactor lag measurements


class Tally:
    """
    Counts kept as plain integers by the reactor's thread (an addition is
    all a count costs it), read when scraped on prometheus_client's thread.
    """

    __slots__ = (
        "connections",
        "refused",
        "bytes_in",
        "bytes_out",
        "messages_in",
        "messages_out",
        "errors",
    )

    def __init__(self):
        self.connections = self.refused = 0
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self.errors = dict.fromkeys(ERROR_CODES, 0)


class CountedEchoes:
    """
    The echoes of a C{say} with C{repeat}, counted as they are written.
    """

    __slots__ = ("_echoes", "_tally")

    def __init__(self, echoes, tally):
        self._echoes = echoes
        self._tally = tally

    def __iter__(self):
        return self

    def __next__(self):
        payload = next(self._echoes)
        self._tally.messages_out += 1
        self._tally.bytes_out += HEADER_SIZE + len(payload)
        return payload


class MeteredOutput(Output):
    """
    An L{Output} counting the frames and bytes it writes, and the errors
    it sends by code. A read's replies are gathered and written at once
    (L{flush}): they are counted there, per read. (C{send_echoes} with one
    echo, the hot path, always gathers: a C{say} is only handled inside a
    read.)
    """

    __slots__ = ()
    tally = None  # set per server (metered_classes)

    def send(self, message):
        if message["type"] == "error":
            errors, code = self.tally.errors, message["code"]
            errors[code] = errors.get(code, 0) + 1
        Output.send(self, message)

    def send_payload(self, payload):
        if self.gathered is None and not self._flow.holds & BUSY:  # written now
            self.tally.messages_out += 1
            self.tally.bytes_out += HEADER_SIZE + len(payload)
        Output.send_payload(self, payload)

    def flush(self):
        out = self.gathered
        if out:
            tally = self.tally
            if len(out) == 1:  # one whole frame
                tally.messages_out += 1
                tally.bytes_out += len(out[0])
            elif len(out[0]) != HEADER_SIZE and len(out[-1]) < WHOLE_BELOW:
                # Small replies, the usual batch: joined (one piece for the
                # socket) and measured whole, rather than piece by piece.
                joined = b"".join(out)
                tally.bytes_out += len(joined)
                tally.messages_out += (
                    len(out) if len(joined) < WHOLE_BELOW else _frames(out)
                )
                self.gathered = [joined]
            else:
                tally.bytes_out += sum(map(len, out))
                tally.messages_out += _frames(out)
        Output.flush(self)

    def _write_echoes(self):
        if type(self._echoes) is not CountedEchoes:
            self._echoes = CountedEchoes(self._echoes, self.tally)
        Output._write_echoes(self)


def _frames(pieces):
    """
    How many frames gathered C{pieces} hold: each is a whole frame, or
    the header or the payload of a large one (L{WHOLE_BELOW}).
    """
    return len(pieces) - list(map(len, pieces)).count(HEADER_SIZE)


class MeteredProtocol(ServerProtocol):
    """
    A L{ServerProtocol} counting connections, refusals and bytes in.
    """

    tally = None  # set per server (metered_classes)

    def connectionMade(self):
        self.tally.connections += 1
        ServerProtocol.connectionMade(self)
        if not self.counted:  # refused: too many connections
            self.tally.refused += 1

    def dataReceived(self, data):
        self.tally.bytes_in += len(data)
        ServerProtocol.dataReceived(self, data)


def metered_classes(tally):
    """
    The connection class of a server whose counts go to C{tally}.
    """

    def counted(received=ServerProtocol.stringReceived):
        def stringReceived(self, payload):
            tally.messages_in += 1
            received(self, payload)

        return stringReceived

    output = type("MeteredOutput", (MeteredOutput,), {"__slots__": (), "tally": tally})
    return type(
        "MeteredProtocol",
        (MeteredProtocol,),
        {"tally": tally, "output_class": output, "stringReceived": counted()},
    )


class TimedWrites(Database):
    """
    A L{Database} whose writes are timed, from the call to the commit
    (the wait for the database's thread included).
    """

    def __init__(self, *args, metrics):
        super().__init__(*args)
        self._metrics = metrics

    def write(self, *statements):
        started = time.monotonic()
        d = Database.write(self, *statements)
        return d.addBoth(self._written, started)

    def _written(self, result, started):
        self._metrics.stored(
            time.monotonic() - started, failed=isinstance(result, Failure)
        )
        return result


class ServerCollector(Collector):
    """
    The samples of a L{Tally} and of the server's state (open connections,
    hashes waiting), made when scraped.
    """

    def __init__(self, tally, factory, hasher):
        self._tally = tally
        self._factory = factory
        self._hasher = hasher

    def collect(self):
        t = self._tally
        yield _gauge(
            "echolab_connections_open",
            "Connections served now.",
            len(self._factory.connections),
        )
        for name, doc, value in (
            (
                "connections",
                "Connections accepted, refused ones included.",
                t.connections,
            ),
            ("connections_refused", "Connections refused as busy.", t.refused),
            ("messages_received", "Messages (frames) received.", t.messages_in),
            ("messages_sent", "Messages (frames) sent.", t.messages_out),
            ("received_bytes", "Bytes received (inside TLS).", t.bytes_in),
            ("sent_bytes", "Bytes sent (inside TLS).", t.bytes_out),
        ):
            yield CounterMetricFamily(f"echolab_{name}", doc, value=value)
        errors = CounterMetricFamily(
            "echolab_errors", "Error messages sent, by code.", labels=["code"]
        )
        for code, count in sorted(dict(t.errors).items()):
            errors.add_metric([code], count)
        yield errors
        if self._hasher is not None:
            queue = self._hasher.queue
            yield _gauge(
                "echolab_hash_queue_length",
                "Password hashes waiting or running.",
                len(queue),
            )
            yield _gauge(
                "echolab_hashes_running", "Password hashes running.", queue.running
            )


def _gauge(name, doc, value):
    return GaugeMetricFamily(name, doc, value=value)


class _QuietSite(Site):
    """A site that does not log every scrape."""

    noisy = False

    def log(self, request):
        pass


def describe_metrics_port(listening):
    host = listening.getHost()
    port = getattr(host, "port", None)
    where = f"unix:{host.name}" if port is None else format_address(host.host, port)
    return f"{where} for metrics (/metrics, /healthz)"


@implementer(seen.IServerObserver)
class ServerMetrics(service.Service):
    """
    The metrics of one server: its registry, its counts, and the reactor
    lag, measured by a L{LoopingCall} that times its own delay.
    """

    def __init__(self, reactor, version, mode):
        self.clock = reactor
        self.registry = registry = CollectorRegistry()
        self.tally = Tally()
        self.protocol = metered_classes(self.tally)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        info = Gauge(
            "echolab_info", "This server.", ["version", "mode"], registry=registry
        )
        info.labels(version, mode).set(1)
        self._logins = Counter(
            "echolab_logins",
            "Login attempts, by method and result.",
            ["method", "result"],
            registry=registry,
        )
        for method in seen.METHODS:
            for result in seen.RESULTS:
                self._logins.labels(method, result)
        self._hash_seconds = Histogram(
            "echolab_hash_duration_seconds",
            "Seconds a password hash or check took on its thread.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self._write_seconds = Histogram(
            "echolab_store_write_duration_seconds",
            "Seconds from a store write's call to its commit.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
            registry=registry,
        )
        self._write_failures = Counter(
            "echolab_store_write_failures",
            "Store writes that failed.",
            registry=registry,
        )
        self._lag = Histogram(
            "echolab_reactor_lag_seconds",
            f"How late a timer due every {LAG_INTERVAL} s ran.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self._last_lag = Gauge(
            "echolab_reactor_last_lag_seconds",
            "How late the last reactor lag measurement ran.",
            registry=registry,
        )
        self._ticker = LoopingCall.withCount(self._tick)
        self._ticker.clock = reactor

    def watch(self, factory, hasher=None, accounts=None):
        """
        Count what C{factory}'s connections, C{hasher} and C{accounts} do.
        """
        factory.protocol = self.protocol
        for observed in (hasher, accounts):
            if observed is not None:
                observed.observer = self
        self.registry.register(ServerCollector(self.tally, factory, hasher))

    def timed_database(self, *args):
        """
        The server's L{Database}, its writes timed (L{TimedWrites}).
        """
        return TimedWrites(*args, metrics=self)

    def serve(self, top, description, listeners, database=None):
        """
        Serve C{/metrics} and C{/healthz} on the endpoint C{description},
        as children of the server's service C{top}, after its C{listeners}
        (whose listening the health check checks, with C{database}'s
        answers if there is one).
        """
        probe = None if database is None else StoreProbe(database, self.clock)
        health = Health(
            lambda: top.running and all(s.listening is not None for s in listeners),
            probe,
        )
        self.setServiceParent(top)
        ListenerService(
            endpoint_from(self.clock, description),
            self.site(health),
            top.announce,
            describe_metrics_port,
            description,
        ).setServiceParent(top)

    def site(self, health):
        """
        The web site: C{/metrics} and C{/healthz} (C{health}).
        """
        # Imported only now: it imports the global reactor, which must be
        # the one the server installed.
        from prometheus_client.twisted import MetricsResource

        root = Resource()
        root.putChild(b"metrics", MetricsResource(self.registry))
        root.putChild(b"healthz", health)
        return _QuietSite(root)

    # IServerObserver

    def login(self, method, result):
        self._logins.labels(method, result).inc()

    def hashed(self, seconds):
        self._hash_seconds.observe(seconds)

    def stored(self, seconds, failed):
        self._write_seconds.observe(seconds)
        if failed:
            self._write_failures.inc()

    # The reactor lag.

    def startService(self):
        super().startService()
        self._ticks = 0
        self._started = self.clock.seconds()
        self._ticker.start(LAG_INTERVAL, now=False)

    def stopService(self):
        super().stopService()
        if self._ticker.running:
            self._ticker.stop()

    def _tick(self, intervals):
        """
        The timer ran, C{intervals} intervals after the last time (more
        than one when the reactor was busy for longer than one).
        """
        self._ticks += intervals
        due = self._started + self._ticks * LAG_INTERVAL
        lag = max(0.0, self.clock.seconds() - due)
        self._lag.observe(lag)
        self._last_lag.set(lag)
