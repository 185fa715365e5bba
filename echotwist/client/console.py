# -*- test-case-name: tests.test_client -*-
"""
The console client, C{echolab-client}: options and questions first, then
a connection, then the conversation between the person's terminal (or a
pipe) and the server, until the connection ends.

Console input goes through L{twisted.internet.stdio.StandardIO} and a
line receiver, never a thread blocked in C{input()} (Ctrl-C would hang
the reactor's thread pool); output goes through the same transport, which
is closed and waited for before exiting so nothing shown is lost.
Passwords are read with the terminal's echo off, when it is a terminal.
"""

import os
import signal
import sys

from twisted.internet import defer, fdesc, stdio, task
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from echotwist.client import connect
from echotwist.client.conversation import Conversation
from echotwist.client.ending import EXIT_INTERRUPTED
from echotwist.client.options import Options, fill_in
from echotwist.client.profile import Profile, default_path, server_key
from echotwist.client.protocol import ClientProtocol
from echotwist.prompts import format_address

PROGRAM = "echolab-client"


class Terminal:
    """
    Turns the terminal's echo off and on for secrets, and puts the
    terminal back as it was, whatever happens. Does nothing when the input
    is not a terminal.
    """

    def __init__(self, fd=0):
        self.fd = fd
        self.saved = None
        try:
            import termios

            self._termios = termios
            if os.isatty(fd):
                self.saved = termios.tcgetattr(fd)
        except (ImportError, OSError):
            self.saved = None

    def echo(self, on):
        """
        Show (C{on}) or hide what is typed.
        """
        if self.saved is None:
            return
        termios = self._termios
        try:
            attributes = termios.tcgetattr(self.fd)
            if on:
                attributes[3] |= self.saved[3] & termios.ECHO
            else:
                attributes[3] &= ~termios.ECHO
            termios.tcsetattr(self.fd, termios.TCSADRAIN, attributes)
        except OSError:
            pass

    def restore(self):
        """
        Put the terminal back as it was found.
        """
        if self.saved is not None:
            try:
                self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self.saved)
            except OSError:
                pass


@implementer(IHalfCloseableProtocol)
class ConsoleInput(LineReceiver):
    """
    Lines from standard input to the conversation; the end of input is
    told apart from the end of the console, so messages still arrive and
    show after a script's last line.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024
    output_lost = False
    _skipping = False

    def __init__(self, conversation, closed):
        """
        @param closed: a L{Deferred} fired when the console is closed.
        """
        self.conversation = conversation
        self.closed = closed

    _after_long_line = b""

    def dataReceived(self, data):
        while data:
            if self._skipping:
                end = data.find(self.delimiter)
                if end < 0:
                    return
                data = data[end + 1 :]
                self._skipping = False
            LineReceiver.dataReceived(self, data)
            data, self._after_long_line = self._after_long_line, b""

    def lineReceived(self, line):
        if line.endswith(b"\r"):
            line = line[:-1]
        self.conversation.line_received(line.decode("utf-8", "replace"))

    def lineLengthExceeded(self, line):
        self.conversation.show("(that line is far too long; ignored)")
        # LineReceiver hands over the long line with all it had buffered
        # after it: skip to the line's end, then read the rest on.
        self._skipping = True
        self._after_long_line = line

    def readConnectionLost(self):
        rest = self.clearLineBuffer()
        if rest and not self._skipping:
            self.lineReceived(rest)
        self.conversation.input_ended()

    def writeConnectionLost(self):
        # Nobody reads what we show (a pager quit): go on until the server
        # is done, with nothing left to flush at the end.
        self.output_lost = True

    def connectionLost(self, reason):
        self.closed.callback(None)


class Console:
    """
    The person's side: shows lines, prompts, hides secrets; reads lines
    into a conversation once started.

    @ivar interactive: whether standard input is a terminal.
    """

    def __init__(self, reactor, terminal, interactive, stdin=0, stdout=1):
        self.reactor = reactor
        self.terminal = terminal
        self.interactive = interactive
        self.stdin = stdin
        self.stdout = stdout
        self._input = None
        self._closed = defer.Deferred()
        self._hidden = False

    def start(self, conversation):
        """
        Read lines into C{conversation}.
        """
        self._input = ConsoleInput(conversation, self._closed)
        stdio.StandardIO(self._input, self.stdin, self.stdout, reactor=self.reactor)

    def show(self, line):
        self._write(line + "\n")

    def prompt(self, text):
        self._write(text)

    def _write(self, text):
        if self._input is not None and self._input.transport is not None:
            self._input.transport.write(text.encode("utf-8", "replace"))

    def hide_input(self, hidden):
        """
        Turn the terminal's echo off (C{hidden}) or back on.
        """
        if hidden != self._hidden:
            self._hidden = hidden
            self.terminal.echo(not hidden)

    def close(self):
        """
        Flush what is shown and stop reading.

        @return: a L{Deferred} that fires once standard output is flushed.
        """
        self.hide_input(False)
        if self._input is None or self._input.transport is None:
            return defer.succeed(None)
        self._input.transport.loseConnection()
        if self._input.output_lost:
            return defer.succeed(None)  # StandardIO will not call back
        return self._closed


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


def main(argv=None):
    """
    Run the client; exits with its status (0 fine, 1 failed, 2 bad
    options, 130 interrupted).
    """
    argv = sys.argv[1:] if argv is None else argv
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        _say(f"{PROGRAM}: {e} (see --help)")
        sys.exit(2)
    except BrokenPipeError:  # --help into a pager that quit
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.exit(1)
    interactive = os.isatty(0)
    terminal = Terminal(0)
    try:
        fill_in(options, interactive, _read_line, lambda line: _say(line, sys.stdout))
    except KeyboardInterrupt:
        terminal.restore()
        _say("\nInterrupted; not connecting.", sys.stdout)
        sys.exit(EXIT_INTERRUPTED)
    except EOFError:
        _say("\nNo answer; not connecting.", sys.stdout)
        sys.exit(0)
    try:
        trust_root = connect.load_trust_root(options["ca"]) if options["tls"] else None
    except connect.CAFileError as e:
        _say(f"{PROGRAM}: --ca: {e}")
        sys.exit(2)
    profile = Profile.load(options["profile"] or default_path())
    for warning in profile.warnings:
        _say(f"{PROGRAM}: warning: {warning}")
    if options["insecure"] and not options["tls"]:
        _say(
            f"{PROGRAM}: WARNING: --insecure: a password or a token may cross "
            "the network in clear text, readable by anyone on the way."
        )
    try:
        task.react(run, [options, profile, trust_root, terminal, interactive])
    finally:
        terminal.restore()
        for fd in (0, 1):
            try:
                fdesc.setBlocking(fd)
            except OSError:
                pass


async def run(reactor, options, profile, trust_root, terminal, interactive):
    """
    Connect, hold the conversation, and return when it is over.

    @raise SystemExit: with a non-zero status when something failed.
    """
    host, port = options["host"], options["port"]
    where = format_address(host, port)
    interrupt = _Interrupt(reactor)

    endpoint = connect.endpoint_for(
        reactor, host, port, options["tls"], trust_root, options["timeout"]
    )
    try:
        connecting = connectProtocol(endpoint, ClientProtocol())
        interrupt.action = connecting.cancel
        protocol = await connecting
        heard = protocol.when_heard()
        interrupt.action = heard.cancel
        heard.addTimeout(options["timeout"], reactor)
        await heard
    except Exception:
        failure = Failure()
        if interrupt.fired:
            _say("Interrupted.")
            raise SystemExit(EXIT_INTERRUPTED) from None
        if failure.check(defer.TimeoutError, defer.CancelledError):
            _say(
                f"{PROGRAM}: {where} did not say welcome within "
                f"{options['timeout']:g} s (is it an echolab server? "
                f"{'does it speak TLS?' if options['tls'] else 'does it want --tls?'})"
            )
        else:
            _say(f"{PROGRAM}: {connect.describe_failure(failure, host, port)}")
        raise SystemExit(1) from None

    secure, why = connect.secrets_allowed(
        protocol.transport.getPeer(), options["tls"], options["insecure"]
    )
    console = Console(reactor, terminal, interactive)
    conversation = Conversation(
        protocol, console, profile, server_key(host, port), where, secure, why
    )
    console.start(conversation)
    protocol.attach(conversation)
    interrupt.action = conversation.interrupted
    code = await conversation.done
    await console.close()
    if code:
        raise SystemExit(code)


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
