# -*- test-case-name: tests.test_deadlines -*-
"""
The timeouts of one server connection (L{Deadlines}).
"""

from echotwist.i18n import N_


class Deadlines:
    """
    When one connection began waiting for its client, and whether it
    waited too long: for its login, for anything at all, for the rest of
    a frame, for it to read what we send.

    It exists so that the connection only notes the times as things
    happen (plain attributes: it does so on every read), and the rules
    of which timeout applies live in one place, asked once a second by
    the factory's sweep (L{overstayed}).

    @ivar connected_at: when the connection was accepted.
    @ivar last_heard: when the client last sent something.
    @ivar unfinished_since: since when a frame is left unfinished, or
        L{None}.
    @ivar stalled_since: since when the client has not been reading what
        we send, or L{None}.
    """

    # (Slots: every connection has one, and a dict would cost it memory.)
    __slots__ = (
        "settings",
        "connected_at",
        "last_heard",
        "unfinished_since",
        "stalled_since",
    )

    def __init__(self, settings, now):
        """
        @param settings: the L{echotwist.settings.Settings}, whose
            C{login_timeout}, C{idle_timeout}, C{frame_timeout} and
            C{stall_timeout} apply.
        @param now: when the connection was accepted.
        """
        self.settings = settings
        self.connected_at = self.last_heard = now
        self.unfinished_since = self.stalled_since = None

    def overstayed(self, now, logging_in):
        """
        @param now: the time.
        @param logging_in: whether the client has yet to log in (or, on
            TLS, to finish its handshake): the login timeout, which runs
            from accept, then applies too.
        @return: why the connection overstayed, or L{None}.
        """
        settings = self.settings
        stalled = self.stalled_since
        if stalled is not None and now - stalled >= settings.stall_timeout:
            return N_("not reading what the server sends")
        if logging_in and now - self.connected_at >= settings.login_timeout:
            return N_("took too long to identify or log in")
        if self.unfinished_since is not None:
            if now - self.unfinished_since >= settings.frame_timeout:
                return N_("a message was left incomplete")
        elif now - self.last_heard >= settings.idle_timeout:
            return N_("idle for too long")
        return None
