# -*- test-case-name: tests.test_client_conversation -*-
"""
What each of the server's messages means to the person: what is shown,
what the client answers, and what it now waits for.
"""

from echotwist.client.secrecy import is_secret
from echotwist.client.wording import error_text, greeting
from echotwist.i18n import _


class Replies:
    """
    The server's messages, each handed to the part of the session it
    concerns.

    @ivar mode: the server's mode, from its C{welcome}.
    """

    mode = None

    security = None

    def __init__(self, where, screen, ending, clearance, tokens, questions, lines):
        """
        @param where: the server as a person reads it (C{host:port}).
        @param screen: the L{echotwist.client.screen.Screen}.
        @param ending: the L{echotwist.client.ending.Ending}.
        @param clearance: the L{echotwist.client.secrecy.Clearance} that
            judges every secret before it is sent or asked for.
        @param tokens: the L{echotwist.client.tokens.Tokens}.
        @param questions: the L{echotwist.client.questions.Questions}.
        @param lines: the L{echotwist.client.lines.Lines}.
        """
        self.where = where
        self.screen = screen
        self.ending = ending
        self.clearance = clearance
        self.tokens = tokens
        self.questions = questions
        self.lines = lines

    def received(self, message):
        """
        Show a message from the server and act on it; one this client does
        not know is shown as ignored, since a newer server may send more.
        """
        handler = getattr(self, "_on_" + message["type"], None)
        if handler is None:
            self.screen.show(
                _("(the server sent a {type!r} message; ignored)").format(
                    type=message["type"]
                )
            )
        else:
            handler(message)

    def garbled(self, reason):
        """
        The server sent a frame that is not a message.
        """
        self.screen.show(
            _(
                "(the server sent something that is not a message: {reason}; ignored)"
            ).format(reason=reason)
        )

    def _on_welcome(self, message):
        self.mode = message.get("mode")
        version = message.get("version", "?")
        if self.security:
            line = _(
                "Connected to echolab {version} at {where} ({mode} mode; {security})."
            )
        else:
            line = _("Connected to echolab {version} at {where} ({mode} mode).")
        self.screen.show(
            line.format(
                version=version,
                where=self.where,
                mode=self.mode,
                security=self.security,
            )
        )
        if self.mode == "echo":
            self._become_ready()
        elif self.mode == "auth":
            if not self.clearance.allows(_("a password or a token")):
                return
            login = self.tokens.offer()
            if login is not None:
                self.questions.login = login

    def _on_ask(self, message):
        if self.tokens.in_flight or self.ending.leaving:
            # The server asked before it read our token; after the verdict
            # it asks again if it still needs to.
            return
        if is_secret(message) and not self.clearance.allows(
            _("the answer to {field!r}").format(field=message.get("field"))
        ):
            return
        self.questions.put(message)

    def _on_auth_ok(self, message):
        questions = self.questions
        questions.login = message.get("login", questions.login)
        self.tokens.accepted(questions.login, message)

    def _on_greet(self, message):
        self.screen.show(
            greeting(message.get("name"), message.get("known"), message.get("text"))
        )
        self._become_ready()

    def _become_ready(self):
        if self.lines.ready:
            return
        self.lines.ready = True
        self.ending.authenticated = True
        if self.screen.interactive:
            self.screen.show(
                _("Type a line to have it echoed; /help lists the commands.")
            )

    def _on_echo(self, message):
        text = message.get("text", "")
        if "n" in message and "of" in message:
            self.screen.show(
                _("echo {n}/{of}: {text}").format(
                    n=message["n"], of=message["of"], text=text
                )
            )
        else:
            self.screen.show(_("echo: {text}").format(text=text))
        self.lines.echoed()

    def _on_error(self, message):
        code = message.get("code", "?")
        text = error_text(code, message.get("text", ""))
        self.screen.show(_("error ({code}): {text}").format(code=code, text=text))
        self.ending.server_error(code)
        if self.tokens.in_flight:
            self.tokens.refused(code)
        elif self.lines.ready:
            self.lines.refused()  # that say was refused

    def _on_bye(self, message):
        self.ending.bye(message)
