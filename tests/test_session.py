"""
Tests for L{echotwist.session}: the ident and auth conversations of the
contract (section 4), message by message, with the real stores (answering
at once) and a cheap password hash.
"""

import hashlib

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from echotwist.settings import DAY
from echotwist.throttle import Limits
from tests.helpers import Conversation, make_factory

PASSWORD = "correct horse battery"


def kinds(replies):
    """
    Replies as (type, field or code) pairs, for compact assertions.
    """
    return [(r["type"], r.get("field") or r.get("code")) for r in replies]


class IdentTests(SynchronousTestCase):
    def setUp(self):
        self.factory = make_factory(self, "ident")

    def connect(self, host="10.0.0.7"):
        return Conversation(self.factory, host=host)

    def identify(self, name, host="10.0.0.7"):
        c = self.connect(host)
        c.replies()
        c.send({"type": "answer", "field": "name", "value": name})
        return c

    def test_unknown_then_known(self):
        """
        An unknown address is asked its name and greeted as new; the next
        connection from that address is greeted by name as known.
        """
        c = self.connect()
        replies = c.replies()
        self.assertEqual(kinds(replies), [("welcome", None), ("ask", "name")])
        self.assertEqual(replies[0]["mode"], "ident")
        self.assertFalse(replies[1]["secret"])
        c.send({"type": "answer", "field": "name", "value": "Ann"})
        [greet] = c.replies()
        self.assertEqual(
            {k: greet[k] for k in ("type", "name", "known")},
            {"type": "greet", "name": "Ann", "known": False},
        )
        c.send({"type": "say", "text": "hi"})
        self.assertEqual(c.types(), ["echo"])

        again = self.connect()
        replies = again.replies()
        self.assertEqual(kinds(replies), [("welcome", None), ("greet", None)])
        self.assertEqual((replies[1]["name"], replies[1]["known"]), ("Ann", True))

    def test_other_address(self):
        """
        Another address is another client.
        """
        self.identify("Ann")
        c = self.connect(host="10.0.0.8")
        self.assertEqual(kinds(c.replies())[1], ("ask", "name"))

    def test_name_trimmed_unicode(self):
        """
        Names are trimmed; Cyrillic and emoji are stored as given.
        """
        c = self.identify("  Иван 🦊\t")
        self.assertEqual(c.replies()[0]["name"], "Иван 🦊")
        self.assertEqual(self.connect().replies()[1]["name"], "Иван 🦊")

    def test_bad_names(self):
        """
        Empty, too long or unprintable names get C{bad_value} and the
        question again; the connection stays open.
        """
        c = self.connect()
        c.replies()
        for name in ["", "   ", "x" * 65, "a\x00b", "\u202e"]:
            c.send({"type": "answer", "field": "name", "value": name})
            self.assertEqual(
                kinds(c.replies()), [("error", "bad_value"), ("ask", "name")]
            )
        c.send({"type": "answer", "field": "name", "value": "x" * 64})
        self.assertEqual(c.types(), ["greet"])

    def test_out_of_turn(self):
        """
        Before identification C{say} is C{bad_state} and the question comes
        again; afterwards, so is an C{answer} (with no question).
        """
        c = self.connect()
        c.replies()
        c.send({"type": "say", "text": "early"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state"), ("ask", "name")])
        c.send({"type": "answer", "field": "login", "value": "x"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state"), ("ask", "name")])
        c.send({"type": "token", "token": "x"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state"), ("ask", "name")])
        c.send({"type": "answer", "field": "name", "value": "Ann"})
        c.replies()
        c.send({"type": "answer", "field": "name", "value": "Bob"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state")])

    def test_bad_message_reasks(self):
        """
        A malformed message while a question is pending gets
        C{bad_message}, then the question again.
        """
        c = self.connect()
        c.replies()
        c.send_bytes(b"\x00\x00\x00\x02{}")
        self.assertEqual(
            kinds(c.replies()), [("error", "bad_message"), ("ask", "name")]
        )


class AuthTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.factory = make_factory(self, "auth", clock=self.clock)

    def connect(self, host="10.0.0.7"):
        c = Conversation(self.factory, host=host)
        replies = c.replies()
        self.assertEqual(kinds(replies), [("welcome", None), ("ask", "login")])
        return c

    def answer(self, c, field, value):
        c.send({"type": "answer", "field": field, "value": value})
        return c.replies()

    def register(self, login="alice", password=PASSWORD):
        c = self.connect()
        self.assertEqual(
            kinds(self.answer(c, "login", login)), [("ask", "new_password")]
        )
        replies = self.answer(c, "new_password", password)
        self.assertEqual(kinds(replies), [("auth_ok", None), ("greet", None)])
        return c, replies

    def login(self, login="alice", password=PASSWORD):
        c = self.connect()
        self.assertEqual(kinds(self.answer(c, "login", login)), [("ask", "password")])
        return c, self.answer(c, "password", password)

    def test_register(self):
        """
        An unknown login is asked a new (secret) password; registering
        gets C{auth_ok} via register with a token, then C{greet} as new.
        """
        c = self.connect()
        [ask] = self.answer(c, "login", "alice")
        self.assertEqual((ask["field"], ask["secret"]), ("new_password", True))
        auth_ok, greet = self.answer(c, "new_password", PASSWORD)
        self.assertEqual(auth_ok["login"], "alice")
        self.assertEqual(auth_ok["via"], "register")
        self.assertEqual(len(auth_ok["token"]), 43)
        self.assertEqual(auth_ok["expires"], 1_700_000_000 + 30 * DAY)
        self.assertEqual((greet["name"], greet["known"]), ("alice", False))
        c.send({"type": "say", "text": "hi", "repeat": 2})
        self.assertEqual(c.types(), ["echo", "echo"])

    def test_password_login(self):
        """
        A known login is asked its password; the right one gets C{auth_ok}
        via password with a new token, and C{greet} as known.
        """
        _, first = self.register()
        c, replies = self.login()
        self.assertEqual(kinds(replies), [("auth_ok", None), ("greet", None)])
        auth_ok, greet = replies
        self.assertEqual(auth_ok["via"], "password")
        self.assertNotEqual(auth_ok["token"], first[0]["token"])
        self.assertTrue(greet["known"])

    def test_login_case_insensitive(self):
        """
        Logins compare case-insensitively; replies name the login as
        registered.
        """
        self.register("Alice")
        c = self.connect()
        self.assertEqual(kinds(self.answer(c, "login", "aLICE")), [("ask", "password")])
        auth_ok, greet = self.answer(c, "password", PASSWORD)
        self.assertEqual((auth_ok["login"], greet["name"]), ("Alice", "Alice"))

    def test_wrong_password(self):
        """
        A wrong password gets C{bad_password} and the question again; the
        third on one connection gets C{too_many_attempts}, C{bye}, close.
        """
        self.register()
        c = self.connect()
        self.answer(c, "login", "alice")
        for _ in range(2):
            replies = self.answer(c, "password", "wrong password")
            self.assertEqual(
                kinds(replies), [("error", "bad_password"), ("ask", "password")]
            )
        replies = self.answer(c, "password", "wrong password")
        self.assertEqual(
            kinds(replies), [("error", "too_many_attempts"), ("bye", None)]
        )
        self.assertTrue(c.closing)

    def test_right_after_wrong(self):
        """
        Two wrong passwords, then the right one, log in.
        """
        self.register()
        c = self.connect()
        self.answer(c, "login", "alice")
        self.answer(c, "password", "nope nope")
        self.answer(c, "password", "nope nope")
        self.assertEqual(self.answer(c, "password", PASSWORD)[0]["type"], "auth_ok")

    def test_password_out_of_bounds(self):
        """
        For a known login, passwords under 8 or over 1024 characters are
        simply wrong.
        """
        self.register()
        c = self.connect()
        self.answer(c, "login", "alice")
        self.assertEqual(
            kinds(self.answer(c, "password", "short"))[0], ("error", "bad_password")
        )
        self.assertEqual(
            kinds(self.answer(c, "password", "x" * 1025))[0], ("error", "bad_password")
        )

    def test_weak_passwords(self):
        """
        New passwords under 8 or over 1024 characters, equal to the login or
        common get C{weak_password} and the question again.
        """
        c = self.connect()
        self.answer(c, "login", "Bobby.Tables")
        for weak in ["1234567", "x" * 1025, "bobby.tables", "password1", "Iloveyou1"]:
            self.assertEqual(
                kinds(self.answer(c, "new_password", weak)),
                [("error", "weak_password"), ("ask", "new_password")],
                weak,
            )
        longest = "".join(hashlib.sha256(bytes([i])).hexdigest() for i in range(16))
        self.assertEqual(self.answer(c, "new_password", longest)[0]["type"], "auth_ok")

    def test_bad_logins(self):
        """
        Empty, too long or oddly spelled logins get C{bad_value} and the
        question again.
        """
        c = self.connect()
        for login in ["", "x" * 33, "a b", "ann@example", "Иван"]:
            self.assertEqual(
                kinds(self.answer(c, "login", login)),
                [("error", "bad_value"), ("ask", "login")],
            )

    def test_token_login(self):
        """
        A token from C{auth_ok} logs in without a password: C{auth_ok} via
        token without a new token, then C{greet} as known.
        """
        _, replies = self.register()
        token = replies[0]["token"]
        c = self.connect()
        c.send({"type": "token", "token": token})
        auth_ok, greet = c.replies()
        self.assertEqual(auth_ok, {"type": "auth_ok", "login": "alice", "via": "token"})
        self.assertTrue(greet["known"])

    def test_token_at_password_question(self):
        """
        A token works whatever question is pending, even a password question
        for another login.
        """
        _, replies = self.register()
        self.register("bob")
        c = self.connect()
        self.answer(c, "login", "bob")
        c.send({"type": "token", "token": replies[0]["token"]})
        self.assertEqual(c.replies()[0]["login"], "alice")

    def test_bad_tokens(self):
        """
        Unknown tokens get C{bad_token} and the pending question again.
        """
        c = self.connect()
        for token in ["", "nope", "x" * 10_000]:
            c.send({"type": "token", "token": token})
            self.assertEqual(
                kinds(c.replies()), [("error", "bad_token"), ("ask", "login")]
            )
        self.answer(c, "login", "carol")
        c.send({"type": "token", "token": "nope"})
        self.assertEqual(
            kinds(c.replies()), [("error", "bad_token"), ("ask", "new_password")]
        )

    def test_expired_token(self):
        """
        A token is refused once its C{expires} time has come.
        """
        _, replies = self.register()
        token, expires = replies[0]["token"], replies[0]["expires"]
        self.clock.advance(expires - self.clock.seconds() - 1)
        c = self.connect()
        c.send({"type": "token", "token": token})
        self.assertEqual(c.types(), ["auth_ok", "greet"])
        self.clock.advance(1)
        c = self.connect()
        c.send({"type": "token", "token": token})
        self.assertEqual(kinds(c.replies())[0], ("error", "bad_token"))

    def test_logout_revokes(self):
        """
        C{logout} revokes the token issued on the connection, then C{bye}
        and close; other tokens of the login stay valid.
        """
        _, first = self.register()
        c, second = self.login()
        c.send({"type": "logout"})
        self.assertEqual(c.types(), ["bye"])
        self.assertTrue(c.closing)
        for token, expected in [
            (second[0]["token"], "error"),
            (first[0]["token"], "auth_ok"),
        ]:
            t = self.connect()
            t.send({"type": "token", "token": token})
            self.assertEqual(t.replies()[0]["type"], expected)

    def test_logout_token_in_use(self):
        """
        C{logout} on a token login revokes that token.
        """
        _, replies = self.register()
        token = replies[0]["token"]
        c = self.connect()
        c.send({"type": "token", "token": token})
        c.replies()
        c.send({"type": "logout"})
        c = self.connect()
        c.send({"type": "token", "token": token})
        self.assertEqual(c.replies()[0]["code"], "bad_token")

    def test_out_of_turn(self):
        """
        Before authentication C{say} and C{logout} are C{bad_state} (the
        question again); after it C{token} and C{answer} are.
        """
        c = self.connect()
        for message in [{"type": "say", "text": "x"}, {"type": "logout"}]:
            c.send(message)
            self.assertEqual(
                kinds(c.replies()), [("error", "bad_state"), ("ask", "login")]
            )
        c.send({"type": "answer", "field": "password", "value": PASSWORD})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state"), ("ask", "login")])
        self.answer(c, "login", "alice")
        self.answer(c, "new_password", PASSWORD)
        c.send({"type": "token", "token": "x"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state")])
        c.send({"type": "answer", "field": "login", "value": "alice"})
        self.assertEqual(kinds(c.replies()), [("error", "bad_state")])

    def test_login_taken_meanwhile(self):
        """
        When another connection registers the same login first, the loser
        is told and asked that login's password.
        """
        a = self.connect()
        b = self.connect()
        self.answer(a, "login", "dave")
        self.answer(b, "login", "dave")
        self.assertEqual(self.answer(a, "new_password", PASSWORD)[0]["type"], "auth_ok")
        self.assertEqual(
            kinds(self.answer(b, "new_password", "another good one")),
            [("error", "bad_value"), ("ask", "password")],
        )
        self.assertEqual(self.answer(b, "password", PASSWORD)[0]["via"], "password")

    def test_hash_upgraded(self):
        """
        A password hashed under older parameters is re-hashed under the
        current ones at the next successful login (not at a failed one).
        """
        from echotwist.passwords import _context

        self.register()
        credentials = self.factory.accounts._credentials
        old = self.successResultOf(credentials.user("alice"))[1]
        self.factory.accounts._hasher.context = _context(memory_kib=2048, time_cost=1)
        self.login(password="wrong password")
        self.assertEqual(self.successResultOf(credentials.user("alice"))[1], old)
        self.login()
        new = self.successResultOf(credentials.user("alice"))[1]
        self.assertTrue(old.startswith("$argon2id$v=19$m=1024,t=1,p=1$"), old)
        self.assertTrue(new.startswith("$argon2id$v=19$m=2048,t=1,p=1$"), new)
        self.assertEqual(self.login()[1][0]["type"], "auth_ok")

    def test_secrets_not_logged(self):
        """
        No log event of a whole auth session holds the password or a token.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        _, replies = self.register(password="S3cret-Sauce-Value")
        c, second = self.login(password="S3cret-Sauce-Value")
        self.login(password="Wr0ng-Guess-Value")
        c.send({"type": "logout"})
        t = self.connect()
        t.send({"type": "token", "token": replies[0]["token"]})
        self.assertTrue(len(events) > 5)
        text = repr(events)
        for secret in [
            "S3cret-Sauce-Value",
            "Wr0ng-Guess-Value",
            replies[0]["token"],
            second[0]["token"],
        ]:
            self.assertNotIn(secret, text)


class ThrottleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(
            self,
            "auth",
            clock=self.clock,
            limits=Limits(per_login_address=4, tokens_per_address=2),
        )

    def connect(self, host="10.0.0.9"):
        c = Conversation(self.factory, host=host)
        c.replies()
        return c

    def fail_password(self, times, host="10.0.0.9"):
        for _ in range(times):
            c = self.connect(host)
            c.send({"type": "answer", "field": "login", "value": "erin"})
            c.send({"type": "answer", "field": "password", "value": "wrong guess"})
            c.replies()

    def test_rate_limited(self):
        """
        After the free failures, a password is not even checked:
        C{rate_limited}, the connection stays open, the question comes
        again; the block ends with time.
        """
        c = self.connect()
        c.send({"type": "answer", "field": "login", "value": "erin"})
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.fail_password(5)
        c = self.connect()
        c.send({"type": "answer", "field": "login", "value": "erin"})
        c.replies()
        c.send({"type": "answer", "field": "password", "value": PASSWORD})
        self.assertEqual(
            kinds(c.replies()), [("error", "rate_limited"), ("ask", "password")]
        )
        self.assertFalse(c.closing)
        other = self.connect(host="10.0.0.10")
        other.send({"type": "answer", "field": "login", "value": "erin"})
        other.send({"type": "answer", "field": "password", "value": PASSWORD})
        self.assertEqual(other.types()[-2:], ["auth_ok", "greet"])
        self.clock.advance(2)
        c.send({"type": "answer", "field": "password", "value": PASSWORD})
        self.assertEqual(c.types(), ["auth_ok", "greet"])

    def test_tokens_not_slowed_by_passwords(self):
        """
        Token logins from an address whose passwords are throttled still
        work; refused tokens are throttled on their own.
        """
        c = self.connect()
        c.send({"type": "answer", "field": "login", "value": "erin"})
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        token = c.replies()[-2]["token"]
        self.fail_password(6)
        c = self.connect()
        c.send({"type": "token", "token": token})
        self.assertEqual(c.types(), ["auth_ok", "greet"])
        c = self.connect()
        for _ in range(3):
            c.send({"type": "token", "token": "forged"})
        self.assertEqual(
            [r.get("code") for r in c.replies() if r["type"] == "error"],
            ["bad_token", "bad_token", "bad_token"],
        )
        c.send({"type": "token", "token": token})
        self.assertEqual(kinds(c.replies())[0], ("error", "rate_limited"))


class ConnectionBoundTests(SynchronousTestCase):
    """
    Whatever the throttle says, one connection's attempts are bounded.
    """

    def setUp(self):
        self.clock = Clock()
        self.factory = make_factory(
            self, "auth", clock=self.clock, limits=Limits(per_login_address=1)
        )
        c = Conversation(self.factory, host="10.0.0.5")
        c.replies()
        c.send({"type": "answer", "field": "login", "value": "gus"})
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})

    def test_throttled_attempts_count(self):
        """
        Throttled password attempts count towards the connection's three:
        the third attempt closes it with too_many_attempts (here the
        login's earlier failure from this address makes the second wrong
        password start a block).
        """
        throttle = self.factory.accounts._throttle
        throttle.start_password("gus", "10.0.0.5")
        throttle.finish_password("gus", "10.0.0.5", matched=False)
        c = Conversation(self.factory, host="10.0.0.5")
        c.replies()
        c.send({"type": "answer", "field": "login", "value": "gus"})
        c.replies()
        codes = []
        for _ in range(3):
            c.send({"type": "answer", "field": "password", "value": "not it, no"})
            codes += [r.get("code") for r in c.replies() if r["type"] == "error"]
        self.assertEqual(codes, ["bad_password", "rate_limited", "too_many_attempts"])
        self.assertTrue(c.closing)

    def test_refused_tokens_bounded(self):
        """
        The fiftieth refused token on one connection closes it, before the
        address's token throttle (100 refused tokens) would answer
        rate_limited.
        """
        c = Conversation(self.factory, host="10.0.0.6")
        c.replies()
        for _ in range(49):
            c.send({"type": "token", "token": "forged"})
        self.assertEqual(
            {r.get("code") for r in c.replies() if r["type"] == "error"}, {"bad_token"}
        )
        c.send({"type": "token", "token": "forged"})
        self.assertEqual(
            kinds(c.replies()), [("error", "too_many_attempts"), ("bye", None)]
        )
        self.assertTrue(c.closing)
