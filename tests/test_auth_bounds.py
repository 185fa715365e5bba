"""
Auth mode's work is bounded and belongs to its connection: hashes wait in
a bounded queue and are dropped when their client leaves; concurrency buys
no extra password guesses; registrations and look-ups have budgets per
address; a refused token holds back only the connection that sent it.
Each test here is an attack that succeeded before the fix.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist.hashing import Hasher
from echotwist.throttle import Limits
from tests.helpers import Conversation, cheap_context, make_factory

PASSWORD = "correct horse battery"


class ManualHasher(Hasher):
    """
    A L{Hasher} whose hashes run only when the test says so, one thread's
    worth at a time, as the hashing threads would.
    """

    def __init__(self, **bounds):
        super().__init__(cheap_context(), None, threads=1, **bounds)
        self.started = []  # (function, args, Deferred)

    def _run(self, function, *args):
        d = defer.Deferred()
        self.started.append((function, args, d))
        return d

    def finish(self):
        """
        Finish the oldest running hash.
        """
        function, args, d = self.started.pop(0)
        d.callback(function(*args))


def kinds(replies):
    return [(r["type"], r.get("code") or r.get("field")) for r in replies]


class AuthBoundsCase(SynchronousTestCase):
    limits = Limits()
    bounds = {}

    def setUp(self):
        self.clock = Clock()
        self.hasher = ManualHasher(**self.bounds)
        self.factory = make_factory(
            self, "auth", clock=self.clock, limits=self.limits, hasher=self.hasher
        )

    def connect(self, host="10.0.0.9"):
        c = Conversation(self.factory, host=host)
        c.replies()
        return c

    def asked(self, login, host="10.0.0.9"):
        """
        A connection whose login was answered: the password question waits.
        """
        c = self.connect(host)
        c.send({"type": "answer", "field": "login", "value": login})
        c.replies()
        return c

    def register(self, login, host="10.0.0.9"):
        """
        @return: the C{auth_ok} of a new registration.
        """
        c = self.asked(login, host)
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.hasher.finish()
        auth_ok = c.replies()[0]
        self.assertEqual(auth_ok["type"], "auth_ok")
        return auth_ok


class HashQueueTests(AuthBoundsCase):
    bounds = {"max_pending": 4, "max_pending_per_client": 2}

    def test_dropped_when_client_leaves(self):
        """
        The attack: connect, answer a new login and a strong password,
        hang up at once, again and again. A hash whose client left before
        it started is never computed, and nothing is registered for it.
        """
        first = self.asked("first", host="10.0.0.1")
        first.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        leaver = self.asked("leaver", host="10.0.0.2")
        leaver.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.assertEqual(len(self.hasher.queue), 2)
        leaver.lose()
        self.assertEqual(len(self.hasher.queue), 1)
        self.hasher.finish()
        self.assertEqual(self.hasher.started, [])
        self.assertIsNone(
            self.successResultOf(self.factory.accounts.registered_login("leaver", "x"))
        )
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_running_hash_result_dropped(self):
        """
        A client that leaves while its hash runs gets no account: the
        registration stops with its connection.
        """
        leaver = self.asked("leaver")
        leaver.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        leaver.lose()
        self.hasher.finish()
        self.assertIsNone(
            self.successResultOf(self.factory.accounts.registered_login("leaver", "x"))
        )
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_no_token_for_a_client_gone(self):
        """
        A client that hangs up while its password is checked gets no token
        issued for nobody.
        """
        self.register("gus")
        stored = []
        credentials = self.factory.accounts._credentials
        self.patch(credentials, "add_token", lambda *args: stored.append(args))
        c = self.asked("gus")
        c.send({"type": "answer", "field": "password", "value": PASSWORD})
        c.lose()
        self.hasher.finish()
        self.assertEqual(stored, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_bounded_per_address(self):
        """
        One address has at most C{max_pending_per_client} hashes waiting or
        running; the next gets C{rate_limited} and the question again at
        once, while another address is served.
        """
        for i in range(2):
            self.asked(f"user{i}").send(
                {"type": "answer", "field": "new_password", "value": PASSWORD}
            )
        c = self.asked("user2")
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.assertEqual(
            kinds(c.replies()), [("error", "rate_limited"), ("ask", "new_password")]
        )
        other = self.asked("other", host="10.0.0.10")
        other.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.assertEqual(other.replies(), [])  # waiting its turn
        self.assertEqual(len(self.hasher.queue), 3)

    def test_bounded_in_all(self):
        """
        Past C{max_pending} hashes in all, the next client gets
        C{rate_limited} instead of a wait.
        """
        for i in range(4):
            self.asked(f"user{i}", host=f"10.0.1.{i}").send(
                {"type": "answer", "field": "new_password", "value": PASSWORD}
            )
        c = self.asked("late", host="10.0.2.1")
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.assertEqual(kinds(c.replies())[0], ("error", "rate_limited"))


class GuessTests(AuthBoundsCase):
    def test_simultaneous_guesses_checked_one_at_a_time(self):
        """
        The attack: 150 connections wait at the password question of one
        login, then all send a wrong guess at once. One is checked; the
        others get C{rate_limited} without a check.
        """
        self.register("victim", host="10.0.0.1")
        connections = [
            self.asked("victim", host=f"10.0.{i // 200 + 5}.{i % 200}")
            for i in range(150)
        ]
        for c in connections:
            c.send({"type": "answer", "field": "password", "value": "a wrong guess"})
        self.assertEqual(len(self.hasher.started), 1)
        codes = [kinds(c.replies()) for c in connections[1:]]
        self.assertEqual(
            codes, [[("error", "rate_limited"), ("ask", "password")]] * 149
        )
        self.hasher.finish()
        self.assertEqual(kinds(connections[0].replies())[0], ("error", "bad_password"))

    def test_owner_gets_in_after_guesses(self):
        """
        Once the guesses are answered, the owner's right password is
        checked and accepted.
        """
        self.register("victim", host="10.0.0.1")
        guesser = self.asked("victim", host="10.0.0.66")
        guesser.send({"type": "answer", "field": "password", "value": "a wrong guess"})
        self.hasher.finish()
        owner = self.asked("victim", host="10.0.0.1")
        owner.send({"type": "answer", "field": "password", "value": PASSWORD})
        self.hasher.finish()
        self.assertEqual(kinds(owner.replies())[0], ("auth_ok", None))


class BudgetTests(AuthBoundsCase):
    limits = Limits(registrations=2, lookups=3)

    def test_registrations(self):
        """
        One address spraying registrations gets C{rate_limited} once its
        budget is spent, before anything is hashed; another address
        registers.
        """
        for i in range(2):
            self.register(f"user{i}")
        c = self.asked("user2")
        c.send({"type": "answer", "field": "new_password", "value": PASSWORD})
        self.assertEqual(
            kinds(c.replies()), [("error", "rate_limited"), ("ask", "new_password")]
        )
        self.assertEqual(self.hasher.started, [])
        self.register("user3", host="10.0.0.10")

    def test_lookups(self):
        """
        One address asking about many logins gets C{rate_limited} and the
        login question again once its budget is spent.
        """
        for i in range(3):
            self.asked(f"who{i}")
        c = self.connect()
        c.send({"type": "answer", "field": "login", "value": "who3"})
        self.assertEqual(
            kinds(c.replies()), [("error", "rate_limited"), ("ask", "login")]
        )
        other = self.connect(host="10.0.0.10")
        other.send({"type": "answer", "field": "login", "value": "who4"})
        self.assertEqual(kinds(other.replies()), [("ask", "new_password")])


class TokenNeighbourTests(AuthBoundsCase):
    limits = Limits(tokens_per_address=1)

    def test_bad_token_blocks_only_its_connection(self):
        """
        The attack: a client behind a NAT sends forged tokens until the
        address is throttled. Its connection gets C{rate_limited}; a
        neighbour's valid token from the same address still logs in.
        """
        issued = self.register("owner", host="10.0.0.1")["token"]
        guesser = self.connect(host="10.0.0.1")
        codes = []
        for _ in range(4):
            guesser.send({"type": "token", "token": "forged"})
            codes += [r["code"] for r in guesser.replies() if r["type"] == "error"]
        self.assertEqual(codes[:2], ["bad_token", "bad_token"])
        self.assertEqual(codes[2:], ["rate_limited", "rate_limited"])
        neighbour = self.connect(host="10.0.0.1")
        neighbour.send({"type": "token", "token": issued})
        self.assertEqual(kinds(neighbour.replies())[0], ("auth_ok", None))


class AbandonedGuessTests(AuthBoundsCase):
    limits = Limits(per_login_address=2)

    def test_abandoned_guesses_count(self):
        """
        The attack: send a guess and hang up before the verdict, again and
        again, keeping the hashing threads busy. Each abandoned guess
        counts as a failure, so the throttle soon refuses the next one
        unchecked.
        """
        self.register("victim", host="10.0.0.1")
        for _ in range(3):
            c = self.asked("victim", host="10.0.0.66")
            c.send({"type": "answer", "field": "password", "value": "a wrong guess"})
            c.lose()
            self.hasher.finish()  # (it had started: it runs to its end)
        c = self.asked("victim", host="10.0.0.66")
        c.send({"type": "answer", "field": "password", "value": "a wrong guess"})
        self.assertEqual(kinds(c.replies())[0], ("error", "rate_limited"))
        self.assertEqual(self.hasher.started, [])
