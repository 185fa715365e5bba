# -*- test-case-name: tests.test_client_terminal -*-
"""
The lines said to one server, kept for Up and Down in the profile's
folder, readable by its owner only, like a shell's history. Only lines
typed at the session's C{> } prompt go in: never an answer to a
question, so never a password or a token.
"""

import os
import re

MAX_LINES = 1000
"""Lines kept; the oldest go first."""
MAX_LINE_CHARS = 4096
"""A longer line (a paste) is said but not kept."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def history_path(profile_path, key):
    """
    The history file of the server C{key} (C{host:port}), next to the
    profile.
    """
    name = "history-" + _UNSAFE.sub("_", key)
    return os.path.join(os.path.dirname(os.path.abspath(profile_path)), name)


class History:
    """
    One server's history file.

    @ivar lines: the lines kept, oldest first (L{str}).
    """

    def __init__(self, path):
        """
        @param path: the file, or L{None} to keep nothing.
        """
        self.path = path
        self.lines = []
        if path is not None:
            self._load()

    def _load(self):
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                self.lines = [line.rstrip("\n") for line in f][-MAX_LINES:]
        except OSError:
            self.lines = []

    def add(self, line):
        """
        Keep C{line} (not an empty one, nor the same as the last); the file
        is written at once, created 0600 in a 0700 folder, so a crash
        loses nothing, and rewritten shorter now and then.
        """
        if not line.strip() or len(line) > MAX_LINE_CHARS or "\n" in line:
            return
        if self.lines and self.lines[-1] == line:
            return
        self.lines.append(line)
        if self.path is None:
            return
        try:
            if len(self.lines) > 2 * MAX_LINES:
                self.lines = self.lines[-MAX_LINES:]
                self._write("".join(kept + "\n" for kept in self.lines), "w")
            else:
                self._write(line + "\n", "a")
        except OSError:
            self.path = None  # a folder we cannot write: keep it in memory

    def _write(self, text, how):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if how == "a" else os.O_TRUNC)
        fd = os.open(self.path, flags, 0o600)
        with os.fdopen(fd, how, encoding="utf-8") as f:
            os.fchmod(fd, 0o600)
            f.write(text)
