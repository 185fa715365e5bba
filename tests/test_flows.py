"""
Every conversation of the contract (section 4), end to end over real
loopback TCP: the server built by C{makeService} on the real reactor, its
stores on their own thread, passwords hashed in the pool.
"""

from twisted.internet import defer

from tests.helpers import ServerTestCase


class Flows(ServerTestCase):
    @defer.inlineCallbacks
    def expect(self, c, *kinds):
        """
        The next messages, checked against (type, field or code) pairs.
        """
        got = []
        for kind, detail in kinds:
            message = yield c.next()
            got.append(message)
            self.assertEqual(
                (message["type"], message.get("field") or message.get("code")),
                (kind, detail),
                message,
            )
        return got

    def answer(self, c, field, value):
        c.send({"type": "answer", "field": field, "value": value})


class IdentFlows(Flows):
    mode = "ident"

    @defer.inlineCallbacks
    def test_identify_then_known(self):
        """
        Unknown: asked, a bad name refused, a good one stored and greeted;
        the next connection is greeted by name.
        """
        c = yield self.client()
        yield self.expect(c, ("ask", "name"))
        c.send({"type": "say", "text": "too early"})
        yield self.expect(c, ("error", "bad_state"), ("ask", "name"))
        self.answer(c, "name", " " * 3)
        yield self.expect(c, ("error", "bad_value"), ("ask", "name"))
        self.answer(c, "name", "  Алёна  ")
        [greet] = yield self.expect(c, ("greet", None))
        self.assertEqual((greet["name"], greet["known"]), ("Алёна", False))
        c.send({"type": "say", "text": "привет", "repeat": 2})
        yield self.expect(c, ("echo", None), ("echo", None))
        c.send({"type": "quit"})
        yield self.expect(c, ("bye", None))
        yield c.lost

        again = yield self.client()
        [greet] = yield self.expect(again, ("greet", None))
        self.assertEqual((greet["name"], greet["known"]), ("Алёна", True))


class AuthFlows(Flows):
    mode = "auth"

    @defer.inlineCallbacks
    def register(self, login, password="a fine password"):
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        self.answer(c, "login", login)
        yield self.expect(c, ("ask", "new_password"))
        self.answer(c, "new_password", password)
        auth_ok, greet = yield self.expect(c, ("auth_ok", None), ("greet", None))
        return c, auth_ok, greet

    @defer.inlineCallbacks
    def test_register(self):
        """
        A new login registers with an acceptable password (a weak one is
        refused first), gets a token, and can say things.
        """
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        c.send({"type": "say", "text": "early"})
        yield self.expect(c, ("error", "bad_state"), ("ask", "login"))
        c.send({"type": "logout"})
        yield self.expect(c, ("error", "bad_state"), ("ask", "login"))
        self.answer(c, "login", "no spaces allowed")
        yield self.expect(c, ("error", "bad_value"), ("ask", "login"))
        self.answer(c, "login", "Newbie")
        yield self.expect(c, ("ask", "new_password"))
        self.answer(c, "new_password", "password")
        yield self.expect(c, ("error", "weak_password"), ("ask", "new_password"))
        self.answer(c, "new_password", "a much better one")
        auth_ok, greet = yield self.expect(c, ("auth_ok", None), ("greet", None))
        self.assertEqual((auth_ok["via"], auth_ok["login"]), ("register", "Newbie"))
        self.assertFalse(greet["known"])
        c.send({"type": "say", "text": "hello", "repeat": 3})
        echoes = yield self.expect(c, ("echo", None), ("echo", None), ("echo", None))
        self.assertEqual([e["n"] for e in echoes], [1, 2, 3])

    @defer.inlineCallbacks
    def test_password_login(self):
        """
        A known login (any case) logs in with its password, two wrong tries
        first, and gets a new token.
        """
        _, first, _ = yield self.register("Carol")
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        self.answer(c, "login", "CAROL")
        yield self.expect(c, ("ask", "password"))
        for _ in range(2):
            self.answer(c, "password", "not it at all")
            yield self.expect(c, ("error", "bad_password"), ("ask", "password"))
        self.answer(c, "password", "a fine password")
        auth_ok, greet = yield self.expect(c, ("auth_ok", None), ("greet", None))
        self.assertEqual((auth_ok["via"], auth_ok["login"]), ("password", "Carol"))
        self.assertNotEqual(auth_ok["token"], first["token"])
        self.assertTrue(greet["known"])

    @defer.inlineCallbacks
    def test_three_wrong(self):
        """
        The third wrong password closes the connection after
        C{too_many_attempts} and C{bye}.
        """
        yield self.register("dan")
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        self.answer(c, "login", "dan")
        yield self.expect(c, ("ask", "password"))
        for _ in range(2):
            self.answer(c, "password", "wrong wrong")
            yield self.expect(c, ("error", "bad_password"), ("ask", "password"))
        self.answer(c, "password", "wrong wrong")
        yield self.expect(c, ("error", "too_many_attempts"), ("bye", None))
        yield c.lost

    @defer.inlineCallbacks
    def test_token_and_logout(self):
        """
        A token logs in without a password; after C{logout} on that
        connection it is refused, and the password is needed again.
        """
        _, auth_ok, _ = yield self.register("erin")
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        c.send({"type": "token", "token": "made-up"})
        yield self.expect(c, ("error", "bad_token"), ("ask", "login"))
        c.send({"type": "token", "token": auth_ok["token"]})
        again, _ = yield self.expect(c, ("auth_ok", None), ("greet", None))
        self.assertEqual(again, {"type": "auth_ok", "login": "erin", "via": "token"})
        c.send({"type": "token", "token": auth_ok["token"]})
        yield self.expect(c, ("error", "bad_state"))
        c.send({"type": "logout"})
        yield self.expect(c, ("bye", None))
        yield c.lost

        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        c.send({"type": "token", "token": auth_ok["token"]})
        yield self.expect(c, ("error", "bad_token"), ("ask", "login"))
        self.answer(c, "login", "erin")
        yield self.expect(c, ("ask", "password"))

    @defer.inlineCallbacks
    def test_pipelined(self):
        """
        Messages sent without waiting are handled in order: a C{say} right
        behind the password waits for its verdict.
        """
        yield self.register("fay")
        c = yield self.client()
        yield self.expect(c, ("ask", "login"))
        self.answer(c, "login", "fay")
        self.answer(c, "password", "a fine password")
        c.send({"type": "say", "text": "right behind"})
        yield self.expect(
            c, ("ask", "password"), ("auth_ok", None), ("greet", None), ("echo", None)
        )
