"""
Tests for C{echolab-admin} (L{echotwist.admin}): each command's output and
exit status, and one clear line with nothing changed for an unknown user,
a missing, locked or too new data folder, or a bad command line.
"""

import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys

import pexpect

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from echotwist.admin import cli
from echotwist.admin import NOT_FOUND, OK, REFUSED, UNUSABLE, USAGE
from echotwist.admin.cli import execute, parse_arguments
from echotwist.credentials import CredentialStore
from echotwist.service import DataDirectoryLock
from echotwist import store
from echotwist.store import SCHEMA_VERSION, IdentityStore
from tests.helpers import InlineDatabase, cheap_context

ADMIN = os.path.join(os.path.dirname(sys.executable), "echolab-admin")


class Terminal(io.StringIO):
    def isatty(self):
        return True


class AdminToolTests(TestCase):
    def setUp(self):
        self.cwd = os.path.abspath(self.mktemp())
        self.data = os.path.join(self.cwd, "echolab-data")
        os.makedirs(self.data)
        db = InlineDatabase(os.path.join(self.data, "echolab.db"), None)
        db.open()
        clock = Clock()
        clock.advance(1_700_000_000)
        credentials = CredentialStore(db, clock)
        self.hash = cheap_context().hash("an old passphrase")
        credentials.add_user("Alice", self.hash, b"1" * 32, 1_800_000_000)
        credentials.add_token("Alice", b"2" * 32, 1_800_000_000)
        IdentityStore(db, clock).remember("10.0.0.1", "Ann")
        db.close()

    async def admin(self, *argv, stdin="", answers=()):
        """
        Run C{echolab-admin argv} in this process.

        @return: (exit status, standard output, standard error).
        """
        options = parse_arguments(["--data-dir", self.data, *argv])
        out, err = io.StringIO(), io.StringIO()
        typed = iter(answers)
        status = await execute(
            options,
            reactor,
            out,
            err,
            stdin if not isinstance(stdin, str) else io.StringIO(stdin),
            ask=lambda prompt: next(typed),
            context=cheap_context(),
        )
        return status, out.getvalue(), err.getvalue()

    def rows(self, sql):
        db = sqlite3.connect(os.path.join(self.data, "echolab.db"))
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def assertOneLine(self, err, *words):
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("echolab-admin: "), err)
        for word in words:
            self.assertIn(word, err)

    async def test_users(self):
        """
        People get a table; scripts get JSON, times in Unix seconds.
        """
        status, out, _ = await self.admin("users")
        self.assertEqual(status, OK)
        heading, row = out.splitlines()
        self.assertEqual(
            heading.split(), ["LOGIN", "CREATED", "LAST", "LOGIN", "TOKENS"]
        )
        self.assertEqual(row.split()[0], "Alice")
        self.assertEqual(row.split()[-1], "2")
        status, out, _ = await self.admin("users", "--json")
        [alice] = json.loads(out)
        self.assertEqual(
            (alice["login"], alice["created"], alice["active_tokens"]),
            ("Alice", 1_700_000_000, 2),
        )

    async def test_user(self):
        """
        One user in detail, found in any case.
        """
        status, out, _ = await self.admin("user", "ALICE")
        self.assertEqual(status, OK)
        self.assertIn("active tokens:  2", out)
        status, out, _ = await self.admin("--json", "user", "alice")
        self.assertEqual(json.loads(out)["revoked_tokens"], 0)

    async def test_unknown_user(self):
        """
        Every command on an unknown login says so in one line, with status
        3, and changes nothing.
        """
        for command in ("user", "delete-user", "revoke", "reset-password"):
            status, out, err = await self.admin(command, "bob", stdin="x")
            self.assertEqual((status, out), (NOT_FOUND, ""), command)
            self.assertOneLine(err, "'bob'", "nothing changed")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM changes"), [(0,)])

    async def test_reset_password_stdin(self):
        """
        With --password-stdin, the first line of standard input is the new
        password, under registration's rules; the tokens are revoked.
        """
        status, _, err = await self.admin(
            "reset-password", "alice", "--password-stdin", stdin="password1\n"
        )
        self.assertEqual(status, REFUSED)
        self.assertOneLine(err, "common")
        self.assertEqual(self.rows("SELECT hash FROM users"), [(self.hash,)])
        status, out, _ = await self.admin(
            "reset-password", "alice", "--password-stdin", stdin="a new passphrase\n"
        )
        self.assertEqual(status, OK)
        [(hashed,)] = self.rows("SELECT hash FROM users")
        self.assertTrue(cheap_context().verify("a new passphrase", hashed))
        self.assertEqual(self.rows("SELECT SUM(revoked) FROM tokens"), [(2,)])

    async def test_reset_password_terminal(self):
        """
        At a terminal the password is asked twice; two different answers,
        or no terminal and no --password-stdin, change nothing.
        """
        status, _, err = await self.admin(
            "reset-password", "alice", stdin=Terminal(), answers=("one pass 1", "two")
        )
        self.assertEqual(status, REFUSED)
        self.assertOneLine(err, "differ")
        status, _, err = await self.admin("reset-password", "alice")
        self.assertEqual(status, USAGE)
        self.assertOneLine(err, "--password-stdin")
        self.assertEqual(self.rows("SELECT hash FROM users"), [(self.hash,)])
        status, _, _ = await self.admin(
            "reset-password", "alice", stdin=Terminal(), answers=["tea for two 42"] * 2
        )
        self.assertEqual(status, OK)
        [(hashed,)] = self.rows("SELECT hash FROM users")
        self.assertTrue(cheap_context().verify("tea for two 42", hashed))

    async def test_revoke_and_delete(self):
        """
        Revoking and deleting act, say what they did, and are recorded for
        running servers.
        """
        status, out, _ = await self.admin("revoke", "alice")
        self.assertEqual((status, out.split()[:2]), (OK, ["revoked", "2"]))
        status, out, _ = await self.admin("revoke", "--all")
        self.assertEqual((status, out.split()[:2]), (OK, ["revoked", "0"]))
        status, out, _ = await self.admin("delete-user", "Alice")
        self.assertEqual(status, OK)
        self.assertEqual(self.rows("SELECT COUNT(*) FROM users"), [(0,)])
        self.assertEqual(
            self.rows("SELECT kind, subject FROM changes ORDER BY id"),
            [
                ("tokens_revoked", "alice"),
                ("tokens_revoked", ""),
                ("user_deleted", "alice"),
            ],
        )

    async def test_identities(self):
        """
        Identities are listed, renamed (under the server's rules for names,
        the address in any spelling) and deleted.
        """
        status, out, _ = await self.admin("identities")
        self.assertEqual(out.splitlines()[1].split()[:2], ["10.0.0.1", "Ann"])
        status, _, err = await self.admin("rename-identity", "10.0.0.1", " ")
        self.assertEqual(status, REFUSED)
        status, _, err = await self.admin("rename-identity", "10.0.0.9", "X")
        self.assertEqual(status, NOT_FOUND)
        self.assertOneLine(err, "10.0.0.9")
        status, _, _ = await self.admin("rename-identity", "::ffff:10.0.0.1", " Анна ")
        self.assertEqual(status, OK)
        self.assertEqual(self.rows("SELECT name FROM identities"), [("Анна",)])
        status, _, _ = await self.admin("delete-identity", "10.0.0.1")
        self.assertEqual(status, OK)
        status, out, _ = await self.admin("identities", "--json")
        self.assertEqual(json.loads(out), [])

    async def test_backup_restore_check(self):
        """
        A backup is taken, not over an existing file without --force, and
        restored; check finds the database sound.
        """
        copy = os.path.join(self.cwd, "copy.db")
        self.assertEqual((await self.admin("backup", copy))[0], OK)
        status, _, err = await self.admin("backup", copy)
        self.assertEqual(status, REFUSED)
        self.assertOneLine(err, "--force")
        self.assertEqual((await self.admin("backup", copy, "--force"))[0], OK)
        await self.admin("delete-user", "alice")
        self.assertEqual((await self.admin("restore", copy))[0], OK)
        self.assertEqual(self.rows("SELECT login FROM users"), [("Alice",)])
        status, out, _ = await self.admin("check")
        self.assertEqual(status, OK)
        self.assertIn("sound", out)
        status, _, err = await self.admin("restore", os.path.join(self.cwd, "no.db"))
        self.assertEqual(status, REFUSED)
        status, _, err = await self.admin("backup", os.path.join(self.cwd, "no", "b"))
        self.assertEqual(status, REFUSED)
        self.assertOneLine(err, "cannot write", "No such file")

    async def test_restore_refused_while_server_runs(self):
        """
        A restore is refused while a server holds the data folder.
        """
        lock = DataDirectoryLock(self.data)
        lock.privilegedStartService()
        self.addCleanup(lock.stopService)
        copy = os.path.join(self.cwd, "copy.db")
        await self.admin("backup", copy)
        status, _, err = await self.admin("restore", copy)
        self.assertEqual(status, UNUSABLE)
        self.assertOneLine(err, "server is running", "stop it")

    async def test_unusable_data_folder(self):
        """
        A missing data folder, a folder without a database, and a database
        of a newer schema are each one line, status 4, and nothing is made.
        """
        missing = os.path.join(self.cwd, "nowhere")
        options = parse_arguments(["users", "--data-dir", missing])
        err = io.StringIO()
        status = await execute(options, reactor, io.StringIO(), err, io.StringIO())
        self.assertEqual(status, UNUSABLE)
        self.assertOneLine(err.getvalue(), missing)
        self.assertFalse(os.path.exists(missing))
        os.makedirs(missing)
        err = io.StringIO()
        status = await execute(options, reactor, io.StringIO(), err, io.StringIO())
        self.assertEqual(status, UNUSABLE)
        self.assertOneLine(err.getvalue(), "no database")
        self.assertEqual(os.listdir(missing), [])
        db = sqlite3.connect(os.path.join(self.data, "echolab.db"))
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
        status, _, err = await self.admin("users")
        self.assertEqual(status, UNUSABLE)
        self.assertOneLine(err, "upgrade echolab")

    async def test_unusable_store(self):
        """
        A C{--store} that cannot be used (no PostgreSQL server there, not a
        URL of a known kind, no SQLite file at that path) is one line,
        status 4.
        """
        for url, reason in [
            ("postgresql:///echolab?host=/nonexistent/folder", "No such file"),
            ("mysql://db", "postgresql://"),
            ("sqlite:missing.db", "no database"),
        ]:
            options = parse_arguments(
                ["users", "--data-dir", self.data, "--store", url]
            )
            err = io.StringIO()
            status = await execute(options, reactor, io.StringIO(), err, io.StringIO())
            self.assertEqual(status, UNUSABLE)
            self.assertOneLine(err.getvalue(), reason)
        self.assertFalse(os.path.exists(os.path.join(self.data, "missing.db")))

    async def test_database_locked(self):
        """
        A database another process keeps locked for writing longer than the
        wait is one line, status 4, and nothing changed; reading still works
        (a write-ahead log lets readers through).
        """
        self.patch(store, "BUSY_TIMEOUT_MS", 50)
        other = sqlite3.connect(
            os.path.join(self.data, "echolab.db"), isolation_level=None
        )
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        status, _, err = await self.admin("revoke", "alice")
        self.assertEqual(status, UNUSABLE)
        self.assertOneLine(err, "locked", "nothing changed")
        self.assertEqual((await self.admin("users"))[0], OK)
        other.execute("ROLLBACK")
        self.assertEqual(self.rows("SELECT SUM(revoked) FROM tokens"), [(0,)])


class ScriptTests(TestCase):
    """
    The installed C{echolab-admin} script, as a person runs it.
    """

    def run_admin(self, *argv, cwd=None):
        return subprocess.run(
            [ADMIN, *argv],
            cwd=cwd or self.mktemp_dir(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    def mktemp_dir(self):
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    def test_bad_flag(self):
        """
        A bad flag is one line on standard error and status 2.
        """
        for argv, why in (
            (["users", "--bogus"], "unrecognized arguments: --bogus"),
            (["--bogus"], "unrecognized arguments: --bogus"),
            (["revoke"], "revoke takes either a LOGIN or --all"),
            (["frobnicate"], "invalid choice: 'frobnicate'"),
            ([], "give a command"),
        ):
            done = self.run_admin(*argv)
            self.assertIn(why, done.stderr)
            self.assertEqual(done.returncode, USAGE, argv)
            self.assertEqual(done.stdout, "")
            self.assertEqual(done.stderr.count("\n"), 1, done.stderr)
            self.assertNotIn("Traceback", done.stderr)

    def test_missing_default_data_folder(self):
        """
        The default data folder is the server's, in the current folder, and
        its absence is said with its absolute path (status 4).
        """
        cwd = self.mktemp_dir()
        done = self.run_admin("users", cwd=cwd)
        self.assertEqual(done.returncode, UNUSABLE)
        self.assertEqual(
            done.stderr.splitlines(),
            [
                f"echolab-admin: no data folder {cwd}/echolab-data (give "
                "--data-dir; the server creates its folder when it first starts)"
            ],
        )

    def test_help_says_exit_statuses(self):
        """
        --help lists every exit status.
        """
        done = self.run_admin("--help")
        self.assertEqual(done.returncode, OK)
        for status in (OK, REFUSED, USAGE, NOT_FOUND, UNUSABLE):
            self.assertRegex(done.stdout, rf"(?m)^  {status}  ")


class TerminalTests(TestCase):
    """
    C{reset-password} at a real terminal (a pseudo-terminal).
    """

    def setUp(self):
        self.cwd = os.path.abspath(self.mktemp())
        data = os.path.join(self.cwd, "echolab-data")
        os.makedirs(data)
        db = InlineDatabase(os.path.join(data, "echolab.db"), None)
        db.open()
        CredentialStore(db, Clock()).add_user("alice", "h", b"1" * 32, 9)
        db.close()

    def spawn(self):
        child = pexpect.spawn(
            ADMIN, ["reset-password", "alice"], cwd=self.cwd, encoding="utf-8"
        )
        self.addCleanup(child.close, force=True)
        child.expect("New password for alice: ", timeout=30)
        return child

    def test_asked_twice_unechoed(self):
        """
        The password is asked twice and never shown.
        """
        child = self.spawn()
        child.sendline("a fine passphrase")
        child.expect("The same again: ")
        child.sendline("a fine passphrase")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, OK)
        self.assertNotIn("fine", child.before)

    def test_interrupted(self):
        """
        Ctrl-C at the prompt ends the tool at once, with one line and
        nothing changed.
        """
        child = self.spawn()
        child.sendintr()
        child.expect(pexpect.EOF, timeout=10)
        child.close()
        self.assertEqual(child.exitstatus, REFUSED)
        self.assertIn("no password given; nothing changed", child.before)


class DocumentedCommandTests(TestCase):
    """
    The commands README.md and docs/admin.md show are ones the tool takes.
    """

    def test_documented_commands_parse(self):
        """
        Every C{echolab-admin} command line shown parses; every command the
        tool has is documented in docs/admin.md.
        """
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        shown = []
        for name in ("README.md", os.path.join("docs", "admin.md")):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                text = f.read()
            shown += re.findall(r"\.venv/bin/echolab-admin ([^`\n]*)", text)
        self.assertGreater(len(shown), 5)
        for line in shown:
            argv = shlex.split(line)
            if argv == ["--help"]:
                continue
            parse_arguments(argv)  # (a bad one exits, failing the test)
        with open(os.path.join(root, "docs", "admin.md"), encoding="utf-8") as f:
            documented = set(re.findall(r"^\| `([a-z-]+)", f.read(), re.M))
        commands = {row[0] for row in cli._COMMANDS}
        self.assertEqual(commands - documented, set())
