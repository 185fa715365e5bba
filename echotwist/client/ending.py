# -*- test-case-name: tests.test_client_conversation -*-
"""
How a session ends and the client's exit status: the person leaving
(C{/quit}, C{/logout}, the end of input, Ctrl-C), the server ending it
(with its C{bye}), the login failing, or the connection failing (reset,
timed out, TLS). Each ending is said in one sentence, once.
"""

from OpenSSL.SSL import Error as TLSError
from twisted.internet import error
from twisted.internet.defer import Deferred

from echotwist.client.wording import ending_text
from echotwist.i18n import _

EXIT_OK = 0
"""The person left: C{/quit}, C{/logout}, the end of input."""
EXIT_LOST = 1
"""The connection could not be made, was lost, or the server ended the session."""
EXIT_USAGE = 2
"""A bad option."""
EXIT_LOGIN_FAILED = 3
"""The login failed: wrong password, refused token with no password to give."""
EXIT_REFUSED = 4
"""The server refused the session (busy, too many refused messages) or the
client refused to send a secret in clear text."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C, as shells report death by SIGINT."""


def exit_statuses():
    """The exit statuses, for C{--help}."""
    return _(
        "Exit status: {ok} you left (/quit, /logout, end of input); "
        "{lost} cannot connect, or the connection was lost or ended by the "
        "server; {usage} bad option; {login} login failed; "
        "{refused} the server refused the session (or a secret would go in "
        "clear text); {interrupted} interrupted."
    ).format(
        ok=EXIT_OK,
        lost=EXIT_LOST,
        usage=EXIT_USAGE,
        login=EXIT_LOGIN_FAILED,
        refused=EXIT_REFUSED,
        interrupted=EXIT_INTERRUPTED,
    )


_CODE_FOR_ERROR = {
    "busy": EXIT_REFUSED,
    "rate_limited": EXIT_REFUSED,
    "too_many_attempts": EXIT_LOGIN_FAILED,
}


def describe_loss(reason, where):
    """
    One sentence saying how the connection to C{where} was lost, when the
    server said nothing about it.

    @param reason: a L{twisted.python.failure.Failure}.
    """
    if reason.check(TLSError):
        return _(
            "The TLS session with {where} failed; the connection is closed."
        ).format(where=where)
    if reason.check(error.TimeoutError, error.TCPTimedOutError):
        return _("The connection to {where} timed out.").format(where=where)
    if reason.check(error.ConnectionDone):
        return _("The server at {where} closed the connection without a word.").format(
            where=where
        )
    return _("The connection to {where} was reset.").format(where=where)


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
    @ivar authenticated: true once the session was ready, so a server's
        C{too_many_attempts} then is a refusal, not a failed login.
    """

    leaving = False
    said_bye = False
    authenticated = False
    code = EXIT_OK

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
        self._error_code = None

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

    def fail(self, message, code=EXIT_LOST):
        """
        Leave with C{message} because the session cannot go on.
        """
        self.code = code
        self.leave(message)

    def server_error(self, code):
        """
        The server refused something with C{code}; if it closes next, this
        says why.
        """
        self._error_code = code

    def bye(self, message):
        """
        The server's C{bye}: it closes, and says why. Asked for, it is a
        goodbye; otherwise the server ended the session, and that is the
        one sentence said about it.
        """
        self.said_bye = True
        text = message.get("text", "")
        if self.leaving:
            self.screen.show(_("bye: {text}").format(text=text))
            return
        self.screen.closed()  # no prompt is left above or below it
        text = ending_text(self._error_code, text)
        self.screen.show(_("The server ended the session: {text}").format(text=text))
        code = _CODE_FOR_ERROR.get(self._error_code, EXIT_LOST)
        if code == EXIT_LOGIN_FAILED and self.authenticated:
            code = EXIT_REFUSED
        self.code = self.code or code

    def too_large(self, length):
        """
        The server sent a frame longer than this client takes; the
        connection closes, as nothing after it can be read.
        """
        self.screen.show(
            _(
                "The server sent a message of {length} bytes, "
                "too long for this client; closing."
            ).format(length=length)
        )
        self.code = EXIT_LOST
        self.leaving = True

    def interrupted(self):
        """
        Ctrl-C: leave at once; a second Ctrl-C does not wait any more.
        """
        self.screen.hide_input(False)
        if self.code == EXIT_INTERRUPTED:
            self.peer.abort()
            return
        self.screen.show(_("Interrupted."))
        self.code = EXIT_INTERRUPTED
        self.leave({"type": "quit"})
        self.peer.close()

    def lost(self, reason):
        """
        The connection is gone: say how, unless the person chose it or
        the server said why, and fire L{done} with the status.
        """
        self.screen.hide_input(False)
        self.screen.closed()
        if not self.said_bye:
            if not self.leaving:
                self.screen.show(describe_loss(reason, self.where))
                self.code = self.code or EXIT_LOST
            elif self.code == EXIT_OK:
                self.screen.show(_("The server closed the connection."))
        self.done.callback(self.code)

    @property
    def may_reconnect(self):
        """
        Whether trying again could help: the connection was lost or the
        server ended the session, not the person nor a refused login.
        """
        return self.code == EXIT_LOST
