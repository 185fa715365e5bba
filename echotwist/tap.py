# -*- test-case-name: tests.test_tap -*-
"""
The one way the server is built: L{Options} for the command line and
L{makeService}, used by the twistd plugin (C{twistd -n echolab}) and by
C{echo.tac} alike.
"""

import os
from functools import partial

from twisted.application.internet import TimerService

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
from echotwist.store import DATABASE_FILE, Database, IdentityStore
from echotwist.tcp import listen_tcp
from echotwist.trace import Tracer, trace
from echotwist.throttle import LoginThrottle

__all__ = ["DEFAULT_PORT", "Options", "makeService"]


def makeService(options, reactor=None, stdout=None, stderr=None, hash_context=None):
    """
    Build the server from parsed L{Options}.

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
    """
    if reactor is None:
        reactor = install_default()
    settings = options.settings()
    twistd = getattr(options, "parent", None)
    metrics = None
    if options["metrics"]:
        from echotwist.metrics import ServerMetrics

        metrics = ServerMetrics(reactor, __version__, settings.mode)
    top = EchoService(
        reactor,
        options["log-file"],
        options["log-rotate-bytes"],
        options["log-keep"],
        options["log-client-lines"],
        stdout,
        stderr,
        daemon=twistd is not None and not twistd.get("nodaemon", True),
        log_format=options["log-format"],
        start_lines=start_lines(options, settings.mode),
    )
    DataDirectoryLock(options["data-dir"]).setServiceParent(top)
    identities = accounts = credentials = database = hasher = None
    if settings.mode in ("ident", "auth"):
        open_database = Database if metrics is None else metrics.timed_database
        database = open_database(database_path(options), reactor)
        if settings.mode == "ident":
            identities = IdentityStore(database, reactor)
        else:
            hashing = options.hashing()
            context = hash_context or make_context(
                hashing.memory_kib, hashing.time_cost
            )
            hasher = Hasher(
                context,
                reactor,
                hashing.threads,
                hashing.memory_kib,
                hashing.priority,
                hashing.max_pending,
                hashing.max_pending_per_client,
            )
            credentials = CredentialStore(database, reactor)
            accounts = (Accounts if metrics is None else metrics.accounts)(
                credentials,
                hasher,
                LoginThrottle(reactor, options.limits()),
                reactor,
                settings.token_ttl,
            )
        StoresService(database, hasher).setServiceParent(top)
        if accounts is not None:
            cleaner = TimerService(3600, credentials.forget_expired)
            cleaner.clock = reactor
            cleaner.setServiceParent(top)
            LastLoginWriter(credentials.last_logins, reactor).setServiceParent(top)
    factory = EchoFactory(settings, reactor, identities, accounts)
    if database is not None:
        applier = ChangeApplier(credentials, factory)
        ChangeFeed(database, reactor, applier).setServiceParent(top)
    ClientsService(factory).setServiceParent(top)
    if options["trace"]:
        _trace(factory, options, reactor)
    raw = RawListenerFactory(factory)
    served, kind = (raw, "raw") if settings.mode == "raw" else (factory, None)
    if options["port"] is not None:
        ListenerService.on_port(
            partial(listen_tcp, reactor),
            served,
            options["port"],
            options["port-tries"],
            options["interface"],
            options["backlog"],
            top.announce,
            kind,
        ).setServiceParent(top)
    listens = [(d, served, kind) for d in options["listen"]]
    listens += [(d, raw, "raw") for d in options["raw-listen"]]
    for description, listener_factory, listener_kind in listens:
        ListenerService.on_endpoint(
            reactor,
            listener_factory,
            description,
            options["backlog"],
            top.announce,
            listener_kind,
        ).setServiceParent(top)
    if metrics is not None:
        metrics.watch(factory, hasher)
        listeners = [s for s in top if isinstance(s, ListenerService)]
        metrics.serve(top, options["metrics"], listeners, database)
    top.factory = factory
    return top


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


def database_path(options):
    return os.path.join(options["data-dir"], DATABASE_FILE)


def start_lines(options, mode):
    """
    What the log says first at every start: the version, the mode, the
    data folder (absolute), the store, the listeners and the log itself.
    """
    store = "none (echo mode)" if mode == "echo" else f"SQLite {database_path(options)}"
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
    return [
        f"echolab {__version__} starting: {mode} mode, data folder "
        f"{options['data-dir']}, store {store}",
        f"listeners: {'; '.join(listeners)}; metrics: {options['metrics'] or 'off'}",
        f"log: {options['log-file']} ({options['log-format']}, {rotation})",
    ]
