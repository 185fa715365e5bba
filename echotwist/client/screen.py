# -*- test-case-name: tests.test_client_conversation -*-
"""
What the person sees of a conversation: lines, prompts, and the
terminal's echo for secrets. Everything the server sent passes through
L{printable} on its way here, so a server can only ever show text.
"""

import unicodedata

_HARMLESS = frozenset("\t\u200c\u200d")  # tab, zero-width (non-)joiners of emoji


def printable(text):
    """
    C{text} made safe for a terminal: control and format characters, which
    could move the cursor, recolour or retitle the terminal, or reorder
    what is shown (bidi overrides), are shown as escapes (C{\\x1b}), so
    a server can only ever show text.
    """
    return "".join(
        (
            ch
            if ch in _HARMLESS or unicodedata.category(ch) not in ("Cc", "Cf")
            else ascii(ch)[1:-1]
        )
        for ch in text
    )


class Screen:
    """
    The console as the conversation uses it. It remembers whether a prompt
    is up, so that a line arriving meanwhile starts on a fresh line instead
    of after the prompt.

    @ivar interactive: whether the person is at a terminal.
    @ivar prompt_shown: whether a prompt waits for the person's line.
    """

    prompt_shown = False

    def __init__(self, console):
        """
        @param console: C{show(line)}, C{prompt(text)}, C{hide_input(hidden)}
            and C{interactive}; a console with a true C{redraws} (the line
            editor) shows lines above the prompt and the line being typed,
            and ends the prompt's line itself.
        """
        self.console = console
        self.interactive = console.interactive
        self.redraws = getattr(console, "redraws", False)

    def show(self, line):
        """
        Show one line to the person (on a fresh line if a prompt is up);
        whatever the server put in it is shown as text only.
        """
        line = printable(line)
        if self.prompt_shown and not self.redraws:
            self.prompt_shown = False
            line = "\n" + line
        self.console.show(line)

    def prompt(self, text, recording=False):
        """
        Put up a prompt; the person's line, or the next line shown, ends it.

        @param recording: whether the line typed at it may go into the
            history (the session's prompt; never a question's).
        """
        if recording:
            self.console.prompt(text, recording=True)
        else:
            self.console.prompt(text)
        self.prompt_shown = True

    def question(self, text, secret):
        """
        Put a question to the person: a prompt on a terminal, a plain line
        for a script, whose answer is already waiting. A secret's echo goes
        off before the prompt shows, so not one typed character is seen.
        """
        if secret:
            self.hide_input(True)
        if self.interactive:
            self.prompt(printable(text) + " ")
        else:
            self.show(text)

    def hide_input(self, hidden):
        """
        Turn the terminal's echo off (C{hidden}) or back on.
        """
        self.console.hide_input(hidden)

    def secret_typed(self):
        """
        A secret was typed: echo back on, and on a terminal the line break
        the terminal did not echo with the Enter.
        """
        self.hide_input(False)
        if self.interactive and not self.redraws:
            self.console.show("")

    def line_typed(self):
        """
        The person ended the prompt's line themselves.
        """
        self.prompt_shown = False

    def input_ended(self):
        """
        The input ended: Ctrl-D leaves the cursor after a prompt, so end
        that line before anything else is shown.
        """
        self._end_prompt()

    def closed(self):
        """
        Nothing more will be typed: no prompt is up any more.
        """
        self._end_prompt()

    def _end_prompt(self):
        if not self.prompt_shown:
            return
        self.prompt_shown = False
        if self.redraws:
            self.console.prompt("")
        else:
            self.console.show("")
