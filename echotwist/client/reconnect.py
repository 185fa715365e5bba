# -*- test-case-name: tests.test_client_terminal -*-
"""
Between two connections, with C{--reconnect}: the wait before the next
try, which the person may cut short (Ctrl-D, Ctrl-C); what they type
meanwhile is not sent, and a script's lines wait for the next session.
"""

from twisted.internet import defer, task

from echotwist.client.ending import EXIT_INTERRUPTED, EXIT_LOST
from echotwist.i18n import _


class Waiting:
    """
    The console's listener between two connections: lines typed are not
    sent (and said so), Ctrl-D or Ctrl-C stop trying.

    @ivar code: the exit status if the person stopped it.
    @ivar ended: whether the input ended meanwhile.
    """

    code = None
    ended = False

    def __init__(self, console):
        self.console = console
        self.lines = []
        self._sleeping = None

    def wait(self, reactor, delay):
        """
        @return: a L{Deferred} firing with true after C{delay} seconds, or
            false at once if the person stops it.
        """
        self._sleeping = task.deferLater(reactor, delay, lambda: True)
        self._sleeping.addErrback(
            lambda failure: failure.trap(defer.CancelledError) and False
        )
        return self._sleeping

    def line_received(self, line):
        if self.console.interactive:
            self.console.show(_("(not connected; that line was not sent)"))
        else:
            self.lines.append(line)  # a script's lines wait their turn

    def input_ended(self):
        self.ended = True
        if self.console.interactive:
            self._stop(EXIT_LOST)

    def interrupted(self):
        self.console.show(_("Interrupted."))
        self._stop(EXIT_INTERRUPTED)

    def _stop(self, code):
        self.code = code
        if self._sleeping is not None:
            self._sleeping.cancel()
