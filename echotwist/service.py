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
import time

from twisted.application import service
from twisted.internet import defer
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    eventAsText,
    formatTime,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from echotwist.i18n import N_, _
from echotwist.listening import ListenerService
from echotwist.logbudget import ClientLogBudget
from echotwist.startup import (
    StartupError,
    console,
    exit_status,
    leave_failures_to_the_daemon,
    tell,
)

__all__ = ["ClientsService", "DataDirectoryLock", "EchoService", "StoresService"]

log = Logger()


@implementer(ILogObserver)
class LogLines:
    """
    Write events of a level (info) and above as lines, as Twisted's text log
    does: C{TIME [namespace#level] message}, with any traceback below.
    Twisted's observer formats the time of every event, behind a filter
    and a wrapper; this one formats it once a second, so the lines written
    for every connection cost half as much.
    """

    def __init__(self, logfile, level=LogLevel.info):
        self._file = logfile
        self._level = level
        self._second = None
        self._stamp = ""

    def __call__(self, event):
        if event.get("log_level", LogLevel.info) < self._level:
            return
        second = int(event.get("log_time") or time.time())
        if second != self._second:
            self._second, self._stamp = second, formatTime(second)
        text = _plain_event_text(event)
        if text is None:
            text = eventAsText(event, includeTimestamp=False)
        if text:
            text = text.replace("\n", "\n\t")  # continuation lines, as Twisted's
            self._file.write(f"{self._stamp} {text}\n".encode("utf-8"))


def _plain_event_text(event):
    """
    What C{eventAsText(event, includeTimestamp=False)} gives, for an event
    with a plain text format and no failure, system or flattened fields (the
    server's own lines); L{None} for any other event.

    Twisted formats with a pure-Python C{string.Formatter} (to allow
    C{"{method()}"} fields); C{str.format_map} does the rest of the same
    syntax in C, which makes each connection's lines cheaper for the
    reactor. A format it cannot do falls back to Twisted's.
    """
    format = event.get("log_format")
    if type(format) is not str or not _PLAIN_EVENT.isdisjoint(event):
        return None
    try:
        text = format.format_map(event)
    except Exception:
        return None
    level = event.get("log_level")
    level = "-" if level is None else level.name
    return f"[{event.get('log_namespace', '-')}#{level}] {text}" if text else ""


_PLAIN_EVENT = frozenset({"log_failure", "log_system", "log_flattened"})


def open_log(path, rotate_bytes, keep):
    """
    An observer writing info and above to C{path} (mode 0600), rotated
    when it reaches C{rotate_bytes}, keeping C{keep} old files.
    """
    logfile = LogFile.fromFullPath(
        path, rotateLength=rotate_bytes, maxRotatedFiles=keep, defaultMode=0o600
    )
    return LogLines(logfile), logfile


class EchoService(service.MultiService):
    """
    The whole server. Attached to a twistd C{Application}, it makes the log
    file the application's log observer, so every service message (and
    twistd's own) goes there and the console only shows the listening line.

    @ivar console_out: where the listening line goes, and
    @ivar console_err: where a start-up failure goes: by default the real
        standard output and error (see L{console}); L{None} once started.
    """

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
        """
        super().__init__()
        self.reactor = reactor
        self.log_path = log_path
        self._rotate = rotate_bytes, keep
        self._client_lines = client_lines
        self._to_duplicate = [
            fd for fd, given in ((1, console_out), (2, console_err)) if given is None
        ]
        self.console_out = sys.stdout if console_out is None else console_out
        self.console_err = sys.stderr if console_err is None else console_err
        self._owned_console = []
        self._daemon = daemon
        self.logfile = None
        self.log_budget = None
        self._stopping = False

    def setServiceParent(self, parent):
        super().setServiceParent(parent)
        if hasattr(parent, "setComponent"):
            self._duplicate_console()
            observer, self.logfile = open_log(self.log_path, *self._rotate)
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
        self._release_console()

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
        tell(self.console_err, "echolab: " + e.translated())
        self._release_console()

    def _duplicate_console(self):
        """
        Attached to twistd's application, before twistd starts logging to
        it and before it daemonizes: take the duplicates that the console
        defaults to (L{console}).
        """
        for fd in self._to_duplicate:
            stream = console(fd)
            if stream is not None:
                self._owned_console.append(stream)
            if fd == 1:
                self.console_out = stream
            else:
                self.console_err = stream
        self._to_duplicate = []

    def _release_console(self):
        for stream in self._owned_console:
            try:
                stream.close()
            except OSError:
                pass
        self._owned_console = []
        self._to_duplicate = []
        self.console_out = self.console_err = None

    def _take_stop_signals(self):
        """
        Stop on SIGTERM and SIGINT with exit status 0. twistd's own handlers
        stop just as cleanly (every client gets its C{bye}, the stores are
        closed) but then re-raise the signal, so a requested stop would end
        as if the process had been killed (status 143 or 130). Signals that
        were ignored (a background job's SIGINT) stay ignored.
        """
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
        tell(self.console_out, _(message).format(**values))
        log.info("{line}", line=message.format(**values))

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop the children one after the other, last started first: clients
        get their C{bye} while the stores are still open.
        """
        service.Service.stopService(self)
        self._release_console()  # (some endpoint may never have answered)
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

    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, "echolab.lock")
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
        from echotwist.store import DATABASE_FILE

        data_dir = os.path.dirname(self.path)
        new = not os.path.exists(os.path.join(data_dir, DATABASE_FILE))
        log.info(
            "data folder: {data_dir}{new}",
            data_dir=data_dir,
            new=" (new: no database yet)" if new else "",
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
