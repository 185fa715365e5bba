# -*- test-case-name: tests.test_client_conversation -*-
"""
The login tokens the profile keeps for a server, like a browser keeps
cookies: offered when the server asks for a login, saved when it issues
one, forgotten when it refuses one or the person logs out.
"""

from echotwist import messages as m
from echotwist.client.profile import ProfileError
from echotwist.i18n import _


class Tokens:
    """
    This server's token in the profile.

    @ivar in_flight: true from sending the saved token until the server's
        verdict on it, while its questions are not put to the person (it
        asked before it read the token; after the verdict it asks again
        if it still needs to).
    """

    in_flight = False

    def __init__(self, profile, key, peer, screen):
        """
        @param profile: the L{echotwist.client.profile.Profile} of tokens.
        @param key: this server's key in the profile (C{host:port}).
        @param peer: the connection, to C{send} the token on.
        @param screen: the L{echotwist.client.screen.Screen}.
        """
        self.profile = profile
        self.key = key
        self.peer = peer
        self.screen = screen

    def offer(self):
        """
        Log in with the saved token, if there is one.

        @return: the login the token is for, or L{None} when none is saved.
        """
        entry = self.profile.entry(self.key)
        if entry is None:
            return None
        self.in_flight = True
        self.peer.send({"type": "token", "token": entry["token"]})
        self.screen.show(
            _("Logging in as {login} with the saved token.").format(
                login=entry["login"]
            )
        )
        return entry["login"]

    def accepted(self, login, message):
        """
        The server's C{auth_ok} for C{login}: keep the token it issued, if
        any, and tell the person how they are logged in.
        """
        self.in_flight = False
        token = message.get("token")
        if token is None:
            self.screen.show(
                _("Logged in as {login} with the saved token.").format(login=login)
            )
            return
        saved = self._save(login, token, message.get("expires"))
        if message.get("via") == "register":
            line = _("Registered {login}; {saved}.")
        else:
            line = _("Logged in as {login}; {saved}.")
        self.screen.show(line.format(login=login, saved=saved))

    def _save(self, login, token, expires):
        """
        Save a token, and say whether it was, since a profile that cannot
        be written is no reason to end the session.
        """
        if not self.profile.usable:
            return _("the token is not saved (the profile is ignored)")
        if type(expires) is not int:
            return _("the token came without a valid expiry and is not saved")
        try:
            self.profile.save_token(self.key, login, token, expires)
        except ProfileError as e:
            return _("the token is not saved: {why}").format(why=e)
        return _("token saved for next time")

    def refused(self, code):
        """
        The server's error in answer to the token: a token it does not
        know is forgotten, so the next connection does not offer it again.
        """
        self.in_flight = False
        if code == m.BAD_TOKEN:
            self.forget()
            self.screen.show(
                _("The saved token was refused; log in with your password.")
            )

    def forget(self):
        """
        Delete the saved token; a profile that cannot be written is said,
        not fatal.
        """
        try:
            self.profile.forget(self.key)
        except ProfileError as e:
            self.screen.show(_("(could not forget the token: {why})").format(why=e))
