# -*- test-case-name: tests.test_tap -*-
"""
The one way the server is built: L{Options} for the command line and
L{makeService}, used by the twistd plugin (C{twistd -n echolab}) and by
C{echo.tac} alike.
"""

import os
import sys
from functools import partial

from twisted.application.internet import TimerService
from twisted.python import usage

from echotwist import messages, prompts
from echotwist.auth import Accounts
from echotwist.factory import EchoFactory
from echotwist.hashing import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PENDING_PER_CLIENT,
    PRIORITIES,
    Hasher,
)
from echotwist.passwords import (
    DEFAULT_MEMORY_KIB,
    DEFAULT_TIME_COST,
    MIN_MEMORY_KIB,
    MIN_TIME_COST,
    make_context,
)
from echotwist.reactor import install_default
from echotwist.logbudget import ALLOWANCE
from echotwist.service import (
    ClientsService,
    DataDirectoryLock,
    EchoService,
    EndpointService,
    ListenerService,
    StoresService,
    endpoint_from,
)
from echotwist.settings import DAY, Settings
from echotwist.tcp import listen_tcp
from echotwist.store import CredentialStore, Database, IdentityStore
from echotwist.throttle import Limits, LoginThrottle

DEFAULT_PORT = 9090
_defaults = Settings()
_limits = Limits()


def _number(kind, lowest, highest=None, unit=""):
    """
    A parser for a number in bounds, and the help text describing them.
    """
    what = "a whole number" if kind is int else "a number"
    bounds = f"at least {lowest}" if highest is None else f"{lowest}-{highest}"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {what}") from None
        if (
            value != value
            or value < lowest
            or (highest is not None and value > highest)
        ):
            raise ValueError(f"{text} is out of range ({bounds}{unit})")
        return value

    parse.doc = f"Must be {what}, {bounds}{unit}."
    return parse


def _choice(*choices):
    def parse(text):
        if text not in choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    return parse


def _option(name, default, doc, parse=None, short=None):
    """
    A row of L{usage.Options.optParameters} whose coercer turns a
    L{ValueError} into a one-line usage error naming the option.
    """
    if parse is None:
        return [name, short, default, doc]

    def coerce(text):
        try:
            return parse(text)
        except ValueError as e:
            raise usage.UsageError(f"--{name}: {e}") from None

    coerce.coerceDoc = getattr(parse, "doc", "")
    return [name, short, default, doc, coerce]


_seconds = _number(float, 1, unit=" seconds")
_count = _number(int, 1)


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
        _option(
            "port",
            None,
            "TCP port to listen on; 0 takes any free port [default: "
            f"{DEFAULT_PORT}; asked for when not given on a terminal].",
            prompts.parse_port,
            short="p",
        ),
        _option(
            "port-tries",
            10,
            "Ports to try from --port, the first included, when it is taken.",
            _number(int, 1, 1000),
        ),
        _option(
            "interface",
            "127.0.0.1",
            "IP address to listen on (IPv4 or IPv6).",
            prompts.parse_interface,
        ),
        _option(
            "mode",
            "auth",
            "echo, ident (by IP address) or auth (login).",
            _choice(*messages.MODES),
            short="m",
        ),
        _option(
            "data-dir",
            "echolab-data",
            "Directory of the stores and the log, created with mode 0700.",
            short="d",
        ),
        _option("log-file", None, "Log file [default: echolab.log in --data-dir]."),
        _option(
            "log-rotate-bytes",
            10_000_000,
            "Rotate the log at this size.",
            _number(int, 1000),
        ),
        _option("log-keep", 10, "Rotated log files to keep.", _number(int, 1, 1000)),
        _option(
            "log-client-lines",
            ALLOWANCE,
            "Log lines about one client address per minute; the rest are "
            "counted and summarised in one line.",
            _number(int, 1, 1_000_000),
        ),
        _option(
            "max-message",
            _defaults.max_message,
            "Largest message accepted, in bytes.",
            _number(int, 64, 64 * 1024 * 1024),
        ),
        _option(
            "max-connections",
            _defaults.max_connections,
            "Connections served at once, in all.",
            _count,
        ),
        _option(
            "max-per-address",
            _defaults.max_per_address,
            "Connections served at once from one non-loopback address.",
            _count,
        ),
        _option(
            "backlog",
            1024,
            "Listen backlog (pending connects), for --port "
            "and for --listen strings that name none.",
            _number(int, 1, 65535),
        ),
        _option(
            "login-timeout",
            _defaults.login_timeout,
            "Seconds to identify or log in.",
            _seconds,
        ),
        _option(
            "idle-timeout",
            _defaults.idle_timeout,
            "Seconds a client may send nothing.",
            _seconds,
        ),
        _option(
            "frame-timeout",
            _defaults.frame_timeout,
            "Seconds a message may stay incomplete.",
            _seconds,
        ),
        _option(
            "stall-timeout",
            _defaults.stall_timeout,
            "Seconds a client may leave the server's replies unread.",
            _seconds,
        ),
        _option(
            "linger",
            _defaults.linger,
            "Seconds a closing connection may take to drain.",
            _number(float, 0),
        ),
        _option(
            "max-bad-messages",
            _defaults.max_bad_messages,
            "Refused messages before a connection is closed.",
            _count,
        ),
        _option(
            "token-ttl",
            _defaults.token_ttl,
            "Seconds a session token stays valid.",
            _number(int, 1, 366 * DAY),
        ),
        _option(
            "hash-memory",
            DEFAULT_MEMORY_KIB,
            "argon2id memory cost, KiB (each hashing thread keeps this much).",
            _number(int, MIN_MEMORY_KIB, 4 * 1024 * 1024),
        ),
        _option(
            "hash-time",
            DEFAULT_TIME_COST,
            "argon2id time cost (passes).",
            _number(int, MIN_TIME_COST, 100),
        ),
        _option(
            "hash-threads",
            0,
            "Passwords hashed at once (0: one per CPU).",
            _number(int, 0, 256),
        ),
        _option(
            "hash-priority",
            "idle",
            "CPU priority of hashing: idle (only when the CPU is otherwise "
            "free: best echo latency when the server has its CPUs to itself, "
            "but logins stall while other processes keep them busy) or normal "
            "(a fair share).",
            _choice(*PRIORITIES),
        ),
        _option(
            "throttle-login-address",
            _limits.per_login_address,
            "Free failed logins of one login from one address.",
            _count,
        ),
        _option(
            "throttle-login",
            _limits.per_login,
            "Free failed logins of one login from all addresses.",
            _count,
        ),
        _option(
            "throttle-address",
            _limits.per_address,
            "Free failed password logins from one address.",
            _count,
        ),
        _option(
            "throttle-tokens",
            _limits.tokens_per_address,
            "Free refused tokens from one address.",
            _count,
        ),
        _option(
            "throttle-max-block",
            _limits.max_block,
            "Longest block after failed logins, seconds.",
            _seconds,
        ),
        _option(
            "budget-registrations",
            _limits.registrations,
            "Registrations one address may start per 10 minutes.",
            _count,
        ),
        _option(
            "budget-lookups",
            _limits.lookups,
            "Logins one address may ask about per minute.",
            _count,
        ),
        _option(
            "ipv6-prefix",
            _limits.ipv6_prefix,
            "Throttles and budgets count an IPv6 client by its network of "
            "this many bits.",
            _number(int, 32, 128),
        ),
        _option(
            "hash-queue",
            DEFAULT_MAX_PENDING,
            "Password hashes waiting or running, in all; more are refused "
            "(rate_limited).",
            _count,
        ),
        _option(
            "hash-queue-per-address",
            DEFAULT_MAX_PENDING_PER_CLIENT,
            "Password hashes waiting or running for one address.",
            _count,
        ),
    ]

    def parseOptions(self, options=None):
        """
        Under twistd (as its C{echolab} subcommand), a bad option is one line
        on standard error and exit status 2, instead of twistd's whole usage
        text.
        """
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
            self._check_pidfile(twistd.get("pidfile"))
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
            self["log-file"] = self._twistd_logfile(twistd["logfile"])
        if self["log-file"] is None:
            self["log-file"] = os.path.join(self["data-dir"], "echolab.log")
        self["log-file"] = os.path.abspath(self["log-file"])
        try:  # fail now, in one line, rather than in twistd's start-up
            os.close(
                os.open(self["log-file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            )
        except OSError as e:
            raise usage.UsageError(f"{log_option}: {e}") from None

    def _check_pidfile(self, pidfile):
        """
        twistd's pid file (C{twistd.pid} in the current directory unless
        C{--pidfile} names another; none with C{--pidfile=}), checked before
        twistd does: another server holding it is one line naming the
        options that run a second one, where twistd's five lines would
        suggest its C{--logfile}. A pid file that cannot be written is a
        usage error now, where a daemon's twistd would only say so to its
        log (see L{echotwist.service.leave_failures_to_the_daemon}).
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

    def _twistd_logfile(self, logfile):
        """
        twistd's C{--logfile}, taken as C{--log-file}: the service gives
        twistd a log observer of its own (rotated, with a budget per
        client), so twistd itself would silently ignore the option.
        """
        if logfile == "-":
            raise usage.UsageError(
                "twistd's --logfile -: echolab logs to a file, not to standard "
                "output (which shows the listening line); name a file"
            )
        path = os.path.abspath(logfile)
        if self["log-file"] is not None and os.path.abspath(self["log-file"]) != path:
            raise usage.UsageError(
                f"twistd's --logfile {logfile} and --log-file {self['log-file']} "
                "name different files; give one"
            )
        return path

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
        return Settings(
            mode=self["mode"],
            max_message=self["max-message"],
            max_connections=self["max-connections"],
            max_per_address=self["max-per-address"],
            login_timeout=self["login-timeout"],
            idle_timeout=self["idle-timeout"],
            frame_timeout=self["frame-timeout"],
            stall_timeout=self["stall-timeout"],
            max_bad_messages=self["max-bad-messages"],
            token_ttl=self["token-ttl"],
            linger=self["linger"],
        )

    def limits(self):
        """
        @rtype: L{Limits}
        """
        return Limits(
            per_login_address=self["throttle-login-address"],
            per_login=self["throttle-login"],
            per_address=self["throttle-address"],
            tokens_per_address=self["throttle-tokens"],
            max_block=self["throttle-max-block"],
            registrations=self["budget-registrations"],
            lookups=self["budget-lookups"],
            ipv6_prefix=self["ipv6-prefix"],
        )


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


def _make_private_dir(path):
    """
    Create C{path} with mode 0700 if it is missing (whatever the umask).
    """
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)


def makeService(options, reactor=None, stdout=None, stderr=None, hash_context=None):
    """
    Build the server from parsed L{Options}.

    @param reactor: the reactor to use [default: the global one, which is
        L{echotwist.reactor}'s if none was installed yet].
    @param stdout: where the listening line goes [default: the console,
        duplicated once attached to twistd's application, before twistd
        redirects standard output to the log or daemonizes].
    @param stderr: where start-up failures go [default: the console, the
        same way].
    @param hash_context: a passlib context overriding the argon2id
        parameters (tests use a cheap one; never the default).
    """
    if reactor is None:
        reactor = install_default()
    settings = options.settings()
    twistd = getattr(options, "parent", None)
    top = EchoService(
        reactor,
        options["log-file"],
        options["log-rotate-bytes"],
        options["log-keep"],
        options["log-client-lines"],
        stdout,
        stderr,
        daemon=twistd is not None and not twistd.get("nodaemon", True),
    )
    DataDirectoryLock(options["data-dir"]).setServiceParent(top)
    identities = accounts = None
    if settings.mode != "echo":
        database = Database(os.path.join(options["data-dir"], "echolab.db"), reactor)
        hasher = None
        if settings.mode == "ident":
            identities = IdentityStore(database, reactor)
        else:
            context = hash_context or make_context(
                options["hash-memory"], options["hash-time"]
            )
            hasher = Hasher(
                context,
                reactor,
                options["hash-threads"],
                options["hash-memory"],
                options["hash-priority"],
                options["hash-queue"],
                options["hash-queue-per-address"],
            )
            credentials = CredentialStore(database, reactor)
            accounts = Accounts(
                credentials,
                hasher,
                LoginThrottle(reactor, options.limits()),
                reactor,
                settings.token_ttl,
            )
        StoresService(database, hasher).setServiceParent(top)
        if accounts is not None:
            cleaner = TimerService(3600, credentials.forget_expired)
            cleaner.clock = reactor
            cleaner.setServiceParent(top)
    factory = EchoFactory(settings, reactor, identities, accounts)
    ClientsService(factory).setServiceParent(top)
    if options["port"] is not None:
        ListenerService(
            partial(listen_tcp, reactor),
            factory,
            options["port"],
            options["port-tries"],
            options["interface"],
            options["backlog"],
            top.announce,
        ).setServiceParent(top)
    for description in options["listen"]:
        EndpointService(
            reactor, factory, description, options["backlog"], top.announce
        ).setServiceParent(top)
    top.factory = factory
    return top
