# -*- test-case-name: tests.test_client_conversation -*-
"""
How a session ends and the client's exit status: the person leaving
(C{/quit}, C{/logout}, the end of input, Ctrl-C), the server closing, or
the connection failing.
"""

from twisted.internet.defer import Deferred

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C, as shells report death by SIGINT."""


class Ending:
    """
    The end of one session.

    @ivar done: a L{Deferred} that fires with the exit code once the
        connection is gone (0 when the person chose to leave).
    @ivar leaving: true once C{quit} or C{logout} was sent, or the
        connection is being closed: nothing more is sent or asked.
    @ivar said_bye: true once the server said why it closes, so the
        loss of the connection needs no words of its own.
    @ivar code: the exit status so far.
    """

    leaving = False
    said_bye = False
    code = 0

    def __init__(self, peer, screen, where):
        """
        @param peer: the connection: C{send}, C{close}, C{abort}.
        @param screen: the L{echotwist.client.screen.Screen}.
        @param where: the server as a person reads it (C{host:port}).
        """
        self.peer = peer
        self.screen = screen
        self.where = where
        self.done = Deferred()

    def leave(self, message):
        """
        Send C{message} (C{quit} or C{logout}) and wait for the server to
        close; only the first call counts, as the server closes after it.
        """
        if self.leaving:
            return
        self.screen.hide_input(False)
        self.leaving = True
        self.peer.send(message)

    def fail(self, message):
        """
        Leave with C{message} because the session cannot go on: status 1.
        """
        self.code = 1
        self.leave(message)

    def bye(self, message):
        """
        The server's C{bye}: it closes, and says why.
        """
        self.said_bye = True
        self.screen.show(f"bye: {message.get('text', '')}")

    def too_large(self, length):
        """
        The server sent a frame longer than this client takes; the
        connection closes, as nothing after it can be read.
        """
        self.screen.show(
            f"The server sent a message of {length} bytes, "
            "too long for this client; closing."
        )
        self.code = 1
        self.leaving = True

    def interrupted(self):
        """
        Ctrl-C: leave at once; a second Ctrl-C does not wait any more.
        """
        self.screen.hide_input(False)
        if self.code == EXIT_INTERRUPTED:
            self.peer.abort()
            return
        self.screen.show("Interrupted.")
        self.code = EXIT_INTERRUPTED
        self.leave({"type": "quit"})
        self.peer.close()

    def lost(self, reason):
        """
        The connection is gone: say how, unless the person chose it or
        the server said why, and fire L{done} with the status.
        """
        self.screen.hide_input(False)
        if not self.leaving:
            if not self.said_bye:
                why = reason.getErrorMessage()
                self.screen.show(f"The connection to {self.where} was lost ({why}).")
            self.code = self.code or 1
        elif not self.said_bye and self.code == 0:
            self.screen.show("The server closed the connection.")
        self.screen.closed()
        self.done.callback(self.code)
