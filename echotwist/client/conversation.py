# -*- test-case-name: tests.test_client_conversation -*-
"""
What the client says and shows, whatever it runs on: the server's
messages in, the person's lines in, messages out and lines to show out
(lab tasks 2, 6 and 8). No sockets, no terminal: the connection and the
console are passed in, so the same logic runs under a real terminal, a
pipe, or a unit test.

L{Conversation} only wires the parts together and takes what comes in;
each part has one concern:

  - L{echotwist.client.replies}: what each server message means;
  - L{echotwist.client.questions}: the server's questions and their answers;
  - L{echotwist.client.tokens}: the tokens kept in the profile;
  - L{echotwist.client.secrecy}: which answers are secrets, and where
    secrets may be sent;
  - L{echotwist.client.lines}: when the person's lines are used;
  - L{echotwist.client.commands}: what a line says, or which C{/command};
  - L{echotwist.client.ending}: how the session ends, and the exit status;
  - L{echotwist.client.screen}: showing, prompting, hiding secrets.
"""

from echotwist.client.commands import Commands, help_text
from echotwist.client.ending import Ending
from echotwist.client.lines import END, Lines
from echotwist.client.questions import Questions
from echotwist.client.replies import Replies
from echotwist.client.screen import Screen, printable
from echotwist.client.secrecy import PUBLIC_FIELDS, Clearance, is_secret
from echotwist.client.tokens import Tokens
from echotwist.i18n import _

__all__ = ["help_text", "PUBLIC_FIELDS", "Conversation", "is_secret", "printable"]


class Conversation:
    """
    One session with a server, from its first message to the end of the
    connection: the handler of a L{echotwist.client.protocol.ClientProtocol}
    and the reader of the console's lines.

    @ivar done: a L{Deferred} that fires with the exit code once the
        connection is gone (0 when the person chose to leave).
    """

    def __init__(
        self,
        peer,
        console,
        profile,
        key,
        where,
        secure,
        why_insecure="",
        presets=None,
        security=None,
    ):
        """
        @param peer: the connection (L{echotwist.client.protocol.ClientProtocol}):
            C{send(message)}, C{payload_size(message)}, C{max_message},
            C{close()}, C{abort()}.
        @param console: where the person is: C{show(line)}, C{prompt(text)},
            C{hide_input(hidden)} and C{interactive} (a terminal).
        @param profile: the L{echotwist.client.profile.Profile} of tokens.
        @param key: this server's key in the profile (C{host:port}).
        @param where: the server as a person reads it (C{host:port}).
        @param secure: whether a password or a token may be sent here (TLS,
            a loopback peer, or C{--insecure}).
        @param why_insecure: when not C{secure}, why, for the person.
        @param presets: the L{echotwist.client.presets.Presets}: answers
            given as options (a script's only answers).
        @param security: how the connection is protected, for the
            C{Connected to} line (TLS version and certificate, or plain).
        """
        self.screen = screen = Screen(console)
        self.ending = ending = Ending(peer, screen, where)
        clearance = Clearance(secure, why_insecure, screen, ending)
        self.tokens = tokens = Tokens(profile, key, peer, screen)
        self.questions = questions = Questions(peer, screen, ending, presets)
        self.lines = lines = Lines(screen.interactive, ending, questions)
        self.replies = replies = Replies(
            where, screen, ending, clearance, tokens, questions, lines
        )
        replies.security = security
        self.commands = Commands(peer, screen, ending, tokens, lines, replies)
        self.done = ending.done

    @property
    def mode(self):
        """The server's mode, from its C{welcome}."""
        return self.replies.mode

    @property
    def ready(self):
        """Whether a line may be said (after C{greet}, or at once in echo mode)."""
        return self.lines.ready

    @property
    def code(self):
        """The exit status so far."""
        return self.ending.code

    # The server's side.

    def message_received(self, message):
        """
        Show a message from the server and act on it; it may make the
        client ready for lines that were waiting.
        """
        self.replies.received(message)
        self._use_lines()
        self._prompt_ready()

    def garbled(self, reason):
        """
        The server sent a frame that is not a message.
        """
        self.replies.garbled(reason)

    def too_large(self, length):
        """
        The server sent a frame longer than this client takes.
        """
        self.ending.too_large(length)

    def connection_lost(self, reason):
        """
        The connection is gone: say how, and finish.
        """
        self.lines.ready = False
        self.ending.lost(reason)

    # The person's side.

    def line_received(self, line):
        """
        Take one line typed by the person (without its line ending).
        """
        self.screen.line_typed()
        if self.screen.interactive and not self.lines.can_take(line):
            self.screen.show(_("(waiting for the server; that line was not sent)"))
            return
        self.lines.push(line)
        self._use_lines()
        self._prompt_ready()

    def input_ended(self):
        """
        The input ended (end of file, Ctrl-D): leave once what came before
        it is used.
        """
        self.screen.input_ended()
        self.lines.push(END)
        self._use_lines()

    def interrupted(self):
        """
        Ctrl-C: leave at once.
        """
        self.ending.interrupted()

    def _use_lines(self):
        for line in self.lines.taken():
            if line is END:
                self.ending.leave({"type": "quit"})
            elif self.questions.asking is not None:
                self.questions.answer(line)
            else:
                self.commands.run(line)

    def _prompt_ready(self):
        """
        On a terminal, show the C{> } prompt when the session is ready and
        no reply is expected.
        """
        if (
            self.screen.interactive
            and self.lines.ready
            and not self.ending.leaving
            and not self.ending.said_bye
            and not self.lines.awaiting
            and not self.screen.prompt_shown
        ):
            self.screen.prompt("> ", recording=True)
