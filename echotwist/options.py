# -*- test-case-name: tests.test_tap -*-
"""
C{twistd echolab}'s command line: the options, their checks, and the
questions asked of a person at a terminal. The settings' own options are
declared with the settings (L{echotwist.optionspec}).
"""

import os
import sys

from twisted.python import usage

from echotwist import prompts
from echotwist.deployment import Deployment
from echotwist.hashing import HashSettings
from echotwist.listening import endpoint_from
from echotwist.logbudget import ALLOWANCE
from echotwist.optionspec import from_options, number, option_row, option_rows
from echotwist.settings import Settings
from echotwist.throttle import Limits
from echotwist.twistd_options import check_pidfile, logfile_option

DEFAULT_PORT = 9090
_defaults = Settings()
_limits = Limits()


class Options(usage.Options):
    """
    C{twistd echolab} options. Every limit has a default that suits a
    single machine; see C{--help}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the echolab protocol (length-prefixed JSON over TCP) in echo, "
        "ident or auth mode. Service messages go to the log file; the console "
        "shows the port really listened on."
    )

    optParameters = [
        option_row(
            "port",
            None,
            "TCP port to listen on; 0 takes any free port [default: "
            f"{DEFAULT_PORT}; asked for when not given on a terminal].",
            prompts.parse_port,
            short="p",
        ),
        option_row(
            "port-tries",
            10,
            "Ports to try from --port, the first included, when it is taken.",
            number(int, 1, 1000),
        ),
        option_row(
            "interface",
            "127.0.0.1",
            "IP address to listen on (IPv4 or IPv6).",
            prompts.parse_interface,
        ),
        option_row(
            "backlog",
            1024,
            "Listen backlog (pending connects), for --port "
            "and for --listen strings that name none.",
            number(int, 1, 65535),
        ),
        option_row(
            "data-dir",
            "echolab-data",
            "Directory of the stores and the log, created with mode 0700.",
            short="d",
        ),
        option_row("log-file", None, "Log file [default: echolab.log in --data-dir]."),
        option_row(
            "log-rotate-bytes",
            10_000_000,
            "Rotate the log at this size.",
            number(int, 1000),
        ),
        option_row("log-keep", 10, "Rotated log files to keep.", number(int, 1, 1000)),
        option_row(
            "log-client-lines",
            ALLOWANCE,
            "Log lines about one client address per minute; the rest are "
            "counted and summarised in one line.",
            number(int, 1, 1_000_000),
        ),
        *option_rows(Settings),
        *option_rows(HashSettings),
        *option_rows(Limits),
        *option_rows(Deployment),
    ]

    def parseOptions(self, options=None):
        """
        Under twistd (as its C{echolab} subcommand), a bad option is one line
        on standard error and exit status 2, instead of twistd's whole usage
        text.
        """
        self.raw_args = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"twistd echolab: {e} (see twistd echolab --help)\n")
            raise SystemExit(2) from None

    def __init__(self):
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description):
        """
        Also listen on a Twisted endpoint; repeatable. Examples:
        --listen 'tcp6:9090:interface=\\:\\:1' (quoted, or a shell eats the
        backslashes), ssl:9443:privateKey=key.pem:certKey=cert.pem,
        unix:/run/echolab.sock, haproxy:tcp:9092:interface=127.0.0.1 (behind
        a trusted load balancer sending PROXY headers; bind it to an
        interface only the balancer reaches). A string listens on every
        interface unless it names one. Without --port, only these.
        """
        try:
            # Parsing checks the string and loads any certificate files; the
            # reactor is only needed to listen, later.
            endpoint_from(None, description)
        except Exception as e:
            raise usage.UsageError(f"--listen {description}: {e}") from None
        self["listen"].append(description)

    opt_listen.__doc__ = " ".join(opt_listen.__doc__.split())  # (--help rewraps)

    # Read the port from a person: replaced in tests.
    _stdin = sys.stdin
    _stdout = sys.stdout

    def postOptions(self):
        twistd = getattr(self, "parent", None)
        if twistd is not None:
            check_pidfile(twistd.get("pidfile"))
        if self["workers"] > 1:
            for description in self["listen"]:
                kind = description.removeprefix("haproxy:").split(":", 1)[0]
                if kind not in ("tcp", "tcp6"):
                    raise usage.UsageError(
                        f"--listen {description}: --workers shares only tcp, "
                        "tcp6 and haproxy:tcp listeners"
                    )
        if self["port"] is None and not self["listen"]:
            self["port"] = self._ask_port()
        self["data-dir"] = os.path.abspath(self["data-dir"])
        try:
            _make_private_dir(self["data-dir"])
        except OSError as e:
            raise usage.UsageError(f"--data-dir: {e}") from None
        log_option = "--log-file"
        if twistd is not None and twistd.get("logfile"):
            log_option = "--logfile"
            self["log-file"] = logfile_option(twistd["logfile"], self["log-file"])
        if self["log-file"] is None:
            self["log-file"] = os.path.join(self["data-dir"], "echolab.log")
        self["log-file"] = os.path.abspath(self["log-file"])
        try:  # fail now, in one line, rather than in twistd's start-up
            os.close(
                os.open(self["log-file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            )
        except OSError as e:
            raise usage.UsageError(f"{log_option}: {e}") from None

    def _ask_port(self):
        """
        Lab task 2: ask a person for the port, if there is one to ask.
        """
        stdin = self._stdin
        if stdin is None or not stdin.isatty():
            return DEFAULT_PORT

        def read(prompt):
            self._stdout.write(prompt)
            self._stdout.flush()
            line = stdin.readline()
            if not line:
                raise EOFError()
            return line

        def write(line):
            self._stdout.write(line + "\n")

        try:
            return prompts.ask(
                "Port to listen on", DEFAULT_PORT, prompts.parse_port, read, write
            )
        except (EOFError, KeyboardInterrupt):
            self._stdout.write("\nNo port given; not starting.\n")
            raise SystemExit(0) from None

    def settings(self):
        """
        @rtype: L{Settings}
        """
        return from_options(Settings, self)

    def hashing(self):
        """
        @rtype: L{HashSettings}
        """
        return from_options(HashSettings, self)

    def limits(self):
        """
        @rtype: L{Limits}
        """
        return from_options(Limits, self)

    def deployment(self):
        """
        @rtype: L{Deployment}
        """
        return from_options(Deployment, self)


def _make_private_dir(path):
    """
    Create C{path} with mode 0700 if it is missing (whatever the umask).
    """
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)
