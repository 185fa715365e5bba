"""
Tests for L{echotwist.changes}: a running server finds the changes an
administrator recorded and applies them, to its caches and its sessions.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist import changes
from echotwist.admin_store import AdminStore
from echotwist.changes import ChangeApplier, ChangeFeed
from tests.helpers import Conversation, cheap_context, make_database, make_factory
from tests.test_session import PASSWORD, kinds


class ChangeFeedTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.db = self.makeDatabase()
        self.seen = []
        self.feed = ChangeFeed(
            self.db, self.clock, lambda *change: self.seen.append(change), batch=3
        )

    def makeDatabase(self):
        return make_database(self)

    def record(self, kind, subject):
        self.successResultOf(
            self.db.write(*changes.record(kind, subject, int(self.clock.seconds())))
        )

    def test_from_newest(self):
        """
        A server that starts applies only the changes made after it started
        (its caches hold nothing older), in order, within one poll interval.
        """
        self.record(changes.TOKENS_REVOKED, "old")
        self.feed.startService()
        self.addCleanup(self.feed.stopService)
        self.record(changes.USER_DELETED, "alice")
        self.record(changes.TOKENS_REVOKED, "")
        self.assertEqual(self.seen, [])
        self.clock.advance(changes.POLL_INTERVAL)
        self.assertEqual(
            self.seen,
            [(changes.USER_DELETED, "alice"), (changes.TOKENS_REVOKED, "")],
        )
        self.clock.advance(changes.POLL_INTERVAL)
        self.assertEqual(len(self.seen), 2)

    def test_batches(self):
        """
        Changes are read a bounded batch at a time, and a full batch is
        followed at once by the next: all arrive at the same tick.
        """
        self.feed.startService()
        self.addCleanup(self.feed.stopService)
        for i in range(7):
            self.record(changes.USER_DELETED, f"user{i}")
        self.clock.advance(changes.POLL_INTERVAL)
        self.assertEqual([s for _, s in self.seen], [f"user{i}" for i in range(7)])

    def test_failed_poll_retried(self):
        """
        A poll that fails (the database locked too long) is logged, and the
        next tick reads what it missed.
        """
        self.feed.startService()
        self.addCleanup(self.feed.stopService)
        self.record(changes.USER_DELETED, "alice")
        real = self.db.read_all
        self.db.read_all = lambda *a: defer.fail(RuntimeError("locked"))
        self.clock.advance(changes.POLL_INTERVAL)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.db.read_all = real
        self.clock.advance(changes.POLL_INTERVAL)
        self.assertEqual(self.seen, [(changes.USER_DELETED, "alice")])

    def test_stop_waits_for_poll(self):
        """
        Stopping waits for a poll under way, so the database (closed next,
        at shutdown) is not closed under it.
        """
        answer = defer.Deferred()
        self.db.read = lambda *a: answer
        self.feed.startService()
        stopped = self.feed.stopService()
        self.assertNoResult(stopped)
        answer.callback((None,))
        self.successResultOf(stopped)


class ChangeApplierTests(SynchronousTestCase):
    """
    Changes applied to a server's sessions and caches, as a running server
    applies what C{echolab-admin} did in another process.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.db = make_database(self)
        self.factory = make_factory(self, "auth", clock=self.clock, database=self.db)
        self.credentials = self.factory.accounts._credentials
        self.apply = ChangeApplier(self.credentials, self.factory)
        self.admin = AdminStore(self.db, self.clock)

    def answer(self, c, field, value):
        c.send({"type": "answer", "field": field, "value": value})
        return c.replies()

    def log_in(self, login, host="10.0.0.7"):
        """
        A session logged in as C{login} (registered if new), and its token.
        """
        c = Conversation(self.factory, host=host)
        c.replies()
        field = self.answer(c, "login", login)[0]["field"]
        auth_ok = self.answer(c, field, PASSWORD)[0]
        self.assertEqual(auth_ok["type"], "auth_ok")
        return c, auth_ok["token"]

    def token_accepted(self, token):
        c = Conversation(self.factory, host="10.0.0.9")
        c.replies()
        c.send({"type": "token", "token": token})
        return c.replies()[0]["type"] == "auth_ok"

    def test_revoked_tokens(self):
        """
        A login's tokens revoked elsewhere are refused from then on, and its
        sessions end with C{bye}; other logins' sessions go on.
        """
        alice, token = self.log_in("alice")
        bob, bob_token = self.log_in("bob")
        waiting = Conversation(self.factory)  # not logged in
        waiting.replies()
        self.assertTrue(self.token_accepted(token))  # cached now
        self.successResultOf(self.admin.revoke_tokens("alice"))
        self.apply(changes.TOKENS_REVOKED, "alice")
        [bye] = alice.replies()
        self.assertEqual(bye["type"], "bye")
        self.assertTrue(alice.closing)
        self.assertFalse(self.token_accepted(token))
        self.assertTrue(self.token_accepted(bob_token))
        self.assertEqual((bob.replies(), bob.closing), ([], False))
        self.assertFalse(waiting.closing)

    def test_all_revoked(self):
        """
        Everyone's tokens revoked: every logged-in session ends, and no
        cached token is accepted; a connection still logging in goes on.
        """
        sessions = [self.log_in(login) for login in ("alice", "bob")]
        waiting = Conversation(self.factory)
        waiting.replies()
        self.successResultOf(self.admin.revoke_all_tokens())
        self.apply(changes.TOKENS_REVOKED, changes.EVERYONE)
        for c, token in sessions:
            self.assertEqual(kinds(c.replies()), [("bye", None)])
            self.assertFalse(self.token_accepted(token))
        self.assertFalse(waiting.closing)

    def test_deleted_user(self):
        """
        A deleted user's sessions end with C{bye}, its token is refused and
        its login is unknown again (a new registration is asked for).
        """
        alice, token = self.log_in("Alice")
        self.successResultOf(self.admin.delete_user("alice"))
        self.apply(changes.USER_DELETED, "alice")
        self.assertEqual(kinds(alice.replies()), [("bye", None)])
        self.assertFalse(self.token_accepted(token))
        c = Conversation(self.factory)
        c.replies()
        self.assertEqual(
            kinds(self.answer(c, "login", "alice")), [("ask", "new_password")]
        )

    def test_reset_password(self):
        """
        After a reset, the old password is wrong and the new one works (the
        cached hash is not used), and the old tokens are refused.
        """
        alice, token = self.log_in("alice")
        self.successResultOf(
            self.admin.set_password("alice", cheap_context().hash("a new passphrase"))
        )
        self.apply(changes.PASSWORD_RESET, "alice")
        self.assertEqual(kinds(alice.replies()), [("bye", None)])
        self.assertFalse(self.token_accepted(token))
        c = Conversation(self.factory, host="10.0.0.8")
        c.replies()
        self.answer(c, "login", "alice")
        self.assertEqual(
            kinds(self.answer(c, "password", PASSWORD)),
            [("error", "bad_password"), ("ask", "password")],
        )
        self.assertEqual(
            self.answer(c, "password", "a new passphrase")[0]["type"], "auth_ok"
        )

    def test_identity_change(self):
        """
        Ident mode caches no names: a renamed identity is greeted by its new
        name at its next connection; the change touches no session.
        """
        factory = make_factory(self, "ident", clock=self.clock, database=self.db)
        c = Conversation(factory, host="10.0.0.5")
        c.replies()
        c.send({"type": "answer", "field": "name", "value": "Ann"})
        c.replies()
        self.successResultOf(self.admin.rename_identity("10.0.0.5", "Anna"))
        ChangeApplier(None, factory)(changes.IDENTITY_RENAMED, "10.0.0.5")
        self.assertEqual((c.replies(), c.closing), ([], False))
        again = Conversation(factory, host="10.0.0.5")
        greet = again.replies()[1]
        self.assertEqual((greet["type"], greet["name"]), ("greet", "Anna"))

    def test_password_check_racing_a_reset(self):
        """
        A password login whose check began before a reset, and matched the
        old password, is refused when the check ends after the reset: the
        old password never gets a token once the new one is set.
        """
        hasher = HeldHasher()
        factory = make_factory(
            self, "auth", clock=self.clock, database=self.db, hasher=hasher
        )
        credentials = factory.accounts._credentials
        self.successResultOf(credentials.add_user("alice", "old", b"1" * 32, 2**40))
        c = Conversation(factory)
        c.replies()
        self.answer(c, "login", "alice")
        self.answer(c, "password", PASSWORD)  # being checked
        self.successResultOf(self.admin.set_password("alice", "new"))
        hasher.verdict.callback((True, None))  # the old password matched
        self.assertEqual(
            kinds(c.replies()), [("error", "bad_password"), ("ask", "password")]
        )
        self.assertEqual(
            self.successResultOf(self.admin.user("alice")).active_tokens, 0
        )


class HeldHasher:
    """
    A hasher whose verdict the test gives, when it wants.
    """

    def verify(self, password, stored, client):
        self.verdict = defer.Deferred()
        return self.verdict
