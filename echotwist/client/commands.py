# -*- test-case-name: tests.test_client_conversation -*-
"""
The person's lines once the session is ready: a line to have echoed, or
a C{/command}.
"""

from echotwist import messages as m
from echotwist.i18n import _


def help_text():
    """The commands, for C{/help}."""
    return _(
        "Type a line to have the server echo it. Commands:\n"
        "  /repeat N text  ask for N echoes of text (N from 1 to 100)\n"
        "  /logout         log out: the server revokes the token, this client "
        "forgets it\n"
        "  /quit           leave (so does the end of input, Ctrl-D)\n"
        "  /help           this text\n"
        "A line starting with // is sent with one / removed."
    )


class Commands:
    """
    Reads one line as a C{say} or a command, and does it. A line the
    server would refuse for its length is refused here, so the session
    goes on.
    """

    def __init__(self, peer, screen, ending, tokens, lines, replies):
        """
        @param peer: the connection: C{send(message)},
            C{payload_size(message)}, C{max_message}.
        @param screen: the L{echotwist.client.screen.Screen}.
        @param ending: the L{echotwist.client.ending.Ending}, to leave by.
        @param tokens: the L{echotwist.client.tokens.Tokens}, for C{/logout}.
        @param lines: the L{echotwist.client.lines.Lines}, told of each
            C{say} so the next line waits for its echoes.
        @param replies: the L{echotwist.client.replies.Replies}, for the
            server's mode.
        """
        self.peer = peer
        self.screen = screen
        self.ending = ending
        self.tokens = tokens
        self.lines = lines
        self.replies = replies

    def run(self, line):
        """
        Say C{line}, or do the command it names.
        """
        if not line.strip():
            return
        if line.startswith("//"):
            return self._say(line[1:])
        if not line.startswith("/"):
            return self._say(line)
        name, __, rest = line[1:].partition(" ")
        command = getattr(self, "_do_" + name.lower(), None)
        if command is None or not name.isalpha():
            self.screen.show(
                _("Unknown command /{name}; /help lists the commands.").format(
                    name=name
                )
            )
            return
        command(rest)

    def _say(self, text, repeat=1):
        message = {"type": "say", "text": text}
        if repeat != 1:
            message["repeat"] = repeat
        size = self.peer.payload_size(message)
        if size > self.peer.max_message:
            self.screen.show(
                _(
                    "That line is too long: the server takes messages of up to "
                    "{limit} bytes (this one is {size})."
                ).format(limit=self.peer.max_message, size=size)
            )
            return
        self.lines.said(repeat)
        self.peer.send(message)

    def _do_repeat(self, rest):
        count, __, text = rest.strip().partition(" ")
        usage = _("usage: /repeat N text, N from 1 to {max}").format(max=m.MAX_REPEAT)
        if not (count.isascii() and count.isdigit()) or not text:
            self.screen.show(usage)
            return
        why = m.check_repeat(int(count))
        if why:
            self.screen.show(f"{why}; {usage}")
            return
        self._say(text, int(count))

    def _do_logout(self, rest):
        if self.replies.mode != "auth":
            self.screen.show(_("/logout is for auth mode; /quit leaves."))
            return
        self.tokens.forget()
        self.screen.show(_("Logging out; the saved token is forgotten."))
        self.ending.leave({"type": "logout"})

    def _do_quit(self, rest):
        self.ending.leave({"type": "quit"})

    def _do_help(self, rest):
        for line in help_text().splitlines():
            self.screen.show(line)
