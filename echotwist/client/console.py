# -*- test-case-name: tests.test_client -*-
"""
The console client, C{echolab-client}: options and questions first, then
a connection, then the conversation between the person's terminal (or a
pipe) and the server, until the connection ends; with C{--reconnect},
again after a lost connection, logging in with the saved token.

Console input goes through L{twisted.internet.stdio.StandardIO}, never a
thread blocked in C{input()} (Ctrl-C would hang the reactor's thread
pool); output goes through the same transport, which is closed and
waited for before exiting so nothing shown is lost.
"""

import os
import signal
import sys

from twisted.internet import defer, fdesc, task
from twisted.internet.endpoints import connectProtocol
from twisted.python import usage
from twisted.python.failure import Failure

from echotwist.client import connect
from echotwist.client.conversation import Conversation
from echotwist.client.ending import (
    EXIT_INTERRUPTED,
    EXIT_LOST,
    EXIT_OK,
    EXIT_USAGE,
)
from echotwist.client.history import History, history_path
from echotwist.client.options import MAX_BACKOFF, MAX_RECONNECTS, Options, fill_in
from echotwist.client.presets import PasswordSourceError, Presets, read_password
from echotwist.client.profile import Profile, default_path, server_key
from echotwist.client.protocol import ClientProtocol
from echotwist.client.reconnect import Waiting
from echotwist.client.stdio_console import Console
from echotwist.client.terminal import Terminal
from echotwist.i18n import _, install, language_in
from echotwist.prompts import format_address

PROGRAM = "echolab-client"


def _read_line(prompt):
    """
    Show C{prompt} and read one line from standard input, before the
    reactor runs, without reading past the line (C{os.read} on a terminal
    returns a line at a time; nothing is left in a buffer).

    @raise EOFError: at the end of input.
    """
    os.write(1, prompt.encode("utf-8"))
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 4096)
        if not chunk:
            if data:
                break
            raise EOFError()
        data += chunk
    return data.decode("utf-8", "replace").rstrip("\r\n")


def _say(line, stream=None):
    stream = stream or sys.stderr
    stream.write(line + "\n")
    stream.flush()


def _presets(options):
    """
    The answers given as options; the password is read now, before
    anything is connected.

    @raise SystemExit: when the password cannot be read.
    """
    password = option = None
    if options["password-file"] is not None or options["password-fd"] is not None:
        option = (
            "--password-file"
            if options["password-file"] is not None
            else "--password-fd"
        )
        try:
            password = read_password(options["password-file"], options["password-fd"])
        except PasswordSourceError as e:
            _say(f"{PROGRAM}: {e}")
            sys.exit(EXIT_USAGE)
    return Presets(options["login"], options["name"], password, option)


def main(argv=None):
    """
    Run the client; exits with its status (see L{echotwist.client.ending}).
    """
    argv = sys.argv[1:] if argv is None else argv
    install(language_in(argv))
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        _say(f"{PROGRAM}: {e} " + _("(see --help)"))
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:  # --help into a pager that quit
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.exit(1)
    presets = _presets(options)
    interactive = os.isatty(0)
    terminal = Terminal(0)
    try:
        fill_in(options, interactive, _read_line, lambda line: _say(line, sys.stdout))
    except KeyboardInterrupt:
        terminal.restore()
        _say("\n" + _("Interrupted; not connecting."), sys.stdout)
        sys.exit(EXIT_INTERRUPTED)
    except EOFError:
        _say("\n" + _("No answer; not connecting."), sys.stdout)
        sys.exit(EXIT_OK)
    try:
        trust_root = connect.load_trust_root(options["ca"]) if options["tls"] else None
    except connect.CAFileError as e:
        _say(f"{PROGRAM}: --ca: {e}")
        sys.exit(EXIT_USAGE)
    profile = Profile.load(options["profile"] or default_path())
    for warning in profile.warnings:
        _say(f"{PROGRAM}: " + _("warning: {warning}").format(warning=warning))
    if options["insecure"] and not options["tls"]:
        _say(
            f"{PROGRAM}: "
            + _(
                "WARNING: --insecure: a password or a token may cross "
                "the network in clear text, readable by anyone on the way."
            )
        )
    client = Client(options, profile, trust_root, terminal, interactive, presets)
    try:
        task.react(client.run)
    finally:
        terminal.restore()
        for fd in (0, 1):
            try:
                fdesc.setBlocking(fd)
            except OSError:
                pass


class ConnectFailed(Exception):
    """
    Connecting failed; says why in one line, and the exit status.
    """

    def __init__(self, line, code=EXIT_LOST):
        Exception.__init__(self, line)
        self.line = line
        self.code = code


class Client:
    """
    One run of the client: a session, and more with C{--reconnect}.
    """

    def __init__(self, options, profile, trust_root, terminal, interactive, presets):
        self.options = options
        self.profile = profile
        self.trust_root = trust_root
        self.terminal = terminal
        self.interactive = interactive
        self.presets = presets
        self.host, self.port = options["host"], options["port"]
        self.where = format_address(self.host, self.port)
        self.key = server_key(self.host, self.port)

    async def run(self, reactor):
        """
        Connect, hold the conversation (again after a lost connection with
        C{--reconnect}), and return when it is over.

        @raise SystemExit: with a non-zero status when something failed.
        """
        self.reactor = reactor
        self.interrupt = _Interrupt(reactor)
        try:
            protocol = await self._connect()
        except ConnectFailed as e:
            _say(f"{PROGRAM}: {e.line}")
            raise SystemExit(e.code) from None
        history = None
        if self.interactive:
            path = history_path(self.profile.path, self.key)
            history = History(path if self.profile.usable else None)
        console = Console(
            reactor,
            self.terminal,
            self.interactive,
            history,
            editing=self.interactive
            and os.isatty(1)
            and os.environ.get("TERM") != "dumb",
        )
        console.start()
        conversation = self._converse(protocol, console)
        code = await conversation.done
        if self.options["reconnect"]:
            code = await self._reconnect(console, conversation)
        await console.close()
        if code:
            raise SystemExit(code)

    async def _connect(self):
        options = self.options
        endpoint = connect.endpoint_for(
            self.reactor,
            self.host,
            self.port,
            options["tls"],
            self.trust_root,
            options["timeout"],
        )
        interrupt = self.interrupt
        try:
            connecting = connectProtocol(endpoint, ClientProtocol())
            interrupt.action = connecting.cancel
            protocol = await connecting
            heard = protocol.when_heard()
            interrupt.action = heard.cancel
            heard.addTimeout(options["timeout"], self.reactor)
            await heard
        except Exception:
            failure = Failure()
            if interrupt.fired:
                raise ConnectFailed(_("Interrupted."), EXIT_INTERRUPTED) from None
            if failure.check(defer.TimeoutError, defer.CancelledError):
                if options["tls"]:
                    line = _(
                        "{where} did not say welcome within {seconds} s "
                        "(is it an echolab server? does it speak TLS?)"
                    )
                else:
                    line = _(
                        "{where} did not say welcome within {seconds} s "
                        "(is it an echolab server? does it want --tls?)"
                    )
                raise ConnectFailed(
                    line.format(where=self.where, seconds=f"{options['timeout']:g}")
                ) from None
            raise ConnectFailed(
                connect.describe_failure(failure, self.host, self.port)
            ) from None
        return protocol

    def _converse(self, protocol, console, earlier=None):
        """
        Start the conversation on a connected C{protocol}.

        @param earlier: the conversation before a reconnection, whose
            unused lines this one takes.
        """
        options = self.options
        transport = protocol.transport
        secure, why = connect.secrets_allowed(
            transport.getPeer(), options["tls"], options["insecure"]
        )
        conversation = Conversation(
            protocol,
            console,
            self.profile,
            self.key,
            self.where,
            secure,
            why,
            presets=self.presets.fresh(),
            security=connect.describe_security(transport, options["tls"]),
        )
        if earlier is not None:
            conversation.lines.adopt(earlier.lines)
        console.attach(conversation)
        protocol.attach(conversation)
        self.interrupt.action = conversation.interrupted
        return conversation

    async def _reconnect(self, console, conversation):
        """
        Connect again while the connection was lost (not when the person
        left or the login failed), waiting longer each time, up to
        L{MAX_RECONNECTS} tries in a row.

        @return: the exit status.
        """
        code, tries = conversation.code, 0
        again = conversation.ending.may_reconnect
        while again:
            tries += 1
            if tries > MAX_RECONNECTS:
                console.show(
                    _("Gave up reconnecting after {tries} tries.").format(
                        tries=MAX_RECONNECTS
                    )
                )
                return code
            delay = min(2.0 ** (tries - 1), MAX_BACKOFF)
            console.show(
                _(
                    "Reconnecting to {where} in {seconds} s "
                    "(try {try_} of {tries}; Ctrl-D stops)."
                ).format(
                    where=self.where,
                    seconds=f"{delay:g}",
                    try_=tries,
                    tries=MAX_RECONNECTS,
                )
            )
            waiting = Waiting(console)
            console.attach(waiting)
            self.interrupt.action = waiting.interrupted
            if not await waiting.wait(self.reactor, delay):
                return waiting.code or code
            try:
                protocol = await self._connect()
            except ConnectFailed as e:
                console.show(e.line)
                if e.code == EXIT_INTERRUPTED:
                    return e.code
                continue
            conversation = self._converse(protocol, console, conversation)
            for line in waiting.lines:
                conversation.line_received(line)
            if waiting.ended:
                conversation.input_ended()
            code = await conversation.done
            if conversation.ending.authenticated:
                tries = 0  # it worked for a while: a new series of tries
            again = conversation.ending.may_reconnect
        return code


class _Interrupt:
    """
    Ctrl-C (SIGINT) while the reactor runs: do the current L{action} on
    the reactor's thread instead of stopping the reactor under our feet.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.fired = False
        self.action = None
        reactor.callWhenRunning(self._install)

    def _install(self):
        signal.signal(signal.SIGINT, self._signalled)

    def _signalled(self, number, frame):
        self.reactor.callFromThread(self._fire)

    def _fire(self):
        self.fired = True
        if self.action is not None:
            self.action()
