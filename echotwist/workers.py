# -*- test-case-name: tests.test_workers -*-
"""
C{--workers N}: N server processes serving the same ports, so that
password hashing and the reactor use more than one core.

The parent listens (with the same options and fallbacks as one server
would), stops reading from its sockets, and hands them to its workers,
which adopt them (L{echotwist.worker}): every worker accepts from the same
queue, so a busy worker leaves new connections to the idle ones, and a
worker that dies loses only its own connections. The parent replaces a
worker that ends while it runs (after a pause that grows while they keep
dying young), and on SIGTERM asks every worker to stop (each says C{bye}
to its clients) and waits for them.
"""

import json
import os
import signal
import socket
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from echotwist.listening import ListenerService

WORKER_ENVIRONMENT = "ECHOLAB_WORKER"
FIRST_FD = 3  # where a worker finds its sockets, in order
QUICK_DEATH = 5.0  # a worker that dies sooner was not serving
MAX_PAUSE = 30.0  # the longest pause before a replacement
STOP_WAIT = 60.0  # seconds workers get to stop before they are killed


def worker_log_path(log_path, index):
    """
    The log file of worker C{index}: C{echolab.log} gives
    C{echolab-worker1.log}, beside it.
    """
    root, ext = os.path.splitext(log_path)
    return f"{root}-worker{index}{ext}"


class WorkerProcess(ProcessProtocol):
    def __init__(self, workers, index, started):
        self.workers = workers
        self.index = index
        self.started = started
        self.pid = None

    def connectionMade(self):
        self.pid = self.transport.pid

    def processEnded(self, reason):
        self.workers.ended(self, reason.value)


class WorkersService(service.Service):
    """
    Keep C{count} workers serving the sockets of C{listeners}.

    @param args: the server's own options, which each worker gets too.
    """

    log = Logger()

    def __init__(self, reactor, count, args, log_path, listeners):
        self._reactor = reactor
        self.count = count
        self._args = args  # (a worker's --workers says its stores are shared)
        self._log_path = log_path
        self._listeners = listeners
        self._sockets = []
        self.processes = {}  # index -> WorkerProcess
        self._pauses = {}  # index -> seconds before its next replacement
        self._stopped = None

    def startService(self):
        super().startService()
        listened = [
            listener.listened
            for listener in self._listeners
            if isinstance(listener, ListenerService)
        ]
        defer.gatherResults(listened).addCallback(self._serve)

    def _serve(self, ports):
        for port, listener in zip(ports, self._listeners, strict=True):
            port.stopReading()  # the workers accept; the parent holds it open
            family = socket.AF_INET6 if ":" in port.getHost().host else socket.AF_INET
            proxied = (listener.name or "").startswith("haproxy:")
            self._sockets.append((port.fileno(), family, proxied))
        for index in range(1, self.count + 1):
            self._spawn(index)

    def _spawn(self, index):
        if not self.running:
            return
        fds = {0: "w", 1: 1, 2: 2}
        listeners = []
        for position, (fd, family, proxied) in enumerate(self._sockets):
            fds[FIRST_FD + position] = fd
            listeners.append([FIRST_FD + position, family, proxied])
        role = {
            "index": index,
            "args": self._args,
            "log": worker_log_path(self._log_path, index),
            "listeners": listeners,
        }
        env = dict(os.environ, **{WORKER_ENVIRONMENT: json.dumps(role)})
        process = WorkerProcess(self, index, self._reactor.seconds())
        self._reactor.spawnProcess(
            process,
            sys.executable,
            [sys.executable, "-m", "echotwist.worker"],
            env=env,
            childFDs=fds,
        )
        self.processes[index] = process
        self.log.info(
            "worker {index} started (pid {pid})", index=index, pid=process.pid
        )

    def ended(self, process, why):
        """
        A worker ended: replace it, unless we are stopping.
        """
        if self.processes.get(process.index) is process:
            del self.processes[process.index]
        self.log.info(
            "worker {index} (pid {pid}) ended: {why}",
            index=process.index,
            pid=process.pid,
            why=why,
        )
        if self._stopped is not None:
            if not self.processes:
                self._stopped.callback(None)
            return
        lived = self._reactor.seconds() - process.started
        pause = self._pauses.get(process.index, 0.5)
        pause = min(MAX_PAUSE, pause * 2) if lived < QUICK_DEATH else 0.5
        self._pauses[process.index] = pause
        self.log.info(
            "replacing worker {index} in {pause} s", index=process.index, pause=pause
        )
        self._reactor.callLater(pause, self._spawn, process.index)

    def stopService(self):
        """
        Ask every worker to stop (SIGTERM: they say C{bye} to their
        clients), and wait until all have ended, killing those still there
        after L{STOP_WAIT} seconds.
        """
        super().stopService()
        if not self.processes:
            return None
        self._stopped = defer.Deferred()
        for process in list(self.processes.values()):
            self._signal(process, signal.SIGTERM)
        killer = self._reactor.callLater(STOP_WAIT, self._kill_all)
        return self._stopped.addBoth(lambda r: killer.active() and killer.cancel())

    def _kill_all(self):
        for process in list(self.processes.values()):
            self._signal(process, signal.SIGKILL)

    def _signal(self, process, number):
        try:
            process.transport.signalProcess(number)
        except Exception:  # (already gone: its processEnded is on its way)
            pass
