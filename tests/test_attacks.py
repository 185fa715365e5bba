"""
Attacks on auth mode, against real C{twistd -n echolab} processes over
loopback, each with the bound that the fix of the hashing queue and the
throttle (workqueue.py, hashing.py, throttle.py, auth.py, protocol.py)
must keep. docs/reliability.md ("Attacks") gives what each shows and the
figures measured before and after that fix.

Where the cost of a password hash matters the server runs with the
default argon2id cost (32 MiB, 2 passes: 30 to 45 ms of a core per hash),
not the cheap one of L{ProcessTestCase.server}: an abandoned hash is only
an attack when it is expensive.

Set C{ECHOLAB_ATTACK_FIGURES} to a file name to have each test append its
figures there, one JSON object a line.
"""

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter

from echotwist.throttle import Limits
from tests import workloads
from tests.test_reliability import ProcessTestCase, run, wait_for_log
from tests.test_transport import write_certificate
from tests.test_twistd import Server

# The abandoned-work attack: 8 clients at once for 10 s, each conversation
# from the next of 2,000 loopback addresses, so that it is the queue, not
# the per-address registration budget, that has to stop it.
ATTACK_S = 10
ATTACKERS = 8
ATTACK_ADDRESSES = 2000
IDLE_WITHIN = 10  # seconds after the attackers left
IDLE_WINDOW = 1.0  # ... the server used less than IDLE_BUSY of a core over
IDLE_BUSY = 0.1  # one such window
SERVED_WITHIN = 5  # a real registration right after the attack
RSS_GROWTH_KIB = 64 * 1024
EXIT_WITHIN = 10  # seconds from SIGTERM to the end of the process
# Simultaneous guesses at one login.
GUESSES = 150
MAX_CHECKS = 30
MAX_BLOCK = 3  # --throttle-max-block, seconds
# A class behind one NAT address.
CLASS = 30
CLASS_WITHIN = 15
# A silent client on a TLS listener.
LOGIN_TIMEOUT = 2


class AttackTestCase(ProcessTestCase):
    def server_at_cost(self, *args):
        """
        An auth server with the default argon2id cost (no C{--hash-memory}
        or C{--hash-time}), and otherwise default settings but C{args}.
        """
        data = os.path.abspath(self.mktemp())
        server = Server(
            self, "--port", "0", "--mode", "auth", "--data-dir", data, *args
        )
        self.assertIsNotNone(server.port, server.first_line)
        server.data = data
        server.log = os.path.join(data, "echolab.log")
        return server

    def assertDefaultCost(self, server):
        """
        The hashes stored are argon2id at the default cost.
        """
        db = sqlite3.connect(f"file:{server.data}/echolab.db?mode=ro", uri=True)
        try:
            hashes = [row[0] for row in db.execute("SELECT hash FROM users")]
        finally:
            db.close()
        self.assertTrue(hashes)
        for stored in hashes:
            self.assertTrue(
                stored.startswith("$argon2id$v=19$m=32768,t=2,p=1$"), stored
            )

    def record(self, figures):
        """
        Append C{figures} to the file C{ECHOLAB_ATTACK_FIGURES} names, if any.
        """
        path = os.environ.get("ECHOLAB_ATTACK_FIGURES")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"test": self.id(), **figures}) + "\n")

    def register(self, server, login, password, source=None):
        reply, _ = run(
            workloads.authenticate(server.port, login, password, "new_password", source)
        )
        self.assertEqual((reply["type"], reply.get("via")), ("auth_ok", "register"))


class AbandonedWorkTests(AttackTestCase):
    """
    Clients that ask for a password hash and hang up at once: the hashes
    of clients gone are dropped before they start, so the server's CPU
    falls idle as soon as they leave, the next client is served at once,
    and memory does not grow with the work asked for.
    """

    def abandon(self, server, conversation):
        """
        Run the attack, then a real registration, then wait for the CPU to
        fall idle.

        @return: a dict of figures.
        """
        pid = server.process.pid

        async def scenario():
            cpu_before = workloads.cpu_seconds(pid)
            held, peak = await workloads.rss_peak(
                pid,
                workloads.abandon(
                    server.port, ATTACK_S, ATTACKERS, conversation, ATTACK_ADDRESSES
                ),
            )
            left = time.monotonic()
            cpu_left = workloads.cpu_seconds(pid)
            try:
                reply, served = await workloads.authenticate(
                    server.port,
                    "latecomer",
                    "came after it all 42",
                    "new_password",
                    timeout=SERVED_WITHIN,
                )
            except asyncio.TimeoutError:
                reply = served = None
            (idle, _), peak_after = await workloads.rss_peak(
                pid,
                workloads.until_idle(
                    pid,
                    IDLE_WITHIN - (time.monotonic() - left),
                    IDLE_WINDOW,
                    IDLE_BUSY,
                ),
            )
            return {
                "conversations abandoned": held,
                "server CPU s during the attack": round(cpu_left - cpu_before, 2),
                "registration after s": served and round(served, 3),
                "registration reply": reply and reply["type"],
                "idle after s": idle and round(time.monotonic() - left, 2),
                "server CPU s after the attack": round(
                    workloads.cpu_seconds(pid) - cpu_left, 2
                ),
                "rss peak KiB": max(peak, peak_after),
            }

        return run(scenario(), timeout=ATTACK_S + 120)

    def assertBounded(self, figures, warm_rss):
        self.assertGreater(figures["conversations abandoned"], 100, figures)
        self.assertEqual(figures["registration reply"], "auth_ok", figures)
        self.assertLessEqual(figures["registration after s"], SERVED_WITHIN, figures)
        self.assertIsNotNone(figures["idle after s"], figures)
        self.assertLessEqual(figures["idle after s"], IDLE_WITHIN, figures)
        self.assertLess(figures["rss peak KiB"] - warm_rss, RSS_GROWTH_KIB, figures)

    def test_abandoned_registrations(self):
        """
        8 clients at once register for 10 s, each hanging up as soon as its
        new password is sent (each conversation from the next of 2,000
        loopback addresses): within 10 s of their leaving the server uses
        less than 10% of a core over 1 s, a registration right after they
        left gets auth_ok within 5 s, and VmRSS grows by less than 64 MiB
        from what it was after one registration.
        """
        server = self.server_at_cost()
        pid = server.process.pid
        fresh = workloads.rss_kib(pid)
        self.register(server, "warmup", "first one in 1")
        self.assertDefaultCost(server)
        warm = workloads.rss_kib(pid)
        figures = self.abandon(server, workloads.abandoned_registration)
        figures.update(
            {
                "rss fresh KiB": fresh,
                "rss after one registration KiB": warm,
                "rss growth from fresh KiB": figures["rss peak KiB"] - fresh,
                "rss growth from one registration KiB": figures["rss peak KiB"] - warm,
            }
        )
        self.record(figures)
        self.assertBounded(figures, warm)
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)

    def test_abandoned_wrong_passwords(self):
        """
        The same with wrong passwords for 8 registered logins, each client
        hanging up as soon as its guess is sent.
        """
        server = self.server_at_cost()
        pid = server.process.pid
        victims = [f"victim{i}" for i in range(ATTACKERS)]
        for login in victims:
            self.register(server, login, f"{login} owns this one")
        warm = workloads.rss_kib(pid)
        figures = self.abandon(server, workloads.abandoned_guess(victims))
        figures.update(
            {
                "rss after 8 registrations KiB": warm,
                "rss growth KiB": figures["rss peak KiB"] - warm,
            }
        )
        self.record(figures)
        self.assertBounded(figures, warm)
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)

    def test_sigterm_during_queued_burst(self):
        """
        600 clients (each from a loopback address of its own) send a new
        password at the same moment; once the first auth_ok is in, SIGTERM:
        the process ends with status 0 within 10 s, every client gets bye
        last, and the intact database holds every login acknowledged.
        """
        server = self.server_at_cost()
        count = 600

        received, stopped = run(
            workloads.registrations_then(
                server.port, count, lambda: server.process.send_signal(signal.SIGTERM)
            )
        )
        try:
            code = server.process.wait(EXIT_WITHIN + 50)
        except subprocess.TimeoutExpired:
            code = None
        exited = time.monotonic() - stopped
        first = Counter(workloads.reply_kind(ms[0]) for ms in received if ms)
        figures = {
            "clients": count,
            "first replies": dict(first),
            "exit status": code,
            "exit after SIGTERM s": round(exited, 2),
        }
        self.record(figures)
        self.assertEqual(code, 0, figures)
        self.assertLessEqual(exited, EXIT_WITHIN, figures)
        for messages in received:
            self.assertEqual(messages[-1]["type"], "bye", messages)
        db = os.path.join(server.data, "echolab.db")
        self.assertEqual(workloads.integrity(db), "ok")
        with sqlite3.connect(db) as connection:
            stored = {row[0] for row in connection.execute("SELECT login FROM users")}
        acknowledged = {
            m["login"] for ms in received for m in ms if m["type"] == "auth_ok"
        }
        self.assertLessEqual(acknowledged, stored)
        self.assertCleanLog(server)


class GuessingTests(AttackTestCase):
    """
    150 wrong guesses at one login sent at the same moment, each on a
    connection of its own: every attempt is counted before it is checked
    and a login has one check under way at a time, so at most 30 are
    checked (bad_password); the rest get rate_limited, and the owner still
    logs in.
    """

    def guess(self, sources):
        server = self.server_at_cost("--throttle-max-block", str(MAX_BLOCK))
        self.register(server, "victim", "the owner knows this")
        attempts = [("victim", f"wrong guess {i}!") for i in range(GUESSES)]
        replies, took = run(
            workloads.answers_at_once(server.port, attempts, "password", sources)
        )
        kinds = Counter(workloads.reply_kind(r) for r in replies)
        owner_in = self.owner_logs_in(server, MAX_BLOCK + 15)
        code = server.stop()[0]  # (which writes the log budget's summaries)
        figures = {
            "guesses": GUESSES,
            "addresses": len(set(sources)),
            "replies": dict(kinds),
            "'wrong password' lines logged, summarised": self.wrong_passwords(server),
            "last reply after s": round(took, 3),
            "owner in after s": owner_in and round(owner_in, 2),
        }
        self.record(figures)
        self.assertLessEqual(kinds["bad_password"], MAX_CHECKS, figures)
        self.assertEqual(
            kinds["bad_password"] + kinds["rate_limited"], GUESSES, figures
        )
        self.assertIsNotNone(owner_in, figures)
        self.assertEqual(code, 0)
        self.assertCleanLog(server)
        return figures

    def wrong_passwords(self, server):
        """
        @return: how many "wrong password" lines the log has, and how many
            more its per-client budget summarised.
        """
        with open(server.log, encoding="utf-8") as f:
            log = f.read()
        summarised = re.findall(
            r"([\d,]+) x 'wrong password for \{login\} from \{address\}'", log
        )
        return (
            log.count("wrong password for victim from "),
            sum(int(n.replace(",", "")) for n in summarised),
        )

    def owner_logs_in(self, server, within):
        """
        The owner tries its password from 127.0.0.1, on a new connection
        every 0.2 s while it is rate_limited.

        @return: seconds until auth_ok, or L{None} when not within
            C{within} seconds.
        """

        async def scenario():
            started = time.monotonic()
            while time.monotonic() - started < within:
                reply, _ = await workloads.authenticate(
                    server.port, "victim", "the owner knows this", "password"
                )
                if reply["type"] == "auth_ok":
                    return time.monotonic() - started
                self.assertEqual(workloads.reply_kind(reply), "rate_limited", reply)
                await asyncio.sleep(0.2)  # (a person trying again)
            return None

        return run(scenario())

    def test_from_150_addresses(self):
        """
        From 150 loopback addresses, one guess each: at most 30 checked,
        each logged, the rest rate_limited; the owner logs in.
        """
        figures = self.guess([workloads.source_address(i) for i in range(GUESSES)])
        # One address each: the per-client log budget summarises nothing,
        # and each password checked is logged.
        self.assertEqual(
            figures["'wrong password' lines logged, summarised"],
            (figures["replies"]["bad_password"], 0),
            figures,
        )

    def test_from_one_address(self):
        """
        The same 150 connections from one address. (Its log lines go over
        the per-client budget: most are summarised.)
        """
        self.guess(["127.1.0.200"] * GUESSES)


class ClassroomTests(AttackTestCase):
    """
    The budgets and the hash queue's bound per address leave room for a
    class behind one NAT address, while one address spraying registrations
    is refused past its budget.
    """

    NAT = "127.1.0.9"

    def test_class_behind_one_address(self):
        """
        30 students behind one address register at the same moment, each
        an account of their own: all get auth_ok within 15 s. Then all 30
        log in with their passwords at the same moment: all get in.
        """
        server = self.server_at_cost()
        students = [(f"student{i}", f"my own {i} secret") for i in range(CLASS)]
        sources = [self.NAT] * CLASS
        registered, register_s = run(
            workloads.answers_at_once(server.port, students, "new_password", sources)
        )
        self.assertDefaultCost(server)
        logged_in, login_s = run(
            workloads.answers_at_once(server.port, students, "password", sources)
        )
        figures = {
            "students": CLASS,
            "registrations": dict(Counter(r.get("via") for r in registered)),
            "all registered after s": round(register_s, 2),
            "logins": dict(Counter(r.get("via") for r in logged_in)),
            "all logged in after s": round(login_s, 2),
        }
        self.record(figures)
        for reply, (login, _) in zip(registered, students, strict=True):
            self.assertEqual(
                (reply["type"], reply.get("login"), reply.get("via")),
                ("auth_ok", login, "register"),
            )
        for reply, (login, _) in zip(logged_in, students, strict=True):
            self.assertEqual(
                (reply["type"], reply.get("login"), reply.get("via")),
                ("auth_ok", login, "password"),
            )
        self.assertLessEqual(register_s, CLASS_WITHIN, figures)
        self.assertLessEqual(login_s, CLASS_WITHIN, figures)
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)

    def test_registration_spray(self):
        """
        One address registering one login after another gets rate_limited
        once it has used its budget (Limits().registrations per 10
        minutes, refilled at one every 10 s); another address still
        registers.
        """
        server = self.server_at_cost()
        budget = Limits().registrations
        cap = budget + 20

        async def spray():
            started = time.monotonic()
            for n in range(cap):
                reply, _ = await workloads.authenticate(
                    server.port,
                    f"spray{n}",
                    f"sprayed {n} times",
                    "new_password",
                    source="127.1.0.10",
                )
                if reply["type"] != "auth_ok":
                    return n, reply, time.monotonic() - started
            return cap, None, time.monotonic() - started

        registered, refusal, took = run(spray())
        figures = {
            "budget": budget,
            "registered before the first refusal": registered,
            "refusal": refusal and workloads.reply_kind(refusal),
            "spray s": round(took, 2),
        }
        self.record(figures)
        self.assertIsNotNone(refusal, figures)
        self.assertEqual(workloads.reply_kind(refusal), "rate_limited", figures)
        self.assertIn("registrations", refusal["text"])
        refilled = took * budget / Limits().registrations_window
        self.assertGreaterEqual(registered, budget, figures)
        self.assertLessEqual(registered, budget + refilled + 1, figures)
        self.register(server, "neighbour", "next door, not me", source="127.1.0.11")
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)


class LookupFloodTests(AttackTestCase):
    def test_lookup_flood(self):
        """
        One address asking about 400 logins (a connection each) gets
        rate_limited past its budget (Limits().lookups a minute), while
        another address asking meanwhile is answered every time.
        """
        server = self.server("auth")  # (no hashing: the cheap cost will do)
        budget = Limits().lookups

        async def scenario():
            limited = asyncio.Event()
            started = time.monotonic()
            flood = asyncio.ensure_future(
                workloads.lookups(server.port, budget + 100, "127.1.0.20", limited)
            )
            # The bystander asks once the flood is refused (or is over).
            await asyncio.wait(
                [flood, asyncio.ensure_future(limited.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            bystander = await workloads.lookups(server.port, 20, "127.1.0.21")
            flooded = await flood
            return flooded, bystander, time.monotonic() - started

        flooded, bystander, took = run(scenario())
        figures = {
            "budget": budget,
            "flood": dict(flooded),
            "bystander": dict(bystander),
            "flood s": round(took, 2),
        }
        self.record(figures)
        refilled = took * budget / Limits().lookups_window
        self.assertGreaterEqual(flooded["ask"], budget, figures)
        self.assertLessEqual(flooded["ask"], budget + refilled + 1, figures)
        self.assertEqual(flooded["ask"] + flooded["rate_limited"], budget + 100)
        self.assertEqual(bystander, Counter(ask=20), figures)
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)


class TLSLoginTimeoutTests(AttackTestCase):
    def test_silent_before_handshake(self):
        """
        A client that connects to a TLS listener and sends nothing, not
        even a ClientHello, is closed after --login-timeout (2 s), plus
        the one-second sweep and the 1 s linger: the login timeout runs
        from accept, the handshake included.
        """
        cert, key = write_certificate(self)
        server = self.server(
            "auth",
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            "--login-timeout",
            str(LOGIN_TIMEOUT),
            "--linger",
            "1",
        )
        line = server._read_line(30)
        match = re.search(r"listening on \S+:(\d+) \(ssl\)", line)
        self.assertIsNotNone(match, line)
        closed = run(workloads.silent_until_closed(int(match.group(1)), 30))
        self.record({"closed after s": closed and round(closed, 2)})
        self.assertIsNotNone(closed)
        self.assertGreaterEqual(closed, LOGIN_TIMEOUT - 0.05)
        # The timeout, the sweep, the linger, and 4 s for loaded machines.
        self.assertLessEqual(closed, LOGIN_TIMEOUT + 1 + 1 + 4)
        wait_for_log(server.log, "took too long to identify or log in")
        self.assertEqual(server.stop()[0], 0)
        self.assertCleanLog(server)


class LogFloodTests(AttackTestCase):
    def test_log_bounded_per_client(self):
        """
        The attack: one client connects and probes logins as fast as it can
        to rotate the audit log away. What is written about it stays within
        its allowance a minute (info lines and warnings each) plus its
        summaries, while a bystander's every line is written.
        """
        server = self.server("auth")
        before = os.path.getsize(server.log)
        flooded = run(workloads.lookups(server.port, 1500, "127.1.0.30"))
        run(workloads.lookups(server.port, 10, "127.1.0.31"))
        self.assertEqual(server.stop()[0], 0)  # (stopping writes the summaries)
        with open(server.log, encoding="utf-8") as f:
            f.seek(before)
            lines = f.read().splitlines()
        noisy = [line for line in lines if "127.1.0.30" in line]
        summaries = [line for line in noisy if "not written" in line]
        allowance = 30
        self.record(
            {
                "probes": sum(flooded.values()),
                "lines about the prober": len(noisy),
                "log bytes": sum(len(line) + 1 for line in lines),
            }
        )
        self.assertLessEqual(len(noisy), 2 * allowance + len(summaries))
        self.assertTrue(summaries, noisy[-5:])
        bystander = [line for line in lines if "127.1.0.31" in line]
        self.assertEqual(
            [
                ("connection from" in line, "disconnected" in line)
                for line in bystander
            ].count((True, False)),
            10,
        )
        self.assertCleanLog(server)
