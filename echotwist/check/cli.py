# -*- test-case-name: tests.test_check_command -*-
"""
The C{echolab-check} command: parse the command line, run the checks,
print the report, write the CI files, exit 0 only when nothing failed.

Exit statuses: 0 nothing failed (skips allowed), 1 a check failed, 2 bad
arguments (one line on standard error), 130 interrupted (Ctrl-C).
"""

import argparse
import fnmatch
import sys


from echotwist.check import report, runner, writers
from echotwist.check.context import resolve
from echotwist.messages import MODES
from echotwist.prompts import parse_host, parse_port

PROGRAM = "echolab-check"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _seconds(most):
    def parse(value):
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
        if seconds is None or not 0 < seconds <= most:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a number of seconds (more than 0, at most {most:g})"
            )
        return seconds

    return parse


class UsageError(Exception):
    """
    The command line is wrong; the message says why, in one line.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parser():
    p = _Parser(
        prog=PROGRAM,
        description=(
            "Check an echolab server (or any server claiming to speak the "
            "echolab protocol) against the contract, check by check, grouped "
            "by lab task. See docs/check.md."
        ),
    )
    p.add_argument("target", nargs="?", metavar="HOST:PORT", help="the server")
    p.add_argument(
        "--mode",
        "-m",
        choices=MODES,
        help="the mode the server must be in [default: the one its welcome names]",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, verifying the server's certificate and name",
    )
    p.add_argument(
        "--ca",
        metavar="FILE",
        help="PEM file of the CA that signed the server's certificate "
        "(implies --tls) [default: the system's trust store]",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--junit", metavar="FILE", help="also write the results as JUnit XML"
    )
    p.add_argument(
        "--only",
        metavar="IDS",
        help="run only these checks: ids or patterns (framing.*), separated by commas",
    )
    p.add_argument(
        "--server-timeout",
        metavar="SECONDS",
        type=_seconds(50),
        help="the server's login and idle time-out, when it was started "
        "with one short enough to watch [default: that check is skipped]",
    )
    p.add_argument(
        "--budget",
        metavar="SECONDS",
        type=_seconds(runner.BUDGET),
        default=runner.BUDGET,
        help="seconds the whole run may take [default and most: 60]",
    )
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    return p


def parse(argv):
    """
    @return: the options, C{checks} (selected), C{host} and C{port} added.
    @raise UsageError: with one line for a person.
    """
    options = parser().parse_args(argv)
    if options.ca:
        options.tls = True
    options.checks = select(runner.all_checks(), options.only)
    if not options.list:
        if options.target is None:
            raise UsageError("give the server as HOST:PORT")
        options.host, options.port = parse_target(options.target)
    return options


def parse_target(text):
    """
    C{HOST:PORT} (an IPv6 host in brackets: C{[::1]:9090}).

    @raise UsageError: with a reason for a person.
    """
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise UsageError(f"{text!r} is not HOST:PORT")
    try:
        return parse_host(host, resolve=False), parse_port(port, allow_zero=False)
    except ValueError as e:
        raise UsageError(str(e)) from None


def select(checks, only):
    """
    The checks C{--only} names (all of them without it).

    @raise UsageError: for a pattern that names no check.
    """
    if not only:
        return checks
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for c in checks):
            raise UsageError(
                f"--only: no check matches {pattern!r} (--list shows them)"
            )
    return [c for c in checks if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def _say(line):
    sys.stderr.write(f"{PROGRAM}: {line}\n")


def list_checks(checks):
    width = max(len(c.id) for c in checks)
    for c in checks:
        modes = "all modes" if set(c.modes) == set(MODES) else " ".join(c.modes)
        print(f"{c.id:<{width}}  task {c.task}  {c.section_refs:<8}  {modes}")


def main(argv=None):
    """
    Run the checker; exits with its status.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse(argv)
        if options.list:
            list_checks(options.checks)
            sys.exit(0)
        target = resolve(options.host, options.port, options.tls, options.ca)
    except (UsageError, ValueError) as e:
        _say(f"{e} (see --help)")
        sys.exit(EXIT_USAGE)
    try:
        found = runner.run(
            target,
            options.checks,
            mode=options.mode,
            budget=options.budget,
            server_timeout=options.server_timeout,
        )
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    print(report.text_report(found, target.where), flush=True)
    try:
        if options.json:
            writers.write_json(options.json, found, target.where)
        if options.junit:
            writers.write_junit(options.junit, found, target.where)
    except OSError as e:
        _say(f"cannot write {e.filename}: {e.strerror}")
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAILED if any(r.status == "failed" for r in found.results) else 0)
