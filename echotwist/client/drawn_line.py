# -*- test-case-name: tests.test_client_terminal -*-
"""
Drawing the line being typed on the person's terminal, for the line
editor (L{echotwist.client.editor}): the prompt and the line, drawn
again after a message is shown above it, across the rows a long line
wraps over; nothing of a secret is drawn.

Insertion is drawn by hand rather than with the terminal's insert mode
(what C{RecvLine} uses), which not every terminal has; the terminal is
the person's, never cleared.
"""

from twisted.conch.recvline import HistoricRecvLine

MAX_LINE_CHARS = 4 * 1024 * 1024
"""
A line longer than this is not even kept in memory (it is refused when
Enter ends it). Far above what a person types or pastes; a line is one
list entry per character, a shared object for each ASCII one.
"""


def characters(text):
    """C{text} as the line is kept: one UTF-8 L{bytes} per character."""
    return [ch.encode("utf-8") for ch in text]


class DrawnLine(HistoricRecvLine):
    """
    The line being typed, as the terminal shows it.

    @ivar secret: while true, what is typed is not shown.
    @ivar prompt: the prompt before the line (L{str}).
    @ivar width: returns the terminal's width in columns.
    """

    secret = False
    ended = False
    prompt = ""
    _too_long = False
    width = staticmethod(lambda: 80)

    def initializeScreen(self):
        self.mode = "insert"

    def terminalSize(self, width, height):
        pass

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

    def _replace_line(self, data):
        self._erase()
        self.lineBuffer = characters(data.decode("utf-8", "replace"))
        self.lineBufferIndex = len(self.lineBuffer)
        self._draw()
