# -*- test-case-name: tests.test_logs -*-
"""
The server's log file: lines for people (L{LogLines}) or JSON lines for
log shippers (L{json_lines}), in a file that rotates itself by size or is
reopened on C{SIGUSR1} after an external tool (logrotate) moved it
(L{ReopenOnSignal}).
"""

import os
import signal
import time

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    eventAsText,
    formatTime,
    jsonFileLogObserver,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

__all__ = ["FORMATS", "LogLines", "ReopenOnSignal", "json_lines", "open_log"]

FORMATS = ("text", "json")

REOPEN_SIGNAL = signal.SIGUSR1
"""
The signal that makes the server reopen its log file: the one nginx and
many daemons use for it, so logrotate snippets look as operators expect.
(twistd's own log, which this server does not use, rotates on it.)
"""


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


def json_lines(logfile, level=LogLevel.info):
    """
    An observer writing events of C{level} and above to C{logfile} in
    twisted.logger's JSON format, one object a line (C{jsonFileLogObserver}
    without its record separator), which log shippers read as JSON lines
    and C{twisted.logger.eventsFromJSONLogFile} reads back as events.
    """
    return FilteringLogObserver(
        jsonFileLogObserver(logfile, recordSeparator=""),
        [LogLevelFilterPredicate(defaultLogLevel=level)],
    )


def open_log(path, rotate_bytes, keep, format="text"):
    """
    An observer writing info and above to C{path} (mode 0600) in
    C{format} (one of L{FORMATS}), and its file: rotated when it reaches
    C{rotate_bytes} (0: never, an external tool rotates it), keeping
    C{keep} old files.
    """
    if format not in FORMATS:
        raise ValueError(f"log format {format!r} is not one of {FORMATS}")
    logfile = LogFile.fromFullPath(
        path, rotateLength=rotate_bytes or None, maxRotatedFiles=keep, defaultMode=0o600
    )
    observer = LogLines(logfile) if format == "text" else json_lines(logfile)
    return observer, logfile


class ReopenOnSignal:
    """
    Reopen a log file on L{REOPEN_SIGNAL}, for logrotate: it moves the file
    away, sends the signal, and the lines that follow go to a new file at
    the old path. The reopening itself runs on the reactor thread, not in
    the signal handler, so it never interleaves with a line being written.
    """

    def __init__(self, logfile, reactor, log):
        """
        @param logfile: a C{twisted.python.logfile.LogFile}.
        @param log: a L{twisted.logger.Logger} to say it in.
        """
        self._logfile = logfile
        self._reactor = reactor
        self._log = log
        self._previous = None

    def install(self):
        self._previous = signal.signal(REOPEN_SIGNAL, self._on_signal)

    def uninstall(self):
        if self._previous is not None:
            signal.signal(REOPEN_SIGNAL, self._previous)
            self._previous = None

    def _on_signal(self, number, frame):
        self._reactor.callFromThread(self.reopen)

    def reopen(self):
        """
        Reopen the file at its path (creating it, mode 0600). If that path
        cannot be written, the open file goes on, and says why.
        """
        name = signal.Signals(REOPEN_SIGNAL).name
        self._log.info("received {signal}; reopening the log file", signal=name)
        path = self._logfile.path
        try:  # first, so that a failure leaves the old file open
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as e:
            self._log.error("cannot reopen the log file: {why}", why=str(e))
            return
        self._logfile.reopen()
        self._log.info(
            "log file {path} reopened after {signal}", path=path, signal=name
        )
