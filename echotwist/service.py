# -*- test-case-name: tests.test_service -*-
"""
The running server as Twisted services: the log file, the stores, the
clients, and the listeners (L{echotwist.listening}), started in that
order, with start-up failures said in one line on the console
(L{echotwist.startup}).
"""

import fcntl
import os
import signal
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger

from echotwist.i18n import N_, _
from echotwist.listening import ListenerService
from echotwist.logbudget import ClientLogBudget
from echotwist.logs import ReopenOnSignal, open_log
from echotwist.startup import (
    StartupError,
    console,
    exit_status,
    leave_failures_to_the_daemon,
    tell,
)

__all__ = ["ClientsService", "DataDirectoryLock", "EchoService", "StoresService"]

log = Logger()


class Console:
    """
    The terminal the server speaks to while it starts: the listening line
    goes to C{out}, a start-up failure to C{err}; both are L{None} once it
    has started.

    Given none, they are duplicates of the real standard output and error
    (L{console}), taken once the service is attached to twistd's
    application, before twistd logs to it and daemonizes.
    """

    def __init__(self, out, err):
        self._to_duplicate = [fd for fd, given in ((1, out), (2, err)) if given is None]
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self._owned = []

    def duplicate(self):
        """
        Take the duplicates that the console defaults to.
        """
        for fd in self._to_duplicate:
            stream = console(fd)
            if stream is not None:
                self._owned.append(stream)
            if fd == 1:
                self.out = stream
            else:
                self.err = stream
        self._to_duplicate = []

    def release(self):
        """
        Close the duplicates taken: the server has started, or failed to.
        """
        for stream in self._owned:
            try:
                stream.close()
            except OSError:
                pass
        self._owned = []
        self._to_duplicate = []
        self.out = self.err = None


class EchoService(service.MultiService):
    """
    The whole server. Attached to a twistd C{Application}, it makes the log
    file the application's log observer, so every service message (and
    twistd's own) goes there and the console only shows the listening line.

    @ivar console: the terminal it speaks to (L{Console}).
    """

    console_out = property(lambda self: self.console.out)
    console_err = property(lambda self: self.console.err)

    def __init__(
        self,
        reactor,
        log_path,
        rotate_bytes,
        keep,
        client_lines,
        console_out,
        console_err,
        daemon=False,
        log_format="text",
        start_lines=(),
    ):
        """
        @param client_lines: log lines about one client a minute (the
            L{ClientLogBudget}'s allowance).
        @param console_out: where the listening line goes, and
        @param console_err: where a start-up failure goes; L{None} for the
            real standard output and error: duplicates of them once the
            service is attached to twistd's application, closed once the
            server has started.
        @param daemon: twistd is about to daemonize this process (see
            L{leave_failures_to_the_daemon}).
        @param log_format: C{"text"} or C{"json"} (L{echotwist.logs}).
        @param start_lines: what the log says first at every start, before
            the listening lines: version, mode, data folder, listeners,
            store.
        """
        super().__init__()
        self.reactor = reactor
        self.log_path = log_path
        self._rotate = rotate_bytes, keep, log_format
        self.start_lines = list(start_lines)
        self._client_lines = client_lines
        self.console = Console(console_out, console_err)
        self._daemon = daemon
        self.logfile = None
        self.log_budget = None
        self._reopener = None
        self._stopping = False

    def setServiceParent(self, parent):
        super().setServiceParent(parent)
        if hasattr(parent, "setComponent"):
            self.console.duplicate()
            observer, self.logfile = open_log(self.log_path, *self._rotate)
            self._reopener = ReopenOnSignal(self.logfile, self.reactor, log)
            self.log_budget = ClientLogBudget(
                observer, self.reactor, allowance=self._client_lines
            )
            parent.setComponent(ILogObserver, self.log_budget)
            if self._daemon:
                leave_failures_to_the_daemon()

    def privilegedStartService(self):
        """
        Start the children, or undo what did start, say why in one line on
        the console, and raise: twistd then reports the failure as its own
        (exit status 1, the pid file removed), through its status pipe when
        it daemonized. An exception, not L{SystemExit}: twistd only reports
        exceptions, and its daemon's parent would wait for a status forever.
        """
        service.Service.privilegedStartService(self)
        for line in self.start_lines:
            log.info("{line}", line=line)
        started = []
        try:
            for child in self:
                child.privilegedStartService()
                started.append(child)
        except Exception as e:
            self._abandon_start(started, e)
            raise

    def startService(self):
        try:
            if self.log_budget is not None:
                self.log_budget.start()
            super().startService()
        except Exception as e:
            self._abandon_start(list(self), e)
            raise
        self.reactor.callWhenRunning(self._take_stop_signals)
        listened = [c.listened for c in self if isinstance(c, ListenerService)]
        defer.gatherResults(listened, consumeErrors=True).addCallbacks(
            self._started, self._failed_late
        )

    def _started(self, ports):
        """
        Every listener listens and has said so: the daemon keeps no hold on
        the starter's terminal or pipe. (Endpoints that answer at once have,
        before twistd tells its daemon's parent that the server started.)
        """
        self.console.release()

    def _failed_late(self, failure):
        """
        A listener's endpoint failed after the services started: start-up
        fails all the same, in one line, but twistd can no longer report
        it, so stop here, with exit status 1 (L{exit_status}).
        """
        failure.trap(defer.FirstError)
        if not self.running:  # (stopping anyway)
            return
        self._abandon_start([], failure.value.subFailure.value)
        exit_status(1)
        self.reactor.callWhenRunning(self.reactor.stop)

    def _abandon_start(self, started, e):
        """
        Stop the C{started} children (the stores' threads would otherwise
        keep the process alive), and say why the server cannot start.
        """
        for child in reversed(started):
            try:
                child.stopService()
            except Exception:  # (a TimerService that never started raises)
                pass
        if not isinstance(e, StartupError):
            e = StartupError(
                N_("cannot start: {kind}: {why}"), kind=type(e).__name__, why=e
            )
        log.error("cannot start: {why}", why=str(e))
        tell(self.console.err, "echolab: " + e.translated())
        self.console.release()

    def _take_stop_signals(self):
        """
        Reopen the log file on SIGUSR1 (L{ReopenOnSignal}).

        Stop on SIGTERM and SIGINT with exit status 0. twistd's own handlers
        stop just as cleanly (every client gets its C{bye}, the stores are
        closed) but then re-raise the signal, so a requested stop would end
        as if the process had been killed (status 143 or 130). Signals that
        were ignored (a background job's SIGINT) stay ignored.
        """
        if self._reopener is not None and self.running:
            self._reopener.install()
        for number in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(number) not in (signal.SIG_IGN, signal.SIG_DFL, None):
                signal.signal(number, self._stop_on_signal)

    def _stop_on_signal(self, number, frame):
        if not self._stopping:  # a second signal changes nothing
            self._stopping = True
            log.info("received {signal}; stopping", signal=signal.Signals(number).name)
            self.reactor.callFromThread(self.reactor.stop)

    def announce(self, message, **values):
        """
        Say C{message} (an English text with C{{placeholders}} for
        C{values}) on the console in the language in use, and in the log
        in English.
        """
        tell(self.console.out, _(message).format(**values))
        log.info("{line}", line=message.format(**values))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop the children one after the other, last started first: clients
        get their C{bye} while the stores are still open.
        """
        service.Service.stopService(self)
        self.console.release()  # (some endpoint may never have answered)
        if self._reopener is not None:
            self._reopener.uninstall()
        for child in reversed(list(self)):
            yield child.stopService()
        if self.log_budget is not None:
            self.log_budget.stop()  # the clients' last summaries
        log.info("stopped")
        # The log file stays open: twistd still writes its last lines after
        # this, and the file is unbuffered, so exiting loses nothing.


class DataDirectoryLock(service.Service):
    """
    Hold a lock on the data directory while the server runs: a second
    server on the same stores would not see the first one's revocations
    (their caches are their own), nor its log rotation.
    """

    def __init__(self, data_dir, database=None):
        """
        @param database: the SQLite file the server will keep its stores
            in, if any: when it is missing, the log says the folder is new
            (a server started from another folder by mistake shows it).
        """
        self.path = os.path.join(data_dir, "echolab.lock")
        self._database = database
        self._file = None

    def privilegedStartService(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StartupError(
                N_("another echolab server is using {directory}"),
                directory=os.path.dirname(self.path),
            ) from None
        self._file = fd
        if self._database is not None and not os.path.exists(self._database):
            log.info(
                "data folder: {data_dir} (new: no database yet)",
                data_dir=os.path.dirname(self.path),
            )
        super().privilegedStartService()

    def stopService(self):
        super().stopService()
        if self._file is not None:
            os.close(self._file)  # (the kernel also releases it if we are killed)
            self._file = None


class StoresService(service.Service):
    """
    Open the database before the port, and close it after.
    """

    def __init__(self, database, hasher=None):
        self.database = database
        self.hasher = hasher

    def privilegedStartService(self):
        from echotwist.store import StoreError

        try:
            self.database.open()
        except (StoreError, OSError) as e:
            raise StartupError(str(e)) from None
        if self.hasher is not None:
            self.hasher.start()
        super().privilegedStartService()

    def stopService(self):
        super().stopService()
        if self.hasher is not None:
            self.hasher.stop()
        self.database.close()


class ClientsService(service.Service):
    """
    Stopping it says C{bye} to every client and waits for them to go. It
    stops after the listeners (no new clients come) and before the stores
    (still open for the work clients have in flight).
    """

    def __init__(self, factory):
        self.factory = factory

    def stopService(self):
        super().stopService()
        return self.factory.say_goodbye()
