# -*- test-case-name: tests.test_client -*-
"""
The person's side of the client on standard input and output, through
L{twisted.internet.stdio.StandardIO}: on a terminal the line editor
(L{echotwist.client.editor}), from a pipe or a file plain lines
(L{PipeInput}), which never carry a terminal control code.

The console outlives a session: with C{--reconnect} it is handed from
one conversation to the next (L{Console.attach}).
"""

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet import defer, stdio
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from echotwist.client.editor import LineEditor
from echotwist.i18n import _


@implementer(IHalfCloseableProtocol)
class PipeInput(LineReceiver):
    """
    Lines from a pipe or a file to the console's session; the end of input
    is told apart from the end of the console, so messages still arrive
    and show after a script's last line.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024
    output_lost = False
    _skipping = False
    _after_long_line = b""

    def __init__(self, console):
        self.console = console

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
        self.console.line_typed(line.decode("utf-8", "replace"))

    def lineLengthExceeded(self, line):
        self.console.hint(_("(that line is far too long; ignored)"))
        # LineReceiver hands over the long line with all it had buffered
        # after it: skip to the line's end, then read the rest on.
        self._skipping = True
        self._after_long_line = line

    def readConnectionLost(self):
        rest = self.clearLineBuffer()
        if rest and not self._skipping:
            self.lineReceived(rest)
        self.console.input_ended()

    def writeConnectionLost(self):
        # Nobody reads what we show (a pager quit): go on until the server
        # is done, with nothing left to flush at the end.
        self.output_lost = True

    def connectionLost(self, reason):
        self.console.closed()


class Console:
    """
    What a conversation sees of the person: C{show}, C{prompt},
    C{hide_input}, C{interactive}; and what it hears from them, handed to
    the attached session (C{line_received}, C{input_ended},
    C{interrupted}).

    @ivar redraws: true with the line editor, which shows lines above the
        line being typed.
    """

    def __init__(self, reactor, terminal, interactive, history=None, editing=None):
        """
        @param terminal: the L{echotwist.client.terminal.Terminal}.
        @param interactive: whether standard input is a terminal.
        @param history: the L{echotwist.client.history.History} for the
            line editor.
        @param editing: whether the line editor reads the terminal (by
            default when it is interactive); not when standard output is
            not the terminal too, since its drawing would go elsewhere, nor
            on a C{dumb} terminal, which cannot move its cursor.
        """
        self.reactor = reactor
        self.terminal = terminal
        self.interactive = interactive
        self.redraws = interactive if editing is None else editing
        self.history = history
        self.handler = None
        self._closed = defer.Deferred()
        self._editor = None
        self._transport = None
        self._output_lost = lambda: False

    def start(self, stdin=0, stdout=1):
        """
        Start reading standard input.
        """
        if self.redraws:
            self.terminal.keys()
            wrapper = ServerProtocol(
                LineEditor, self, self.history, self.terminal.width
            )
            self._transport = stdio.StandardIO(
                wrapper, stdin, stdout, reactor=self.reactor
            )
            self._editor = wrapper.terminalProtocol
        else:
            pipe = PipeInput(self)
            self._transport = stdio.StandardIO(
                pipe, stdin, stdout, reactor=self.reactor
            )
            self._output_lost = lambda: pipe.output_lost

    def attach(self, handler):
        """
        Hand what the person types to C{handler} from now on.
        """
        self.handler = handler

    # From the person.

    def line_typed(self, line):
        self.handler.line_received(line)

    def input_ended(self):
        self.handler.input_ended()

    def interrupted(self):
        self.handler.interrupted()

    def hint(self, text):
        self.show(text)

    def closed(self):
        if not self._closed.called:
            self._closed.callback(None)

    # To the person.

    def show(self, line):
        if self._editor is not None:
            self._editor.show_above(line)
        else:
            self._write(line + "\n")

    def prompt(self, text, recording=False):
        """
        Put up C{text} as the prompt; with the line editor, C{recording}
        says whether the line typed at it goes into the history.
        """
        if self._editor is not None:
            self._editor.recording = recording
            self._editor.set_prompt(text)
        else:
            self._write(text)

    def _write(self, text):
        if self._transport is not None and not self._transport.disconnected:
            self._transport.write(text.encode("utf-8", "replace"))

    def hide_input(self, hidden):
        """
        Hide what is typed (C{hidden}) or show it again.
        """
        if self._editor is not None:
            if self._editor.secret != hidden:
                self._editor.secret = hidden
        elif self.interactive:
            self.terminal.echo(not hidden)

    def close(self):
        """
        Flush what is shown and stop reading.

        @return: a L{Deferred} that fires once standard output is flushed.
        """
        if self._editor is not None:
            self._editor.finish()
        if self._transport is None or self._closed.called:
            return defer.succeed(None)
        self._transport.loseConnection()
        if self._output_lost():
            return defer.succeed(None)  # StandardIO will not call back
        return self._closed
