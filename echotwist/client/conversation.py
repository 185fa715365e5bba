# -*- test-case-name: tests.test_client_conversation -*-
"""
What the client says and shows, whatever it runs on: the server's
messages in, the person's lines in, messages out and lines to show out
(lab tasks 2, 6 and 8). No sockets, no terminal: the connection and the
console are passed in, so the same logic runs under a real terminal, a
pipe, or a unit test.

A line is used when the client is ready for it: as the answer when the
server has asked something, as a C{say} or a command once the session is
ready. On a terminal a line typed while the client waits for the server
(say, while a password is being checked) is refused with a note, because
a person sees what happened and may type it again; from a pipe or a file
lines wait their turn, in order, each until the replies to the one before
have come, so a script need not know the timing and its output reads in
the order it asked.
"""

import unicodedata
from collections import deque

from twisted.internet.defer import Deferred

from echotwist import messages as m
from echotwist.client.profile import ProfileError

_END = object()
"""Stands in the queue of lines for the end of input."""

HELP = """\
Type a line to have the server echo it. Commands:
  /repeat N text  ask for N echoes of text (N from 1 to 100)
  /logout         log out: the server revokes the token, this client forgets it
  /quit           leave (so does the end of input, Ctrl-D)
  /help           this text
A line starting with // is sent with one / removed."""


PUBLIC_FIELDS = ("name", "login")
"""
The questions whose answers are not secret; any other is a password. A
tuple, compared by equality: a server's C{field} may be any JSON value,
a list too, which a set could not even look up.
"""


def is_secret(ask):
    """
    Whether the answer to C{ask} is a secret: read with echo off, sent
    only where a password may go.

    The server's C{secret} flag may add secrecy, never take it away: a
    password field, or a field this client does not know, is secret
    whatever the flag says, so that neither a server nor anyone on the
    path of a plain connection gets a password typed in clear text by
    marking its question C{secret: false} or giving it another name.
    """
    return bool(ask.get("secret")) or ask.get("field") not in PUBLIC_FIELDS


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


class Conversation:
    """
    One session with a server, from its first message to the end of the
    connection.

    @ivar done: a L{Deferred} that fires with the exit code once the
        connection is gone (0 when the person chose to leave).
    @ivar mode: the server's mode, from its C{welcome}.
    @ivar ready: true once a line may be said (after C{greet}, or at once
        in echo mode).
    @ivar asking: the C{ask} being answered, or L{None}.
    @ivar leaving: true once C{quit} or C{logout} was sent.
    """

    mode = None
    ready = False
    asking = None
    leaving = False
    said_bye = False
    login = None
    code = 0
    _token_in_flight = False
    _prompt_shown = False
    _first_password = None

    def __init__(self, peer, console, profile, key, where, secure, why_insecure=""):
        """
        @param peer: the connection (L{echotwist.client.protocol.ClientProtocol}):
            C{send(message)}, C{payload_size(message)}, C{max_message},
            C{close()}.
        @param console: where the person is: C{show(line)}, C{prompt(text)},
            C{hide_input(hidden)} and C{interactive} (a terminal).
        @param profile: the L{echotwist.client.profile.Profile} of tokens.
        @param key: this server's key in the profile (C{host:port}).
        @param where: the server as a person reads it (C{host:port}).
        @param secure: whether a password or a token may be sent here (TLS,
            a loopback peer, or C{--insecure}).
        @param why_insecure: when not C{secure}, why, for the person.
        """
        self.peer = peer
        self.console = console
        self.profile = profile
        self.key = key
        self.where = where
        self.secure = secure
        self.why_insecure = why_insecure
        self.interactive = console.interactive
        self.done = Deferred()
        self._lines = deque()
        self._outstanding = deque()

    # Showing.

    def show(self, line):
        """
        Show one line to the person (on a fresh line if a prompt is up);
        whatever the server put in it is shown as text only.
        """
        line = printable(line)
        if self._prompt_shown:
            self._prompt_shown = False
            line = "\n" + line
        self.console.show(line)

    def _prompt_ready(self):
        """
        On a terminal, show the C{> } prompt when the session is ready and
        no reply is expected.
        """
        if (
            self.interactive
            and self.ready
            and not self.leaving
            and not self._outstanding
            and not self._prompt_shown
        ):
            self.console.prompt("> ")
            self._prompt_shown = True

    # The server's side.

    def message_received(self, message):
        """
        Show a message from the server and act on it.
        """
        handler = getattr(self, "_on_" + message["type"], None)
        if handler is None:
            self.show(f"(the server sent a {message['type']!r} message; ignored)")
        else:
            handler(message)
        self._drain()
        self._prompt_ready()

    def _on_welcome(self, message):
        self.mode = message.get("mode")
        version = message.get("version", "?")
        self.show(f"Connected to echolab {version} at {self.where} ({self.mode} mode).")
        if self.mode == "echo":
            self._become_ready()
        elif self.mode == "auth":
            if not self._secret_allowed("a password or a token"):
                return
            entry = self.profile.entry(self.key)
            if entry is not None:
                self.login = entry["login"]
                self._token_in_flight = True
                self.peer.send({"type": "token", "token": entry["token"]})
                self.show(f"Logging in as {entry['login']} with the saved token.")

    def _on_ask(self, message):
        if self._token_in_flight or self.leaving:
            # The server asked before it read our token; after the verdict
            # it asks again if it still needs to.
            return
        if is_secret(message) and not self._secret_allowed(
            f"the answer to {message.get('field')!r}"
        ):
            return
        self.asking = message
        self._first_password = None
        if message.get("field") == "new_password" and self.interactive and self.login:
            self.show(
                f"{self.login!r} is a new login on this server: "
                "the password you choose now registers it."
            )
        self._show_question(message.get("text") or f"{message.get('field')}:")

    def _secret_allowed(self, what):
        """
        Whether C{what} (a password, a token) may be sent on this
        connection. When it may not, the person is told why and how to
        allow it, and the client leaves: every secret, whatever the
        server's mode and flags, is judged here, so there is one rule to
        get right.
        """
        if self.secure:
            return True
        self.show(
            f"Refusing to send {what} in clear text: "
            f"{self.why_insecure}. Use --tls, or --insecure to send anyway."
        )
        self.code = 1
        self._leave({"type": "quit"})
        return False

    def _show_question(self, text):
        if is_secret(self.asking):
            self.console.hide_input(True)  # before the prompt shows
        if self.interactive:
            self.console.prompt(printable(text) + " ")
            self._prompt_shown = True
        else:
            self.show(text)

    def _on_auth_ok(self, message):
        self._token_in_flight = False
        self.login = login = message.get("login", self.login)
        token = message.get("token")
        via = message.get("via")
        if token is None:
            self.show(f"Logged in as {login} with the saved token.")
            return
        what = "Registered" if via == "register" else "Logged in as"
        saved = self._save_token(login, token, message.get("expires"))
        self.show(f"{what} {login}; {saved}.")

    def _save_token(self, login, token, expires):
        if not self.profile.usable:
            return "the token is not saved (the profile is ignored)"
        if type(expires) is not int:
            return "the token came without a valid expiry and is not saved"
        try:
            self.profile.save_token(self.key, login, token, expires)
        except ProfileError as e:
            return f"the token is not saved: {e}"
        return "token saved for next time"

    def _on_greet(self, message):
        self.show(message.get("text") or f"Hello, {message.get('name')}!")
        self._become_ready()

    def _become_ready(self):
        if self.ready:
            return
        self.ready = True
        if self.interactive:
            self.show("Type a line to have it echoed; /help lists the commands.")

    def _on_echo(self, message):
        text = message.get("text", "")
        if "n" in message and "of" in message:
            self.show(f"echo {message['n']}/{message['of']}: {text}")
        else:
            self.show(f"echo: {text}")
        if self._outstanding:
            self._outstanding[0] -= 1
            if self._outstanding[0] <= 0:
                self._outstanding.popleft()

    def _on_error(self, message):
        code = message.get("code", "?")
        self.show(f"error ({code}): {message.get('text', '')}")
        if self._token_in_flight:
            self._token_in_flight = False
            if code == m.BAD_TOKEN:
                self._forget_token()
                self.show("The saved token was refused; log in with your password.")
        elif self.ready and self._outstanding:
            self._outstanding.popleft()  # that say was refused

    def _forget_token(self):
        try:
            self.profile.forget(self.key)
        except ProfileError as e:
            self.show(f"(could not forget the token: {e})")

    def _on_bye(self, message):
        self.said_bye = True
        self.show(f"bye: {message.get('text', '')}")

    def garbled(self, reason):
        """
        The server sent a frame that is not a message.
        """
        self.show(
            f"(the server sent something that is not a message: {reason}; ignored)"
        )

    def too_large(self, length):
        """
        The server sent a frame longer than this client takes.
        """
        self.show(
            f"The server sent a message of {length} bytes, "
            "too long for this client; closing."
        )
        self.code = 1
        self.leaving = True

    def connection_lost(self, reason):
        """
        The connection is gone: say how, and finish.
        """
        self.console.hide_input(False)
        if not self.leaving:
            if not self.said_bye:
                why = reason.getErrorMessage()
                self.show(f"The connection to {self.where} was lost ({why}).")
            self.code = self.code or 1
        elif not self.said_bye and self.code == 0:
            self.show("The server closed the connection.")
        self.ready = False
        self._prompt_shown = False
        self.done.callback(self.code)

    # The person's side.

    def line_received(self, line):
        """
        Take one line typed by the person (without its line ending).
        """
        self._prompt_shown = False
        if self.interactive and not self._can_take(line):
            self.show("(waiting for the server; that line was not sent)")
            return
        self._lines.append(line)
        self._drain()
        self._prompt_ready()

    def input_ended(self):
        """
        The input ended (end of file, Ctrl-D): leave once what came before
        it is used.
        """
        if self._prompt_shown:
            self._prompt_shown = False
            self.console.show("")  # Ctrl-D leaves the cursor after a prompt
        self._lines.append(_END)
        self._drain()

    def interrupted(self):
        """
        Ctrl-C: leave at once.
        """
        self.console.hide_input(False)
        if self.code == 130:
            self.peer.abort()  # a second Ctrl-C: do not wait any more
            return
        self.show("Interrupted.")
        self.code = 130
        self._leave({"type": "quit"})
        self.peer.close()

    def _can_take(self, item):
        if self.leaving:
            return True  # to be dropped
        if self.interactive:
            return item is _END or self.asking is not None or self.ready
        # A script's lines go one at a time, each after the replies to the
        # one before, so what it shows comes in the order it was asked for.
        return self.asking is not None or (self.ready and not self._outstanding)

    def _drain(self):
        lines = self._lines
        while lines and self._can_take(lines[0]):
            item = lines.popleft()
            if self.leaving:
                continue
            if item is _END:
                self._leave({"type": "quit"})
            elif self.asking is not None:
                self._answer(item)
            else:
                self._command(item)

    def _leave(self, message):
        if self.leaving:
            return
        self.console.hide_input(False)
        self.leaving = True
        self.asking = None
        self.peer.send(message)

    # Answers.

    def _answer(self, line):
        ask = self.asking
        field = ask.get("field")
        secret = is_secret(ask)
        if secret:
            self.console.hide_input(False)
            if self.interactive:
                self.console.show("")  # the Enter the terminal did not echo
        value = line if secret else line.strip()
        why = self._check_answer(field, value)
        if why:
            self.show(f"  {why}; try again.")
            self._show_question(ask.get("text") or f"{field}:")
            return
        if field == "new_password" and self.interactive:
            if self._first_password is None:
                self._first_password = value
                self._show_question("Type it again, to be sure:")
                return
            first, self._first_password = self._first_password, None
            if first != value:
                self.show("  The two passwords differ; try again.")
                self._show_question(ask.get("text") or f"{field}:")
                return
        if field == "login":
            self.login = value
        self.asking = None
        self.peer.send({"type": "answer", "field": field, "value": value})

    def _check_answer(self, field, value):
        """
        Check an answer as the server would, to spare a round trip.

        @return: L{None}, or why the answer would be refused.
        """
        if field == "login":
            return m.check_login(value)
        if field == "name":
            return m.check_name(value)
        if not value and field in m.SECRET_FIELDS:
            return "the password is empty"
        return None

    # Commands.

    def _command(self, line):
        if not line.strip():
            return
        if line.startswith("//"):
            return self._say(line[1:])
        if not line.startswith("/"):
            return self._say(line)
        name, _, rest = line[1:].partition(" ")
        command = getattr(self, "_do_" + name.lower(), None)
        if command is None or not name.isalpha():
            self.show(f"Unknown command /{name}; /help lists the commands.")
            return
        command(rest)

    def _say(self, text, repeat=1):
        message = {"type": "say", "text": text}
        if repeat != 1:
            message["repeat"] = repeat
        size = self.peer.payload_size(message)
        if size > self.peer.max_message:
            self.show(
                f"That line is too long: the server takes messages of up to "
                f"{self.peer.max_message} bytes (this one is {size})."
            )
            return
        self._outstanding.append(repeat)
        self.peer.send(message)

    def _do_repeat(self, rest):
        count, _, text = rest.strip().partition(" ")
        usage = f"usage: /repeat N text, N from 1 to {m.MAX_REPEAT}"
        if not (count.isascii() and count.isdigit()) or not text:
            self.show(usage)
            return
        why = m.check_repeat(int(count))
        if why:
            self.show(f"{why}; {usage}")
            return
        self._say(text, int(count))

    def _do_logout(self, rest):
        if self.mode != "auth":
            self.show("/logout is for auth mode; /quit leaves.")
            return
        self._forget_token()
        self.show("Logging out; the saved token is forgotten.")
        self._leave({"type": "logout"})

    def _do_quit(self, rest):
        self._leave({"type": "quit"})

    def _do_help(self, rest):
        for line in HELP.splitlines():
            self.show(line)
