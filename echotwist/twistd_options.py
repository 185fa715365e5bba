# -*- test-case-name: tests.test_twistd -*-
"""
twistd's own options, as echolab takes them: its pid file checked before
twistd does (one clear line when another server holds it), and its
C{--logfile} honoured as C{--log-file}.
"""

import os
import sys

from twisted.python import usage


def check_pidfile(pidfile):
    """
    twistd's pid file (C{twistd.pid} in the current directory unless
    C{--pidfile} names another; none with C{--pidfile=}), checked before
    twistd does: another server holding it is one line naming the
    options that run a second one, where twistd's five lines would
    suggest its C{--logfile}. A pid file that cannot be written is a
    usage error now, where a daemon's twistd would only say so to its
    log (see L{echotwist.startup.leave_failures_to_the_daemon}).
    """
    if not pidfile:
        return
    path = os.path.abspath(pidfile)
    pid = _running_pid(path)
    if pid is not None:
        sys.stderr.write(
            f"echolab: another twistd server (pid {pid}) holds {path}; to run "
            "a second server, give it its own --pidfile= and --data-dir: "
            "twistd --pidfile=second.pid echolab --data-dir second-data\n"
        )
        raise SystemExit(1)
    try:
        if os.path.exists(path):  # (stale: twistd replaces it)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(path)
    except OSError as e:
        raise usage.UsageError(f"twistd's --pidfile: {e}") from None


def logfile_option(logfile, log_file):
    """
    twistd's C{--logfile}, taken as C{--log-file}: the service gives
    twistd a log observer of its own (rotated, with a budget per
    client), so twistd itself would silently ignore the option.

    @param log_file: the value of C{--log-file}, or L{None}.
    @return: the log file's absolute path.
    """
    if logfile == "-":
        raise usage.UsageError(
            "twistd's --logfile -: echolab logs to a file, not to standard "
            "output (which shows the listening line); name a file"
        )
    path = os.path.abspath(logfile)
    if log_file is not None and os.path.abspath(log_file) != path:
        raise usage.UsageError(
            f"twistd's --logfile {logfile} and --log-file {log_file} "
            "name different files; give one"
        )
    return path


def _running_pid(path):
    """
    The process named by the pid file C{path}, if it runs (as twistd's
    C{checkPID} decides); L{None} if there is no such file, or one that
    twistd removes as stale or refuses itself.
    """
    try:
        with open(path) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid  # (another user's)
    except OSError:
        return None
    return pid
