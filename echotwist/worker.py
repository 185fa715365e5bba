# -*- test-case-name: tests.test_workers -*-
"""
One worker of C{--workers N}, started by its parent (L{echotwist.workers})
as C{python -m echotwist.worker}: the server that C{makeService} builds
from the parent's options, serving the listening sockets the parent hands
it, in the parent's data directory, logging to a file of its own named
after it (C{echolab-worker1.log}), which starts by saying which worker
and process it is.
"""

import ctypes
import ctypes.util
import json
import os
import signal
import sys

from twisted.application import service
from twisted.logger import ILogObserver, Logger, globalLogBeginner
from twisted.python import usage

from echotwist.workers import WORKER_ENVIRONMENT

PR_SET_PDEATHSIG = 1

log = Logger(namespace="echotwist.worker")


class AdoptedListeners(service.Service):
    """
    Serve the parent's listening sockets: plain ones, and C{haproxy:} ones
    whose connections start with a PROXY header.

    @ivar listening: the adopted ports while serving, else L{None} (what
        the health check asks of every listener).
    """

    listening = None

    def __init__(self, reactor, factory, listeners):
        self._reactor = reactor
        self._factory = factory
        self._listeners = listeners
        self.ports = []

    def privilegedStartService(self):
        from echotwist.proxy import ProxyWrappingFactory
        from echotwist.tcp import WriteThroughPort
        from echotwist.twisted_internals import adopt_port

        super().privilegedStartService()
        for fd, family, proxied in self._listeners:
            factory = self._factory
            if proxied:
                factory = ProxyWrappingFactory(factory, self._reactor)
            self.ports.append(
                adopt_port(self._reactor, WriteThroughPort, fd, family, factory)
            )
            os.close(fd)  # (the port has its own duplicate)
        self.listening = self.ports

    def stopService(self):
        super().stopService()
        self.listening = None
        ports, self.ports = self.ports, []
        for port in ports:
            # Stop accepting, without shutting the shared socket down: the
            # other workers, and this one's replacement, still serve it.
            port.stopReading()


class WorkerRole:
    """
    What makes a server a worker: its number, its log file and the
    sockets it was handed.
    """

    def __init__(self, index, log, listeners):
        self.index = index
        self._log = log
        self._listeners = listeners

    def log_path(self, options):
        return self._log

    def listeners(self, reactor, factory):
        return AdoptedListeners(reactor, factory, self._listeners)


def _die_with_parent():
    """
    Have the kernel send SIGTERM when the parent dies (even by C{kill -9}),
    so no worker outlives it (Linux; elsewhere, nothing).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # (it died before we asked)
        sys.exit(0)


def main():
    role = json.loads(os.environ.pop(WORKER_ENVIRONMENT))
    _die_with_parent()
    from echotwist.reactor import install_default
    from echotwist.tap import Options, makeService

    reactor = install_default()
    options = Options()
    try:
        options.parseOptions(role["args"])
    except usage.UsageError as e:
        sys.stderr.write(f"echolab worker {role['index']}: {e}\n")
        return 2
    worker = WorkerRole(role["index"], role["log"], role["listeners"])
    top = makeService(options, reactor, stdout=open(os.devnull, "w"), worker=worker)
    application = service.Application(f"echolab-worker{worker.index}")
    top.setServiceParent(application)
    globalLogBeginner.beginLoggingTo(
        [application.getComponent(ILogObserver)], redirectStandardIO=False
    )
    server = service.IService(application)
    try:
        server.privilegedStartService()
        server.startService()
    except Exception:
        return 1  # (the server said why, in one line)
    log.info(
        "worker {index} (pid {pid}) serving, for parent pid {parent}",
        index=worker.index,
        pid=os.getpid(),
        parent=os.getppid(),
    )
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
