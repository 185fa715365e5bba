# -*- test-case-name: tests.test_client_conversation -*-
"""
The server's questions (C{ask}) put to the person, and their answers
sent back. An answer the server would refuse is refused here, with the
reason, to spare a round trip; a new password is typed twice on a
terminal, since nobody sees it typed.
"""

from echotwist import messages as m
from echotwist.client.secrecy import is_secret


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

    def __init__(self, peer, screen):
        """
        @param peer: the connection, to C{send} the answer on.
        @param screen: the L{echotwist.client.screen.Screen}.
        """
        self.peer = peer
        self.screen = screen

    def put(self, ask):
        """
        Put C{ask} to the person; their next line answers it.
        """
        self.asking = ask
        self._first_password = None
        if (
            ask.get("field") == "new_password"
            and self.screen.interactive
            and self.login
        ):
            self.screen.show(
                f"{self.login!r} is a new login on this server: "
                "the password you choose now registers it."
            )
        self._ask_again()

    def _ask_again(self, text=None):
        ask = self.asking
        text = text or ask.get("text") or f"{ask.get('field')}:"
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
            self.screen.show(f"  {why}; try again.")
            self._ask_again()
            return
        if field == "new_password" and self.screen.interactive:
            if self._first_password is None:
                self._first_password = value
                self._ask_again("Type it again, to be sure:")
                return
            first, self._first_password = self._first_password, None
            if first != value:
                self.screen.show("  The two passwords differ; try again.")
                self._ask_again()
                return
        if field == "login":
            self.login = value
        self.asking = None
        self.peer.send({"type": "answer", "field": field, "value": value})


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
        return "the password is empty"
    return None
