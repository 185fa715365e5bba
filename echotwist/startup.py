# -*- test-case-name: tests.test_service -*-
"""
Saying how start-up went, on the console twistd was started from: the
duplicates of standard output and error the server keeps for it, and the
exit status when start-up fails after twistd has stopped watching.
"""

import atexit
import os
import sys

from echotwist.i18n import _


class StartupError(Exception):
    """
    The server cannot start (a port, the data directory, the stores).
    Its text is English (for the log); L{translated} is the same in the
    language in use (for the console).
    """

    def __init__(self, message, **values):
        """
        @param message: English, with C{{placeholders}} for C{values}
            (marked for the catalogs where it is written).
        """
        Exception.__init__(self, message.format(**values) if values else message)
        self.message = message
        self.values = values

    def translated(self):
        """
        The reason in the language in use.
        """
        text = _(self.message)
        return text.format(**self.values) if self.values else text


def console(fd):
    """
    A duplicate of standard output (C{fd} 1) or error (2) for the console,
    or L{None} if that stream is closed.

    twistd sends standard output and error into the log once logging
    begins, and when it daemonizes it points descriptors 0-2 at
    C{/dev/null} before the services start. A duplicate taken while the
    service is built still reaches the terminal or pipe twistd was started
    from, daemon or not.
    """
    like = sys.stdout if fd == 1 else sys.stderr
    try:
        return os.fdopen(
            os.dup(fd),
            "w",
            encoding=getattr(like, "encoding", None) or "utf-8",
            errors="backslashreplace",
        )
    except OSError:
        return None


def tell(stream, line):
    """
    Write C{line} to a console C{stream} at once (it may be a pipe), if
    there is one and anybody still reads it.
    """
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # (nobody reads it any more)
        pass


def leave_failures_to_the_daemon():
    """
    Point standard error at C{/dev/null} in a process twistd is about to
    daemonize.

    twistd's parent process waits on a pipe for the daemon's start-up
    status and, on a failure, writes its own two lines to this standard
    error (the exception's text cut at 100 bytes, as a bytes repr, and
    "Please look at log file"). The daemon has already written the failure
    as one line, through its duplicate (L{console}), so those lines would
    only repeat it. Nothing else here writes to standard error from now on:
    twistd sends C{sys.stderr} into the log once logging begins.
    """
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
    finally:
        os.close(null)


def exit_status(status):
    """
    Make the process exit with C{status} once twistd is done.

    twistd turns an exception from starting the services into exit status
    1, but once its reactor runs it has no way to fail: it stops the
    reactor, removes its pid file, writes its last log lines and returns,
    and the process exits with 0. A start-up that fails that late (an
    endpoint answering after the services started) still has to exit
    with 1, so this exits with it last thing, after twistd's clean-up.
    """

    def leave():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(status)

    atexit.register(leave)
