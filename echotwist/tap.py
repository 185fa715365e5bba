# -*- test-case-name: tests.test_tap -*-
"""
The one way the server is built: L{Options} for the command line and
L{makeService}, used by the twistd plugin (C{twistd -n echolab}) and by
C{echo.tac} alike.
"""

from functools import partial

from twisted.application.internet import TimerService

from echotwist.auth import Accounts
from echotwist.factory import EchoFactory
from echotwist.hashing import Hasher
from echotwist.options import DEFAULT_PORT, Options
from echotwist.passwords import make_context
from echotwist.reactor import install_default
from echotwist.listening import ListenerService
from echotwist.service import (
    ClientsService,
    DataDirectoryLock,
    EchoService,
    StoresService,
)
from echotwist.shared_throttle import SharedFailures, SharedLoginThrottle
from echotwist.store import CredentialStore, IdentityStore
from echotwist.tcp import listen_tcp
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
    deployment = options.deployment()
    twistd = getattr(options, "parent", None)
    top = EchoService(
        reactor,
        options["log-file"],
        options["log-rotate-bytes"],
        options["log-keep"],
        options["log-client-lines"],
        stdout,
        stderr,
        daemon=twistd is not None and not twistd.get("nodaemon", True),
    )
    DataDirectoryLock(options["data-dir"]).setServiceParent(top)
    identities = accounts = shared = None
    if settings.mode != "echo":
        database = deployment.database(options["data-dir"], reactor)
        hasher = None
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
            limits = options.limits()
            if deployment.shared:
                # Other processes' revocations are not in this one's cache,
                # nor their failed logins in its throttle: both are asked.
                credentials = CredentialStore(database, reactor, cache_size=0)
                shared = SharedFailures(database, reactor, 2 * limits.max_block)
                throttle = SharedLoginThrottle(reactor, limits, shared)
            else:
                credentials = CredentialStore(database, reactor)
                throttle = LoginThrottle(reactor, limits)
            accounts = Accounts(
                credentials, hasher, throttle, reactor, settings.token_ttl
            )
        StoresService(database, hasher).setServiceParent(top)
        if shared is not None:
            shared.setServiceParent(top)
        if accounts is not None:
            cleaner = TimerService(3600, credentials.forget_expired)
            cleaner.clock = reactor
            cleaner.setServiceParent(top)
    factory = EchoFactory(settings, reactor, identities, accounts)
    ClientsService(factory).setServiceParent(top)
    if options["port"] is not None:
        ListenerService.on_port(
            partial(listen_tcp, reactor),
            factory,
            options["port"],
            options["port-tries"],
            options["interface"],
            options["backlog"],
            top.announce,
        ).setServiceParent(top)
    for description in options["listen"]:
        ListenerService.on_endpoint(
            reactor, factory, description, options["backlog"], top.announce
        ).setServiceParent(top)
    top.factory = factory
    return top
