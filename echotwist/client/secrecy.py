# -*- test-case-name: tests.test_client_conversation -*-
"""
Which answers are secrets, and whether a secret may be sent on this
connection: every password and token the client would send is judged
here, whatever the server's mode and flags, so there is one rule to get
right.
"""

from echotwist.client.ending import EXIT_REFUSED
from echotwist.i18n import _

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


class Clearance:
    """
    Whether secrets may be sent on this connection (TLS, a loopback peer,
    or C{--insecure}); when they may not, the first one the session would
    send ends it instead, so a refused secret is never left to be asked
    for again.
    """

    def __init__(self, secure, why_insecure, screen, ending):
        """
        @param secure: whether a password or a token may be sent here.
        @param why_insecure: when not C{secure}, why, for the person.
        @param screen: the L{echotwist.client.screen.Screen} to tell.
        @param ending: the L{echotwist.client.ending.Ending} to leave by.
        """
        self.secure = secure
        self.why_insecure = why_insecure
        self.screen = screen
        self.ending = ending

    def allows(self, what):
        """
        Whether C{what} (a password, a token) may be sent on this
        connection. When it may not, the person is told why and how to
        allow it, and the client leaves with L{EXIT_REFUSED}.
        """
        if self.secure:
            return True
        self.screen.show(
            _(
                "Refusing to send {what} in clear text: {why}. "
                "Use --tls, or --insecure to send anyway."
            ).format(what=what, why=self.why_insecure)
        )
        self.ending.fail({"type": "quit"}, EXIT_REFUSED)
        return False
