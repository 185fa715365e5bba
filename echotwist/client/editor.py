# -*- test-case-name: tests.test_client_terminal -*-
"""
Line editing and history on the person's terminal, the Twisted way:
L{twisted.conch.recvline.HistoricRecvLine} under an
L{twisted.conch.insults.insults.ServerProtocol}, on standard input put
key by key (L{echotwist.client.terminal.Terminal.keys}).

What it adds to C{HistoricRecvLine}: UTF-8 (Cyrillic is typed and
moved over one character at a time), the readline keys people expect
(Ctrl-A/E/K/U/W, Ctrl-C cancels the line, Ctrl-D on an empty line
leaves), a hidden mode for secrets (nothing shown, nothing kept), a
history file, and lines shown above the one being typed, which is drawn
again below them.
"""

import codecs

from twisted.conch.recvline import HistoricRecvLine

from echotwist.client.drawn_line import DrawnLine
from echotwist.i18n import _

CTRL_A, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x03", b"\x04", b"\x05"
CTRL_H, CTRL_K, CTRL_L, CTRL_U, CTRL_W = b"\x08", b"\x0b", b"\x0c", b"\x15", b"\x17"

_APPLICATION_KEYS = {b"\x1bOH": "HOME", b"\x1bOF": "END"}


class LineEditor(DrawnLine):
    """
    The person's line, edited in place.

    @ivar secret: while true, what is typed is not shown, and Up, Down
        and the history are off.
    @ivar recording: whether the line being typed goes into the history
        (only at the session's C{> } prompt).
    """

    recording = False
    ended = False
    _interrupts = 0

    def __init__(self, console, history, width):
        """
        @param console: the L{echotwist.client.stdio_console.Console}:
            C{line_typed(line)}, C{input_ended()}, C{interrupted()},
            C{hint(text)}, C{closed()}.
        @param history: the L{echotwist.client.history.History}.
        @param width: returns the terminal's width in columns.
        """
        self.console = console
        self.history = history
        self.width = width
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def connectionMade(self):
        HistoricRecvLine.connectionMade(self)
        self.historyLines = [line.encode("utf-8") for line in self.history.lines]
        self.historyPosition = len(self.historyLines)
        self.keyHandlers.update(
            {
                CTRL_A: self.handle_HOME,
                CTRL_E: self.handle_END,
                CTRL_H: self.handle_BACKSPACE,
                CTRL_K: self.handle_kill_to_end,
                CTRL_U: self.handle_kill_to_start,
                CTRL_W: self.handle_kill_word,
                CTRL_L: self.redraw,
                CTRL_C: self.handle_interrupt,
                CTRL_D: self.handle_end_of_input,
            }
        )
        self._secret_keys = {
            key: self.keyHandlers[key]
            for key in (b"\r", b"\n", CTRL_C, CTRL_D, CTRL_U, CTRL_H)
        }
        self._secret_keys[self.terminal.BACKSPACE] = self.handle_BACKSPACE

    def connectionLost(self, reason):
        self.console.closed()

    # Keys.

    def keystrokeReceived(self, keyID, modifier):
        if keyID != CTRL_C:
            self._interrupts = 0
        if self.ended and keyID != CTRL_C:
            return
        handlers = self._secret_keys if self.secret else self.keyHandlers
        handler = handlers.get(keyID)
        if handler is not None:
            handler()
        elif isinstance(keyID, bytes) and keyID >= b" " and keyID != b"\x7f":
            for ch in self._decoder.decode(keyID):
                self.characterReceived(ch.encode("utf-8"), False)

    def unhandledControlSequence(self, seq):
        name = _APPLICATION_KEYS.get(seq)
        if name is not None and not self.secret:
            getattr(self, "handle_" + name)()

    def handle_TAB(self):
        self.characterReceived(b" ", False)

    def handle_BACKSPACE(self):
        if self.secret:
            if self.lineBufferIndex:
                self.lineBufferIndex -= 1
                del self.lineBuffer[self.lineBufferIndex]
            return
        if self.lineBufferIndex > 0:
            self._erase()
            self.lineBufferIndex -= 1
            del self.lineBuffer[self.lineBufferIndex]
            self._draw()

    def handle_DELETE(self):
        if self.lineBufferIndex < len(self.lineBuffer):
            self._erase()
            del self.lineBuffer[self.lineBufferIndex]
            self._draw()

    def handle_kill_to_end(self):
        del self.lineBuffer[self.lineBufferIndex :]
        self.terminal.eraseToDisplayEnd()

    def handle_kill_to_start(self):
        self._erase()
        del self.lineBuffer[: self.lineBufferIndex]
        self.lineBufferIndex = 0
        self._draw()

    def handle_kill_word(self):
        start = self.lineBufferIndex
        while start and self.lineBuffer[start - 1].isspace():
            start -= 1
        while start and not self.lineBuffer[start - 1].isspace():
            start -= 1
        self._erase()
        del self.lineBuffer[start : self.lineBufferIndex]
        self.lineBufferIndex = start
        self._draw()

    def handle_UP(self):
        if self.historyPosition > 0:
            self.historyPosition -= 1
            self._replace_line(self.historyLines[self.historyPosition])

    def handle_DOWN(self):
        if self.historyPosition < len(self.historyLines) - 1:
            self.historyPosition += 1
            self._replace_line(self.historyLines[self.historyPosition])
        elif self.historyPosition < len(self.historyLines):
            self.historyPosition = len(self.historyLines)
            self._replace_line(b"")

    def handle_RETURN(self):
        line = b"".join(self.lineBuffer).decode("utf-8", "replace")
        too_long, self._too_long = self._too_long, False
        if self.recording and not self.secret and not too_long:
            self.history.add(line)
            self.historyLines = [kept.encode("utf-8") for kept in self.history.lines]
        self.historyPosition = len(self.historyLines)
        if not self.secret:
            self.handle_END()
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.terminal.write(b"\n")
        self.prompt = ""
        self.recording = False
        if too_long:
            self.console.hint(_("(that line is far too long; ignored)"))
        else:
            self.console.line_typed(line)

    def handle_interrupt(self):
        """
        Ctrl-C: the line is cancelled; at an empty line the person is told
        how to leave, and a second Ctrl-C in a row interrupts.
        """
        if self.lineBuffer and not self.ended:
            if not self.secret:
                self.handle_END()
            self.terminal.write(b"" if self.secret else b"^C")
            self.terminal.write(b"\n")
            self.lineBuffer = []
            self.lineBufferIndex = 0
            self.historyPosition = len(self.historyLines)
            self._draw()
            return
        self._interrupts += 1
        if self._interrupts >= 2 or self.ended:
            self.console.interrupted()
        else:
            self.console.hint(
                _("(Ctrl-D on an empty line or /quit leaves; Ctrl-C again interrupts)")
            )

    def handle_end_of_input(self):
        """
        Ctrl-D: on an empty line the end of input (leave); otherwise the
        character under the cursor goes, as in readline.
        """
        if self.lineBuffer:
            self.handle_DELETE()
            return
        self.ended = True
        self.console.input_ended()
