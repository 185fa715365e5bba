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
from echotwist.i18n import N_, _, install, language_in
from echotwist.logs import FORMATS
from echotwist.optionspec import (
    LANGUAGE,
    choice,
    from_options,
    number,
    option_row,
    option_rows,
    translated_docs,
    translated_usage,
)
from echotwist.settings import Settings
from echotwist.throttle import Limits
from echotwist.twistd_options import check_pidfile, logfile_option

DEFAULT_PORT = 9090
# Relative, as the contract says: the data folder is found from where the
# server (and echolab-admin) is started; both say the absolute path.
DEFAULT_DATA_DIR = "echolab-data"

LISTEN_HELP = N_(
    "Also listen on a Twisted endpoint; repeatable. Examples: "
    "--listen 'tcp6:9090:interface=\\:\\:1' (quoted, or a shell eats the "
    "backslashes), ssl:9443:privateKey=key.pem:certKey=cert.pem, "
    "unix:/run/echolab.sock, haproxy:tcp:9092:interface=127.0.0.1 (behind "
    "a trusted load balancer sending PROXY headers; bind it to an "
    "interface only the balancer reaches). A string listens on every "
    "interface unless it names one. Without --port, only these."
)
"""The help of C{--listen}, on one line (--help rewraps it), for the catalogs."""
_defaults = Settings()
_limits = Limits()


def _rotate_bytes(text):
    """
    C{--log-rotate-bytes}: 0, or a size of at least 1000 bytes.
    """
    return 0 if text.strip() == "0" else _LOG_SIZE(text)


_LOG_SIZE = number(int, 1000)
_rotate_bytes.doc = "Must be 0 or a whole number, at least 1000."


def _endpoint_string(text):
    """
    A server endpoint string, checked now (a bad one is a usage error, not
    a failed start).
    """
    try:
        endpoint_from(None, text)
    except Exception as e:
        raise ValueError(str(e)) from None
    return text


# The rows of twistd echolab's options: its own, then those generated from
# the settings declared in echotwist.settings (optionspec).
OPTION_FLAGS = [
    [
        "trace",
        None,
        "Log every frame in and out of each framed connection, decoded, "
        "passwords and tokens redacted, mistakes explained (for "
        "debugging a client: it writes a great deal).",
    ],
]

OPTION_PARAMETERS = [
    option_row(
        "port",
        None,
        "TCP port to listen on; 0 takes any free port [default: "
        "{port}; asked for when not given on a terminal].",
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
        DEFAULT_DATA_DIR,
        "Directory of the stores and the log, created with mode 0700.",
        short="d",
    ),
    option_row("log-file", None, "Log file [default: echolab.log in --data-dir]."),
    option_row(
        "log-rotate-bytes",
        10_000_000,
        "Rotate the log at this size; 0: never (for logrotate, which "
        "moves the file and sends SIGUSR1 to have it reopened).",
        _rotate_bytes,
    ),
    option_row("log-keep", 10, "Rotated log files to keep.", number(int, 1, 1000)),
    option_row(
        "trace-file",
        None,
        "Write the --trace lines to this file (mode 0600, rotated as the "
        "log) instead of the log; implies --trace.",
    ),
    option_row(
        "log-client-lines",
        ALLOWANCE,
        "Log lines about one client address per minute; the rest are "
        "counted and summarised in one line.",
        number(int, 1, 1_000_000),
    ),
    option_row(
        "lang",
        None,
        "Language of the console and of the texts in replies: en or ru "
        "[default: from LC_ALL, LC_MESSAGES or LANG]. The log stays in English.",
        LANGUAGE,
    ),
    option_row(
        "log-format",
        "text",
        "text (lines for people) or json (twisted.logger's JSON, one "
        "object a line, for log shippers).",
        choice(*FORMATS),
    ),
    option_row(
        "metrics",
        None,
        "Serve Prometheus metrics at /metrics and a health check at "
        "/healthz on this Twisted endpoint, e.g. tcp:9100:interface=127.0.0.1 "
        "[default: off].",
        _endpoint_string,
    ),
    *option_rows(Settings),
    *option_rows(HashSettings),
    *option_rows(Limits),
    *option_rows(Deployment),
]


class Options(usage.Options):
    """
    C{twistd echolab} options. Every limit has a default that suits a
    single machine; see C{--help}.
    """

    synopsis = "[options]"
    longdesc = N_(
        "Serve the echolab protocol (length-prefixed JSON over TCP) in echo, "
        "ident or auth mode. Service messages go to the log file; the console "
        "shows the port really listened on."
    )

    optFlags = OPTION_FLAGS
    optParameters = OPTION_PARAMETERS

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
            sys.stderr.write(
                f"twistd echolab: {e} " + _("(see twistd echolab --help)") + "\n"
            )
            raise SystemExit(2) from None

    def __init__(self):
        # The language is known before the options are parsed, so that
        # --help and the errors are in it (--lang, else the locale).
        install(language_in(sys.argv[1:]))
        super().__init__()
        self["listen"] = []
        self["raw-listen"] = []
        self.docs = translated_docs(self.docs, self.optParameters)
        self.docs["port"] = self.docs["port"].format(port=DEFAULT_PORT)
        self.longdesc = _(self.longdesc)

    def getUsage(self, width=None):
        return translated_usage(super().getUsage(width))

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
        self["listen"].append(_checked_endpoint("listen", description))

    opt_listen.__doc__ = LISTEN_HELP

    def opt_raw_listen(self, description):
        """
        Also listen on a Twisted endpoint (as --listen does) for raw echo
        (RFC 862): every byte sent back as it came, no frames, no JSON, for
        nc and first plain-socket clients; repeatable. Example: --raw-listen
        tcp:7007:interface=127.0.0.1 next to --port 9090. Its connections
        count toward --max-connections and time out as --idle-timeout and
        --stall-timeout say.
        """
        self["raw-listen"].append(_checked_endpoint("raw-listen", description))

    opt_raw_listen.__doc__ = " ".join(opt_raw_listen.__doc__.split())

    # Read the port from a person: replaced in tests.
    _stdin = sys.stdin
    _stdout = sys.stdout

    def _check_shared_listeners(self):
        """
        C{--workers} hands the parent's sockets to its workers, which serve
        them all alike (as C{--mode} says): plain TCP ones, bare or behind
        C{haproxy:}. A C{--raw-listen} beside framed listeners would need
        each worker to tell the sockets apart, so it is refused.
        """
        if self["raw-listen"]:
            raise usage.UsageError(
                "--raw-listen cannot be used with --workers (use --mode raw)"
            )
        for description in self["listen"]:
            kind = description.removeprefix("haproxy:").split(":", 1)[0]
            if kind not in ("tcp", "tcp6"):
                raise usage.UsageError(
                    f"--listen {description}: --workers shares only tcp, "
                    "tcp6 and haproxy:tcp listeners"
                )

    def postOptions(self):
        install(self["lang"])
        twistd = getattr(self, "parent", None)
        if twistd is not None:
            check_pidfile(twistd.get("pidfile"))
        if (self["trace"] or self["trace-file"]) and self["metrics"]:
            raise usage.UsageError(
                _("--trace is for debugging a client, not with --metrics")
            )
        if self["workers"] > 1:
            self._check_shared_listeners()
            if self["metrics"] and not self["metrics"].startswith(("tcp:", "tcp6:")):
                raise usage.UsageError(
                    _("--metrics with --workers takes a tcp: or tcp6: endpoint")
                )
        if self["port"] is None and not (self["listen"] or self["raw-listen"]):
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
        if self["trace-file"] is not None:
            self["trace"] = True
            self["trace-file"] = os.path.abspath(self["trace-file"])
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
                _("Port to listen on"), DEFAULT_PORT, prompts.parse_port, read, write
            )
        except (EOFError, KeyboardInterrupt):
            self._stdout.write("\n" + _("No port given; not starting.") + "\n")
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


def _checked_endpoint(option, description):
    """
    C{description}, once it parses as an endpoint string.
    """
    try:
        # Parsing checks the string and loads any certificate files; the
        # reactor is only needed to listen, later.
        endpoint_from(None, description)
    except Exception as e:
        raise usage.UsageError(f"--{option} {description}: {e}") from None
    return description


def _make_private_dir(path):
    """
    Create C{path} with mode 0700 if it is missing (whatever the umask).
    """
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)
