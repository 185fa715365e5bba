# -*- test-case-name: tests.test_tap -*-
"""
The one way the server is built: L{Options} for the command line and
L{makeService}, used by the twistd plugin (C{twistd -n echolab}) and by
C{echo.tac} alike.
"""

from functools import partial

from twisted.application.internet import TimerService
from twisted.internet.protocol import Factory

from echotwist import __version__
from echotwist.auth import Accounts
from echotwist.changes import ChangeApplier, ChangeFeed
from echotwist.credentials import CredentialStore, LastLoginWriter
from echotwist.factory import EchoFactory
from echotwist.hashing import Hasher
from echotwist.options import DEFAULT_PORT, Options
from echotwist.passwords import make_context
from echotwist.raw import RawListenerFactory
from echotwist.reactor import install_default
from echotwist.listening import ListenerService
from echotwist.service import (
    ClientsService,
    DataDirectoryLock,
    EchoService,
    StoresService,
)
from echotwist.shared_throttle import SharedFailures, SharedLoginThrottle
from echotwist.store import IdentityStore
from echotwist.tcp import listen_tcp
from echotwist.trace import Tracer, trace
from echotwist.throttle import LoginThrottle
from echotwist.workers import WorkersService

__all__ = ["DEFAULT_PORT", "Options", "makeService"]


def makeService(
    options, reactor=None, stdout=None, stderr=None, hash_context=None, worker=None
):
    """
    Build the server from parsed L{Options}: with C{--workers} over 1, the
    parent that listens and keeps that many workers serving
    (L{echotwist.workers}).

    @param reactor: the reactor to use [default: the global one, which is
        L{echotwist.reactor}'s if none was installed yet and the running
        Twisted passes L{echotwist.twisted_internals}' check].
    @param stdout: where the listening line goes [default: the console,
        duplicated once attached to twistd's application, before twistd
        redirects standard output to the log or daemonizes].
    @param stderr: where start-up failures go [default: the console, the
        same way].
    @param hash_context: a passlib context overriding the argon2id
        parameters (tests use a cheap one; never the default).
    @param worker: the L{echotwist.worker.WorkerRole} when building a
        worker: it serves its parent's sockets, in its parent's data
        directory, logging to a file of its own.
    """
    if reactor is None:
        reactor = install_default()
    settings = options.settings()
    deployment = options.deployment()
    twistd = getattr(options, "parent", None)
    metrics = None
    if options["metrics"] and (worker is not None or deployment.workers == 1):
        from echotwist.metrics import ServerMetrics

        index = "" if worker is None else str(worker.index)
        metrics = ServerMetrics(reactor, __version__, settings.mode, index)
    top = EchoService(
        reactor,
        options["log-file"] if worker is None else worker.log_path(options),
        options["log-rotate-bytes"],
        options["log-keep"],
        options["log-client-lines"],
        stdout,
        stderr,
        daemon=twistd is not None and not twistd.get("nodaemon", True),
        log_format=options["log-format"],
        start_lines=start_lines(options, settings.mode, deployment, worker),
    )
    if worker is None:
        stored = settings.mode in ("ident", "auth")
        database_file = deployment.sqlite_path(options["data-dir"]) if stored else None
        DataDirectoryLock(options["data-dir"], database_file).setServiceParent(top)
    if deployment.workers > 1 and worker is None:
        return _parent(options, reactor, top, deployment)
    identities = accounts = credentials = database = hasher = None
    if settings.mode in ("ident", "auth"):
        database = deployment.database(options["data-dir"], reactor)
        if metrics is not None:
            database = metrics.timed_database(database)
        identities, credentials, accounts, hasher = _stores(
            options, reactor, top, database, deployment.shared, hash_context, metrics
        )
    factory = EchoFactory(settings, reactor, identities, accounts)
    if database is not None:
        applier = ChangeApplier(credentials, factory)
        ChangeFeed(database, reactor, applier).setServiceParent(top)
    ClientsService(factory).setServiceParent(top)
    if options["trace"]:
        _trace(factory, options, reactor)
    raw = RawListenerFactory(factory)
    served, kind = (raw, "raw") if settings.mode == "raw" else (factory, None)
    if worker is not None:
        listeners = [worker.listeners(reactor, served)]
        listeners[0].setServiceParent(top)
    else:
        listeners = list(_listeners(options, reactor, served, kind, raw, top.announce))
        for listener in listeners:
            listener.setServiceParent(top)
    if metrics is not None:
        metrics.watch(factory, hasher)
        metrics.serve(top, metrics_endpoint(options, worker), listeners, database)
    top.factory = factory
    return top


def _stores(options, reactor, top, database, shared, hash_context, metrics=None):
    """
    The stores, opened by services of C{top} before the listeners start.

    @param shared: whether other processes use C{database} too (see
        L{echotwist.deployment.Deployment.shared}).
    @param metrics: the L{echotwist.metrics.ServerMetrics}, if on.
    @return: the identity store (ident mode), and the
        L{CredentialStore}, L{Accounts} and L{Hasher} (auth mode).
    """
    settings = options.settings()
    if settings.mode == "ident":
        StoresService(database).setServiceParent(top)
        return IdentityStore(database, reactor), None, None, None
    hashing = options.hashing()
    context = hash_context or make_context(hashing.memory_kib, hashing.time_cost)
    hasher = Hasher(
        context,
        reactor,
        hashing.threads,
        hashing.memory_kib,
        hashing.priority,
        hashing.max_pending,
        hashing.max_pending_per_client,
    )
    StoresService(database, hasher).setServiceParent(top)
    limits = options.limits()
    if shared:
        # Other processes' revocations are not in this one's cache, nor
        # their failed logins in its throttle: both are asked.
        credentials = CredentialStore(database, reactor, cache_size=0)
        failures = SharedFailures(database, reactor, 2 * limits.max_block)
        failures.setServiceParent(top)
        throttle = SharedLoginThrottle(reactor, limits, failures)
    else:
        credentials = CredentialStore(database, reactor)
        throttle = LoginThrottle(reactor, limits)
    cleaner = TimerService(3600, credentials.forget_expired)
    cleaner.clock = reactor
    cleaner.setServiceParent(top)
    LastLoginWriter(credentials.last_logins, reactor).setServiceParent(top)
    make_accounts = Accounts if metrics is None else metrics.accounts
    accounts = make_accounts(credentials, hasher, throttle, reactor, settings.token_ttl)
    return None, credentials, accounts, hasher


def _listeners(options, reactor, served, kind, raw, announce):
    """
    A L{ListenerService} for C{--port} and for each C{--listen} string
    (serving C{served}, described as C{kind}), and for each
    C{--raw-listen} string (serving C{raw}).
    """
    if options["port"] is not None:
        yield ListenerService.on_port(
            partial(listen_tcp, reactor),
            served,
            options["port"],
            options["port-tries"],
            options["interface"],
            options["backlog"],
            announce,
            kind,
        )
    listens = [(d, served, kind) for d in options["listen"]]
    listens += [(d, raw, "raw") for d in options["raw-listen"]]
    for description, listener_factory, listener_kind in listens:
        yield ListenerService.on_endpoint(
            reactor,
            listener_factory,
            description,
            options["backlog"],
            announce,
            listener_kind,
        )


def _parent(options, reactor, top, deployment):
    """
    The parent of C{--workers}: it opens the stores once (so that a store
    that cannot be used is said once, and the schema is migrated once),
    listens, and hands its sockets to the workers it keeps running (which
    serve them as C{--mode} says; C{--raw-listen} is refused with
    C{--workers}, by L{Options}).
    """
    mode = options.settings().mode
    if mode in ("ident", "auth"):
        database = deployment.database(options["data-dir"], reactor)
        StoresService(database).setServiceParent(top)
    kind = "raw" if mode == "raw" else None
    listeners = list(_listeners(options, reactor, Factory(), kind, None, top.announce))
    for listener in listeners:
        listener.setServiceParent(top)
    WorkersService(
        reactor, deployment.workers, options.raw_args, options["log-file"], listeners
    ).setServiceParent(top)
    return top


def metrics_endpoint(options, worker):
    """
    Where C{--metrics} serves: as given, or under C{--workers}, worker
    I{k}'s own port, the given one plus I{k}.
    """
    if worker is None:
        return options["metrics"]
    from echotwist.metrics import worker_endpoint

    return worker_endpoint(options["metrics"], worker.index)


def _trace(factory, options, reactor):
    """
    C{--trace}: the factory builds traced connections, whose lines go to
    the log, or to C{--trace-file} (closed when the reactor stops).
    """
    if options["trace-file"] is None:
        trace(factory, Tracer.to_log())
        return
    tracer, logfile = Tracer.to_file(
        options["trace-file"], options["log-rotate-bytes"], options["log-keep"]
    )
    reactor.addSystemEventTrigger("after", "shutdown", logfile.close)
    trace(factory, tracer)


def start_lines(options, mode, deployment, worker=None):
    """
    What the log says first at every start: the version, the mode, the
    data folder (absolute), the store, the listeners and the log itself.
    """
    if mode not in ("ident", "auth"):
        store = f"none ({mode} mode)"
    else:
        store = deployment.describe_store(options["data-dir"])
    listeners = [f"--listen {description}" for description in options["listen"]]
    listeners += [f"--raw-listen {d}" for d in options["raw-listen"]]
    if options["port"] is not None:
        listeners.insert(
            0,
            f"--port {options['port']} on {options['interface']} "
            f"(or the next free of {options['port-tries']})",
        )
    rotation = (
        f"rotated at {options['log-rotate-bytes']} bytes, {options['log-keep']} kept"
        if options["log-rotate-bytes"]
        else "reopened on SIGUSR1, rotated by an external tool"
    )
    processes = ""
    if worker is not None:
        processes = f" (worker {worker.index})"
    elif deployment.workers > 1:
        processes = f" ({deployment.workers} workers)"
    return [
        f"echolab {__version__} starting{processes}: {mode} mode, data folder "
        f"{options['data-dir']}, store {store}",
        f"listeners: {'; '.join(listeners)}; metrics: {options['metrics'] or 'off'}",
        f"log: {options['log-file']} ({options['log-format']}, {rotation})",
    ]
