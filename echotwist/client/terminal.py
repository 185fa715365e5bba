# -*- test-case-name: tests.test_client_terminal -*-
"""
The person's terminal: its modes, put back as they were found whatever
happens. In the session the line editor reads it key by key (no
canonical mode, so no 4,095-character limit on a line, and no echo: the
editor shows what is typed itself, and nothing of a secret); before it,
questions are read a line at a time with echo off for secrets.
"""

import os


class Terminal:
    """
    Sets the terminal's modes and puts them back. Does nothing when the
    input is not a terminal.
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

    def _change(self, change):
        if self.saved is None:
            return
        termios = self._termios
        try:
            attributes = termios.tcgetattr(self.fd)
            change(termios, attributes)
            termios.tcsetattr(self.fd, termios.TCSADRAIN, attributes)
        except OSError:
            pass

    def echo(self, on):
        """
        Show (C{on}) or hide what is typed.
        """

        def change(termios, attributes):
            if on:
                attributes[3] |= self.saved[3] & termios.ECHO
            else:
                attributes[3] &= ~termios.ECHO

        self._change(change)

    def keys(self):
        """
        Key by key: no line editing by the terminal, no echo, and Ctrl-C,
        Ctrl-D, Ctrl-S arrive as keys; output is still translated (a
        newline still starts a line at its left edge), so what is shown
        need not know the mode.
        """

        def change(termios, attributes):
            iflag, lflag = 0, 3
            attributes[iflag] &= ~(
                termios.ICRNL | termios.INLCR | termios.IXON | termios.ISTRIP
            )
            attributes[lflag] &= ~(
                termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN
            )
            attributes[6][termios.VMIN] = 1
            attributes[6][termios.VTIME] = 0

        self._change(change)

    def width(self):
        """
        Columns of the terminal (80 when it cannot say).
        """
        try:
            return os.get_terminal_size(self.fd).columns or 80
        except OSError:
            return 80

    def restore(self):
        """
        Put the terminal back as it was found.
        """
        if self.saved is not None:
            try:
                self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self.saved)
            except OSError:
                pass
