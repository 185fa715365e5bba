"""
Tests for echolab-check's checks: echolab passes every check in every
mode, over TCP and TLS; deliberately broken servers fail exactly the
checks their mistake breaks; a server that never answers, or answers
garbage, cannot hold the checker past its budget. (The command, its
reports and docs: L{tests.test_check_command}.)
"""

import time

from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from echotwist.check import cli, runner
from echotwist.check.context import resolve
from echotwist.messages import MODES
from tests import broken_servers
from tests.helpers import ServerTestCase
from tests.test_transport import write_certificate

SKIPPED_WITHOUT_TIMEOUT = {"timeout.silent-client"}


def run_checker(port, only=None, host="127.0.0.1", ca=None, **options):
    """
    Run the checker on a thread (the servers under test run on the
    reactor), as the command does.

    @return: a L{Deferred} firing with the L{runner.Run}, and the seconds
        it took as the caller sees them.
    """
    target = resolve(host, port, tls=ca is not None, ca=ca)
    checks = cli.select(runner.all_checks(), only)

    def timed():
        start = time.monotonic()
        found = runner.run(target, checks, **options)
        return found, time.monotonic() - start

    return threads.deferToThread(timed)


def ids(results, status):
    return {r.check.id for r in results if r.status == status}


def failures(results):
    """
    The failed checks, with what came back, for a readable test failure.
    """
    return {r.check.id: r.reason for r in results if r.status == "failed"}


class ConformingServerMixin:
    """
    echolab in C{mode} passes every check that applies to the mode.
    """

    ca = None

    def checker_port(self):
        return self.port

    @defer.inlineCallbacks
    def test_passes_every_check(self):
        """
        Every check of the mode passes (the time-out one is skipped: its
        time-out is the contract's 60 s or more), with a few dozen
        connections at most.
        """
        found, _ = yield run_checker(self.checker_port(), ca=self.ca, mode=self.mode)
        results = found.results
        self.assertEqual(failures(results), {})
        self.assertEqual(ids(results, "skipped"), SKIPPED_WITHOUT_TIMEOUT)
        expected = {c.id for c in runner.applicable(runner.all_checks(), self.mode)}
        self.assertEqual({r.check.id for r in results}, expected)
        self.assertEqual(found.mode, self.mode)
        self.assertLessEqual(found.connections, 45)


class EchoModeTests(ConformingServerMixin, ServerTestCase):
    mode = "echo"

    @defer.inlineCallbacks
    def test_mode_from_welcome(self):
        """
        Without --mode, the checker takes the mode the welcome names.
        """
        found, _ = yield run_checker(self.port)
        self.assertEqual(found.mode, "echo")
        self.assertEqual(failures(found.results), {})

    @defer.inlineCallbacks
    def test_wrong_mode(self):
        """
        A server in another mode than --mode says fails the welcome check,
        and nothing else is judged.
        """
        results = (yield run_checker(self.port, mode="auth"))[0].results
        self.assertEqual(set(failures(results)), {"welcome"})
        self.assertIn('mode: "auth"', results[0].expected)
        self.assertEqual(ids(results, "passed"), set())

    @defer.inlineCallbacks
    def test_checker_bug(self):
        """
        A check that raises fails with a reason saying the checker itself
        failed, and the run goes on.
        """
        buggy = runner.Check("bug", 8, (1,), "a bug", "-", "-", MODES, lambda c: 1 / 0)
        target = resolve("127.0.0.1", self.port)
        found = yield threads.deferToThread(runner.run, target, [buggy, buggy])
        self.assertEqual([r.status for r in found.results], ["failed", "failed"])
        self.assertIn(
            "the checker itself failed (ZeroDivisionError", found.results[0].reason
        )


class IdentModeTests(ConformingServerMixin, ServerTestCase):
    mode = "ident"


class AuthModeTests(ConformingServerMixin, ServerTestCase):
    mode = "auth"


class TLSMixin(ConformingServerMixin):
    def setUp(self):
        self.ca, key = write_certificate(self)
        self.args = (
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={self.ca}",
        )
        super().setUp()

    def checker_port(self):
        return list(self.service)[-1].listening.getHost().port

    @defer.inlineCallbacks
    def test_untrusted_certificate(self):
        """
        Without the server's CA, TLS fails, and the checker says so.
        """
        other, _ = write_certificate(self)
        found, _ = yield run_checker(self.checker_port(), ca=other, only="welcome")
        results = found.results
        self.assertIn("certificate verify failed", failures(results)["welcome"])


class EchoTLSTests(TLSMixin, ServerTestCase):
    mode = "echo"


class IdentTLSTests(TLSMixin, ServerTestCase):
    mode = "ident"


class AuthTLSTests(TLSMixin, ServerTestCase):
    mode = "auth"


class TimeoutTests(ServerTestCase):
    """
    With a short time-out given, the checker watches it happen.
    """

    mode = "auth"
    args = ("--login-timeout", "1", "--idle-timeout", "1")

    @defer.inlineCallbacks
    def test_silent_client(self):
        found, seconds = yield run_checker(
            self.port, only="timeout.*", server_timeout=1
        )
        self.assertEqual(ids(found.results, "passed"), {"timeout.silent-client"})
        self.assertLess(seconds, 5)


class EchoTimeoutTests(TimeoutTests):
    mode = "echo"


class BrokenServerTests(ServerTestCase):
    """
    Each broken server fails exactly the checks its mistake breaks.
    """

    @defer.inlineCallbacks
    def failed_against(self, mistake, mode):
        yield self.stop_server()
        self.mode = mode
        self.start_server()
        listening = broken_servers.listen_broken(mistake, self.port)
        self.addCleanup(listening.stopListening)
        found, _ = yield run_checker(listening.getHost().port, mode=mode)
        return found.results

    @defer.inlineCallbacks
    def test_faithful_proxy(self):
        """
        The proxy itself makes no mistake: every check passes through it.
        """
        results = yield self.failed_against(broken_servers.Mistake(), "ident")
        self.assertEqual(failures(results), {})

    @defer.inlineCallbacks
    def test_forgets_header(self):
        """
        Without headers even the welcome is unreadable: that check fails
        with the hint, and the others are skipped, not failed.
        """
        results = yield self.failed_against(broken_servers.ForgetsHeader(), "echo")
        self.assertEqual(set(failures(results)), {"welcome"})
        self.assertIn(
            "a header whose 4 bytes b'{\"ty' read as a length of 2,065,855,609",
            results[0].reason,
        )
        self.assertEqual(ids(results, "passed"), set())

    @defer.inlineCallbacks
    def test_ignores_repeat(self):
        results = yield self.failed_against(broken_servers.IgnoresRepeat(), "echo")
        self.assertEqual(
            set(failures(results)), {"echo.repeat", "echo.repeat-100", "echo.pipelined"}
        )

    @defer.inlineCallbacks
    def test_closes_on_bad_message(self):
        results = yield self.failed_against(broken_servers.ClosesOnBadMessage(), "echo")
        bad_message_checks = {
            c.id for c in runner.all_checks() if c.id.startswith("bad-message.")
        }
        self.assertEqual(len(bad_message_checks), 8)
        self.assertEqual(
            set(failures(results)),
            bad_message_checks | {"framing.zero-length", "order.bad-message-first"},
        )
        self.assertEqual(
            failures(results)["framing.zero-length"], "the connection closed"
        )

    @defer.inlineCallbacks
    def test_never_resends_question(self):
        results = yield self.failed_against(broken_servers.NeverResends(), "auth")
        self.assertEqual(
            set(failures(results)),
            {
                "auth.weak-password",
                "auth.new-password-too-long",
                "auth.wrong-password",
                "auth.third-wrong-password",
                "auth.password-out-of-bounds",
                "auth.bad-token",
                "auth.logout-revokes-issued",
                "auth.logout-revokes-used",
                "auth.say-before-login",
                "auth.logout-before-login",
                "auth.answer-wrong-field",
                "auth.bad-message-while-asked",
                "auth.login-empty",
                "auth.login-too-long",
                "auth.login-bad-characters",
            },
        )

    @defer.inlineCallbacks
    def test_never_resends_question_ident(self):
        results = yield self.failed_against(broken_servers.NeverResends(), "ident")
        self.assertEqual(
            set(failures(results)),
            {
                "ident.name-empty",
                "ident.name-too-long",
                "ident.name-not-printable",
                "ident.say-before-name",
                "ident.answer-wrong-field",
                "ident.token-bad-state",
                "ident.bad-message-while-asked",
            },
        )

    @defer.inlineCallbacks
    def test_token_survives_logout(self):
        results = yield self.failed_against(
            broken_servers.TokenSurvivesLogout(), "auth"
        )
        self.assertEqual(
            set(failures(results)),
            {"auth.logout-revokes-issued", "auth.logout-revokes-used"},
        )
        self.assertIn(
            "bad_token", results_by_id(results)["auth.logout-revokes-used"].expected
        )


def results_by_id(results):
    return {r.check.id: r for r in results}


class SilentServerTests(TestCase):
    """
    A server that hangs never holds the checker past its budget.
    """

    @defer.inlineCallbacks
    def test_never_answers(self):
        """
        No welcome within the budget: that check fails, the rest are
        skipped, and the run ends on time.
        """
        listening = broken_servers.listen_silent()
        self.addCleanup(listening.stopListening)
        found, seconds = yield run_checker(listening.getHost().port, budget=1.5)
        results = found.results
        self.assertEqual(set(failures(results)), {"welcome"})
        self.assertEqual(results[0].reason, "nothing before the check's time limit")
        self.assertLess(seconds, 2.5)

    @defer.inlineCallbacks
    def test_welcome_then_nothing(self):
        """
        A welcome, then silence: each check waits at most its own limit,
        and the run as a whole stops at the budget.
        """
        listening = broken_servers.listen_silent(welcome=True)
        self.addCleanup(listening.stopListening)
        found, seconds = yield run_checker(listening.getHost().port, budget=3)
        results = found.results
        self.assertIn("welcome", ids(results, "passed"))
        self.assertTrue(ids(results, "failed"))
        self.assertIn("the run's 3 s budget was spent", {r.reason for r in results})
        self.assertLess(seconds, 4)

    @defer.inlineCallbacks
    def test_garbage(self):
        """
        Replies announcing 2 GB frames fail each check at once, without
        allocating them, whatever max_message the welcome claimed.
        """
        listening = broken_servers.listen_garbage()
        self.addCleanup(listening.stopListening)
        found, seconds = yield run_checker(listening.getHost().port)
        self.assertEqual(ids(found.results, "passed"), {"welcome"})
        self.assertEqual(
            ids(found.results, "skipped"),
            SKIPPED_WITHOUT_TIMEOUT | {"framing.max-message", "framing.too-large"},
        )
        self.assertEqual(
            set(failures(found.results).values()),
            {
                "a header whose 4 bytes b'\\x7f\\xff\\xff\\xff' read as a length of "
                "2,147,483,647, over the 8,388,608 a client accepts: did the server "
                "forget the 4-byte header, or send text instead of a frame?"
            },
        )
        self.assertLess(seconds, 5)

    @defer.inlineCallbacks
    def test_nobody_listening(self):
        listening = broken_servers.listen_silent()
        port = listening.getHost().port
        yield listening.stopListening()
        found, _ = yield run_checker(port, budget=2)
        self.assertIn("connection refused", failures(found.results)["welcome"])
