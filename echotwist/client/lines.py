# -*- test-case-name: tests.test_client_conversation -*-
"""
When the person's lines are used. A line is used when the client is
ready for it: as the answer when the server has asked something, as a
C{say} or a command once the session is ready.

On a terminal a line typed while the client waits for the server (say,
while a password is being checked) is refused with a note, because a
person sees what happened and may type it again; from a pipe or a file
lines wait until the session is ready (a script's lines are never answers
to the server's questions: those come from options, so a re-run that
logs in with a saved token says exactly the same lines), then each until
the replies to the one before have come, so a script need not know the
timing and its output reads in the order it asked.
"""

from collections import deque

END = object()
"""Stands in the queue of lines for the end of input."""


class Lines:
    """
    The person's lines waiting to be used, and the replies the lines
    already said are waiting for.

    @ivar ready: true once a line may be said (after C{greet}, or at once
        in echo mode).
    """

    ready = False

    def __init__(self, interactive, ending, questions):
        """
        @param interactive: whether the lines are typed at a terminal.
        @param ending: the L{echotwist.client.ending.Ending}: once leaving,
            lines are dropped.
        @param questions: the L{echotwist.client.questions.Questions}: a
            question waiting for its answer takes the next line.
        """
        self.interactive = interactive
        self.ending = ending
        self.questions = questions
        self._lines = deque()
        self._outstanding = deque()

    # Replies awaited.

    @property
    def awaiting(self):
        """
        Whether a line said is still waiting for (some of) its echoes.
        """
        return bool(self._outstanding)

    def said(self, repeat):
        """
        A C{say} went out: C{repeat} echoes are due.
        """
        self._outstanding.append(repeat)

    def echoed(self):
        """
        One echo came for the oldest line said.
        """
        if self._outstanding:
            self._outstanding[0] -= 1
            if self._outstanding[0] <= 0:
                self._outstanding.popleft()

    def refused(self):
        """
        The server refused the oldest line said: no echo of it will come.
        """
        if self._outstanding:
            self._outstanding.popleft()

    # The queue.

    def can_take(self, item):
        """
        Whether C{item} (a line or L{END}) may be used now.
        """
        if self.ending.leaving:
            return True  # to be dropped
        if self.interactive:
            return item is END or self.questions.asking is not None or self.ready
        # A script's lines are only ever said, never answers (those come
        # from options), so they wait for the session to be ready; then one
        # at a time, each after the replies to the one before, so what it
        # shows comes in the order it was asked for.
        return self.ready and not self._outstanding

    def adopt(self, earlier):
        """
        Take the lines an earlier session (before a reconnection) had not
        used yet, ahead of any new ones.
        """
        self._lines.extendleft(reversed(earlier._lines))
        earlier._lines.clear()

    def push(self, item):
        """
        Queue a line, or L{END}, to be used in its turn.
        """
        self._lines.append(item)

    def taken(self):
        """
        Yield the lines, and L{END}, that may be used now, one by one: each
        is judged after the one before was used, since using it may change
        what the client is ready for. Once leaving, lines are dropped.
        """
        lines = self._lines
        while lines and self.can_take(lines[0]):
            item = lines.popleft()
            if not self.ending.leaving:
                yield item
