# -*- test-case-name: tests.test_client_conversation -*-
"""
The server's questions (C{ask}) put to the person, and their answers
sent back. An answer the server would refuse is refused here, with the
reason, to spare a round trip; a new password is typed twice on a
terminal, since nobody sees it typed.
"""

from echotwist import messages as m
from echotwist.client.ending import EXIT_LOGIN_FAILED
from echotwist.client.presets import Presets, option_for
from echotwist.client.secrecy import is_secret
from echotwist.client.wording import question_text
from echotwist.i18n import N_, _

_WHAT = {
    "login": N_("the login"),
    "name": N_("the name"),
    "password": N_("the password"),
    "new_password": N_("the password"),
}


class Questions:
    """
    The question being answered.

    @ivar asking: the C{ask} being answered, or L{None}.
    @ivar login: the login the person goes by on this server, from the
        saved token, their answer, or the server's C{auth_ok}; it names
        them when a new password would register it.
    """

    asking = None
    login = None
    _first_password = None

    def __init__(self, peer, screen, ending, presets=None):
        """
        @param peer: the connection, to C{send} the answer on.
        @param screen: the L{echotwist.client.screen.Screen}.
        @param ending: the L{echotwist.client.ending.Ending}, to leave by
            when a script cannot answer.
        @param presets: the L{echotwist.client.presets.Presets}, answers
            given as options.
        """
        self.peer = peer
        self.screen = screen
        self.ending = ending
        self.presets = presets or Presets()

    def put(self, ask):
        """
        Put C{ask} to the person (their next line answers it), or answer
        it from the options. A script's lines never answer: it gives its
        answers as options, so that its lines are only ever said.
        """
        field = ask.get("field")
        preset = self.presets.take(field)
        if preset is not None:
            value, option = preset
            self.screen.show(f"{question_text(field, ask.get('text'))} ({option})")
            self._send(field, value)
            return
        if not self.screen.interactive:
            self._cannot_answer(field)
            return
        self.asking = ask
        self._first_password = None
        if (
            ask.get("field") == "new_password"
            and self.screen.interactive
            and self.login
        ):
            self.screen.show(
                _(
                    "{login!r} is a new login on this server: "
                    "the password you choose now registers it."
                ).format(login=self.login)
            )
        self._ask_again()

    def _ask_again(self, text=None):
        ask = self.asking
        text = text or question_text(ask.get("field"), ask.get("text"))
        self.screen.question(text, is_secret(ask))

    def answer(self, line):
        """
        Take the person's C{line} as the answer: send it, or say why not
        and ask again. A secret goes as typed, spaces and all, since they
        may be part of it; anything else without surrounding spaces.
        """
        ask = self.asking
        field = ask.get("field")
        secret = is_secret(ask)
        if secret:
            self.screen.secret_typed()
        value = line if secret else line.strip()
        why = check_answer(field, value)
        if why:
            self.screen.show("  " + _("{why}; try again.").format(why=why))
            self._ask_again()
            return
        if field == "new_password" and self.screen.interactive:
            if self._first_password is None:
                self._first_password = value
                self._ask_again(_("Type it again, to be sure:"))
                return
            first, self._first_password = self._first_password, None
            if first != value:
                self.screen.show("  " + _("The two passwords differ; try again."))
                self._ask_again()
                return
        self.asking = None
        self._send(field, value)

    def _send(self, field, value):
        if field == "login":
            self.login = value
        self.peer.send({"type": "answer", "field": field, "value": value})

    def _cannot_answer(self, field):
        """
        A script was asked what its options do not give (or gave, and the
        server refused): the login failed.
        """
        option = option_for(field)
        what = _(_WHAT[field]) if option else None
        if self.presets.was_used(field):
            line = _("Login failed: the server refused {what} given by {option}.")
        elif option:
            line = _(
                "Login failed: the server asks for {what}, which a script gives "
                "with {option} (see --help)."
            )
        else:
            line = _(
                "Login failed: the server asks for {field!r}, which a script "
                "cannot answer."
            )
        self.screen.show(line.format(what=what, option=option, field=field))
        self.ending.fail({"type": "quit"}, EXIT_LOGIN_FAILED)


def check_answer(field, value):
    """
    Check an answer as the server would, to spare a round trip.

    @return: L{None}, or why the answer would be refused.
    """
    if field == "login":
        return m.check_login(value)
    if field == "name":
        return m.check_name(value)
    if not value and field in m.SECRET_FIELDS:
        return _("the password is empty")
    return None
