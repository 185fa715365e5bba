# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics (C{--metrics ENDPOINT}): what the server counts, and
the small web site that serves them at C{/metrics} (prometheus_client's
Twisted resource) with C{/healthz} (L{echotwist.health}).

Costs. Without C{--metrics} nothing here is loaded, and the factory builds
plain connections. With it, the factory builds metered ones
(L{echotwist.metering}), which keep plain integers that are turned into
Prometheus samples only when scraped (L{ServerCollector}). Logins, hashes
and store writes, which cost milliseconds each, go to prometheus_client's
own counters and histograms, through the observer interface
(L{echotwist.observer}).
"""

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.application import service
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import CancelledError
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from echotwist import observer as seen
from echotwist.auth import Accounts, LoginTaken, RateLimited
from echotwist.health import Health, StoreProbe
from echotwist.listening import ListenerService, endpoint_from
from echotwist.metering import Tally, metered_classes, metered_session
from echotwist.prompts import format_address

# The *_created samples say when the process started, which
# process_start_time_seconds says already.
disable_created_metrics()

LAG_INTERVAL = 0.5  # seconds between two reactor lag measurements


class MeteredAccounts(Accounts):
    """
    L{Accounts} that tell their observer how each login attempt ended, from
    the outcome of its L{Deferred}: L{echotwist.auth} itself is unchanged.
    """

    def __init__(self, *args, observer):
        super().__init__(*args)
        self.observer = observer

    def login_with_password(self, *args):
        d = Accounts.login_with_password(self, *args)
        return d.addBoth(self._ended, seen.PASSWORD)

    def login_with_token(self, *args, **kwargs):
        d = Accounts.login_with_token(self, *args, **kwargs)
        return d.addBoth(self._ended, seen.TOKEN)

    def register(self, *args):
        return Accounts.register(self, *args).addBoth(self._ended, seen.REGISTRATION)

    def _ended(self, outcome, method):
        if not isinstance(outcome, Failure):
            self.observer.login(method, seen.OK)
        else:
            for kind, result in _LOGIN_FAILURES:
                if outcome.check(kind):
                    self.observer.login(method, result)
                    break
        return outcome


_LOGIN_FAILURES = [
    (UnauthorizedLogin, seen.REFUSED),
    (RateLimited, seen.RATE_LIMITED),
    (LoginTaken, seen.TAKEN),
    (CancelledError, seen.ABANDONED),
]


class TimedWrites:
    """
    A store's database (SQLite's or PostgreSQL's, L{IDatabase}) whose
    writes are timed, from the call to the commit (the wait for the
    database's thread included); everything else is the database's own.
    """

    def __init__(self, database, metrics):
        self._database = database
        self._metrics = metrics

    def __getattr__(self, name):
        return getattr(self._database, name)

    def write(self, *statements):
        started = time.monotonic()
        d = self._database.write(*statements)
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


_HISTOGRAMS = [
    (
        "echolab_hash_duration_seconds",
        "Seconds a password hash or check took on its thread.",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ),
    (
        "echolab_store_write_duration_seconds",
        "Seconds from a store write's call to its commit.",
        (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
    ),
    (
        "echolab_reactor_lag_seconds",
        f"How late a timer due every {LAG_INTERVAL} s ran.",
        (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    ),
]


@implementer(seen.IServerObserver)
class ServerMetrics(service.Service):
    """
    The metrics of one server: its registry, its counts, and the reactor
    lag, measured by a L{LoopingCall} that times its own delay.
    """

    def __init__(self, reactor, version, mode, worker=""):
        """
        @param worker: the worker's index under C{--workers} (as text), or
            C{""} for a server of one process.
        """
        self.clock = reactor
        self.registry = registry = CollectorRegistry()
        self.tally = Tally()
        self.protocol = metered_classes(self.tally)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        info = Gauge(
            "echolab_info",
            "This server.",
            ["version", "mode", "worker"],
            registry=registry,
        )
        info.labels(version, mode, worker).set(1)
        self._logins = Counter(
            "echolab_logins",
            "Login attempts, by method and result.",
            ["method", "result"],
            registry=registry,
        )
        for method in seen.METHODS:
            for result in seen.RESULTS:
                self._logins.labels(method, result)
        self._write_failures = Counter(
            "echolab_store_write_failures",
            "Store writes that failed.",
            registry=registry,
        )
        self._last_lag = Gauge(
            "echolab_reactor_last_lag_seconds",
            "How late the last reactor lag measurement ran.",
            registry=registry,
        )
        self._hash_seconds, self._write_seconds, self._lag = (
            Histogram(name, doc, buckets=buckets, registry=registry)
            for name, doc, buckets in _HISTOGRAMS
        )
        self._ticker = LoopingCall.withCount(self._tick)
        self._ticker.clock = reactor

    def watch(self, factory, hasher=None):
        """
        Count what C{factory}'s connections and C{hasher} do.
        """
        factory.protocol = self.protocol
        factory.session_class = metered_session(factory.session_class)
        if hasher is not None:
            hasher.observer = self
        self.registry.register(ServerCollector(self.tally, factory, hasher))

    def accounts(self, *args):
        """
        The server's L{Accounts}, their logins counted (L{MeteredAccounts}).
        """
        return MeteredAccounts(*args, observer=self)

    def timed_database(self, database):
        """
        C{database}, its writes timed (L{TimedWrites}).
        """
        return TimedWrites(database, self)

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


def worker_endpoint(description, index):
    """
    The C{--metrics} endpoint of worker C{index} under C{--workers}: the
    port of C{description} (a C{tcp:} or C{tcp6:} string) plus the index,
    so that each worker's numbers can be scraped apart.
    """
    kind, port, rest = (description.split(":", 2) + [""])[:3]
    suffix = f":{rest}" if rest else ""
    return f"{kind}:{int(port) + index}{suffix}"
