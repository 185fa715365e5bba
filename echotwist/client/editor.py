# -*- test-case-name: tests.test_client_editor -*-
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

MAX_LINE_CHARS = 16 * 1024 * 1024
"""A line longer than this is not even kept in memory."""

CTRL_A, CTRL_C, CTRL_D, CTRL_E = b"\x01", b"\x03", b"\x04", b"\x05"
CTRL_H, CTRL_K, CTRL_L, CTRL_U, CTRL_W = b"\x08", b"\x0b", b"\x0c", b"\x15", b"\x17"

_APPLICATION_KEYS = {b"\x1bOH": "HOME", b"\x1bOF": "END"}


def _characters(text):
    """C{text} as the editor keeps it: one UTF-8 L{bytes} per character."""
    return [ch.encode("utf-8") for ch in text]


class LineEditor(HistoricRecvLine):
    """
    The person's line, edited in place.

    @ivar secret: while true, what is typed is not shown, and Up, Down
        and the history are off.
    @ivar recording: whether the line being typed goes into the history
        (only at the session's C{> } prompt).
    """

    secret = False
    recording = False
    ended = False
    prompt = ""
    _interrupts = 0
    _too_long = False

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

    def initializeScreen(self):
        # Not RecvLine's: the terminal is the person's, not cleared, and
        # insertion is drawn by hand rather than with the terminal's
        # insert mode, which not every terminal has.
        self.mode = "insert"

    def terminalSize(self, width, height):
        pass

    def connectionLost(self, reason):
        self.console.closed()

    # Drawing.

    def _cursor_rows(self):
        """How many rows above the cursor the prompt starts."""
        shown = 0 if self.secret else self.lineBufferIndex
        columns = len(self.prompt) + shown
        width = max(self.width(), 1)
        if columns and columns % width == 0:
            return columns // width - 1  # the cursor waits at the edge
        return columns // width

    def _erase(self):
        rows = self._cursor_rows()
        if rows:
            self.terminal.cursorUp(rows)
        self.terminal.write(b"\r")
        self.terminal.eraseToDisplayEnd()

    def _draw(self):
        line = b"" if self.secret else b"".join(self.lineBuffer)
        self.terminal.write(self.prompt.encode("utf-8") + line)
        back = 0 if self.secret else len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)

    def redraw(self):
        self._erase()
        self._draw()

    def drawInputLine(self):
        self._draw()

    def show_above(self, text):
        """
        Show C{text} (whole lines) above the line being typed, which is
        drawn again below it.
        """
        self._erase()
        self.terminal.write(text.encode("utf-8", "replace") + b"\n")
        self._draw()

    def finish(self):
        """
        The session is over: the prompt and the unfinished line go, so the
        shell's prompt starts on a clean line.
        """
        self._erase()
        self.prompt = ""
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.ended = True

    def set_prompt(self, text):
        """
        Put up C{text} as the prompt, keeping what was typed.
        """
        self._erase()
        self.prompt = text
        self._draw()

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

    def characterReceived(self, ch, moreCharactersComing):
        if len(self.lineBuffer) >= MAX_LINE_CHARS:
            self._too_long = True
            return
        self.lineBuffer.insert(self.lineBufferIndex, ch)
        self.lineBufferIndex += 1
        if self.secret:
            return
        rest = self.lineBuffer[self.lineBufferIndex :]
        self.terminal.write(ch + b"".join(rest))
        if rest:
            self.terminal.cursorBackward(len(rest))

    def _move(self, index):
        """
        Put the cursor before character C{index}: by cursor moves on the
        same row, else by drawing the line again (a long line wraps).
        """
        index = max(0, min(index, len(self.lineBuffer)))
        width = max(self.width(), 1)
        before = (len(self.prompt) + self.lineBufferIndex) // width
        after = (len(self.prompt) + index) // width
        if before != after or (len(self.prompt) + index) % width == 0:
            self._erase()
            self.lineBufferIndex = index
            self._draw()
        elif index < self.lineBufferIndex:
            self.terminal.cursorBackward(self.lineBufferIndex - index)
        elif index > self.lineBufferIndex:
            self.terminal.cursorForward(index - self.lineBufferIndex)
        self.lineBufferIndex = index

    def handle_LEFT(self):
        self._move(self.lineBufferIndex - 1)

    def handle_RIGHT(self):
        self._move(self.lineBufferIndex + 1)

    def handle_HOME(self):
        self._move(0)

    def handle_END(self):
        self._move(len(self.lineBuffer))

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

    def _replace_line(self, data):
        self._erase()
        self.lineBuffer = _characters(data.decode("utf-8", "replace"))
        self.lineBufferIndex = len(self.lineBuffer)
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
            self.console.hint("(that line is far too long; ignored)")
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
                "(Ctrl-D on an empty line or /quit leaves; Ctrl-C again interrupts)"
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
