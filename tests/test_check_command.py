"""
Tests for the echolab-check command and what it writes: its exit
statuses and one-line errors, the text report, the JSON and JUnit files
(secrets left out), the credentials it invents, and docs/check.md.
"""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from contextlib import redirect_stderr, redirect_stdout

from twisted.internet import defer, threads
from twisted.trial.unittest import SkipTest, TestCase

from echotwist.check import cli, runner, writers
from echotwist.check.connection import Connection
from echotwist.check.context import new_login, new_password
from echotwist.check.report import text_report
from echotwist.messages import MODES
from echotwist.passwords import weakness
from echotwist.tap import Options
from tests import broken_servers
from tests.helpers import ServerTestCase
from tests.test_check import run_checker


class SecretsTests(ServerTestCase):
    """
    The reports never show a password or a token, even the checker's own.
    """

    mode = "auth"

    @defer.inlineCallbacks
    def test_json_has_no_secrets(self):
        seen = []
        expect = Connection.expect

        def recording(connection, kind, **members):
            message = expect(connection, kind, **members)
            seen.extend(message[k] for k in ("token",) if k in message)
            return message

        self.patch(Connection, "expect", recording)
        found, _ = yield run_checker(self.port)
        path = self.mktemp()
        writers.write_json(path, found, "here")
        writers.write_junit(path + ".xml", found, "here")
        self.assertGreaterEqual(len(set(seen)), 4)
        for name in (path, path + ".xml"):
            with open(name, encoding="utf-8") as f:
                text = f.read()
            # Every password the checker invents starts with check-pw-.
            for secret in ["check-pw-"] + seen:
                self.assertNotIn(secret, text)
        self.assertIn('\\"value\\": \\"<password>\\"', text_of(path))
        self.assertIn('\\"token\\": \\"<token>\\"', text_of(path))


def text_of(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class MadeUpCredentialsTests(TestCase):
    def test_passwords_pass_the_rules(self):
        """
        The passwords the checker invents pass echolab's weak-password
        rules, with the logins it invents.
        """
        for _ in range(200):
            login = new_login()
            self.assertRegex(login, r"^check-[0-9a-f]{10}$")
            self.assertIsNone(weakness(login, new_password()))


class CommandTests(ServerTestCase):
    """
    The installed command: its report, its files, its exit statuses.
    """

    mode = "echo"

    def command(self, *args):
        return threads.deferToThread(
            subprocess.run,
            [sys.executable, "-m", "echotwist.check", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    @defer.inlineCallbacks
    def test_report_and_files(self):
        folder = self.mktemp()
        os.makedirs(folder)
        json_path, junit_path = (
            os.path.join(folder, "r.json"),
            os.path.join(folder, "r.xml"),
        )
        done = yield self.command(
            f"127.0.0.1:{self.port}", "--json", json_path, "--junit", junit_path
        )
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        lines = done.stdout.splitlines()
        self.assertEqual(lines[0], f"echolab-check 127.0.0.1:{self.port} (echo mode)")
        self.assertIn("Task 7: send/receive helpers with a fixed-length header", lines)
        self.assertRegex(lines[-1], r"^\d+ passed, 0 failed, 1 skipped$")
        with open(json_path, encoding="utf-8") as f:
            document = json.load(f)
        self.assertEqual(document["summary"]["failed"], 0)
        self.assertEqual(document["mode"], "echo")
        by_id = {c["id"]: c for c in document["checks"]}
        self.assertEqual(by_id["echo.repeat"]["task"], 8)
        self.assertIn(
            '{"type": "say", "text": "four times", "repeat": 4}',
            by_id["echo.repeat"]["sent"],
        )
        suites = ElementTree.parse(junit_path).getroot()
        self.assertEqual(suites.get("failures"), "0")
        self.assertEqual(int(suites.get("tests")), len(document["checks"]))
        names = {case.get("name") for case in suites.iter("testcase")}
        self.assertEqual(names, set(by_id))

    @defer.inlineCallbacks
    def test_failure_exit_status(self):
        """
        A failed check: exit status 1, and the failure shows what was
        sent, expected and got, and a hint.
        """
        listening = broken_servers.listen_broken(
            broken_servers.IgnoresRepeat(), self.port
        )
        self.addCleanup(listening.stopListening)
        done = yield self.command(
            f"127.0.0.1:{listening.getHost().port}", "--only", "echo.repeat"
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn("  FAIL  echo.repeat", done.stdout)
        self.assertIn(
            'expected: {"type": "echo", "text": "four times", "n": 1, "of": 4}',
            done.stdout,
        )
        self.assertIn('got:      {"type": "echo", "text": "four times"}', done.stdout)
        self.assertIn("hint:     For repeat N send N echo frames", done.stdout)
        self.assertTrue(done.stdout.endswith("\n0 passed, 1 failed, 0 skipped\n"))

    def test_bad_arguments(self):
        """
        Bad arguments: one line on standard error, exit status 2.
        """
        for args, reason in [
            ([], "give the server as HOST:PORT"),
            (["localhost"], "'localhost' is not HOST:PORT"),
            (["localhost:70000"], "port 70000 is out of range (1-65535)"),
            (["localhost:1", "--mode", "chat"], "invalid choice: 'chat'"),
            (["localhost:1", "--only", "nope.*"], "no check matches 'nope.*'"),
            (["localhost:1", "--budget", "61"], "at most 60"),
            (["localhost:1", "--ca", "/nonexistent.pem"], "--ca: cannot use"),
        ]:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                with self.assertRaises(SystemExit) as exited:
                    cli.main(args)
            self.assertEqual(exited.exception.code, 2, args)
            self.assertEqual(len(err.getvalue().splitlines()), 1, err.getvalue())
            self.assertIn(reason, err.getvalue())
            self.assertEqual(out.getvalue(), "")


class ReportTests(TestCase):
    def test_grouped_by_task(self):
        """
        The text report groups checks under their lab task, in task order,
        and ends with the summary line.
        """
        checks = {c.id: c for c in runner.all_checks()}
        results = [
            runner.Result(checks["echo.say"], "passed"),
            runner.Result(checks["welcome"], "passed"),
            runner.Result(checks["framing.split"], "skipped", reason="why"),
        ]
        found = runner.Run(results, "echo", 3, 1.0)
        text = text_report(found, "h:1").splitlines()
        tasks = [line for line in text if line.startswith("Task ")]
        self.assertEqual(
            [t.split(":")[0] for t in tasks], ["Task 1", "Task 7", "Task 8"]
        )
        self.assertIn("        skipped:  why", text)
        self.assertEqual(
            text[-2:],
            ["3 checks in 1.0 s, 3 connections", "2 passed, 0 failed, 1 skipped"],
        )

    def test_check_ids_unique_and_tagged(self):
        """
        Every check has a unique id, a lab task of the README's table and
        contract sections.
        """
        checks = runner.all_checks()
        self.assertEqual(len({c.id for c in checks}), len(checks))
        for c in checks:
            self.assertIn(c.task, runner.TASKS)
            self.assertTrue(set(c.sections) <= set(runner.SECTIONS), c.id)
            self.assertTrue(c.hint and c.expected and c.title, c.id)


def read_doc(*path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, *path), encoding="utf-8") as f:
        return f.read()


class CheckDocsTests(TestCase):
    """
    docs/check.md tells the truth: its list of checks is the checker's,
    its options exist, and its commands work pasted.
    """

    def test_list_of_checks(self):
        rows = re.findall(
            r"^\| `([a-z0-9.-]+)` \| (\d) \| ([§\d ]+) \| ([a-z, ]+) \|",
            read_doc("docs", "check.md"),
            re.M,
        )
        documented = [(i, int(t), s.strip(), m) for i, t, s, m in rows]
        actual = [
            (
                c.id,
                c.task,
                c.section_refs,
                "all" if set(c.modes) == set(MODES) else ", ".join(c.modes),
            )
            for c in runner.all_checks()
        ]
        self.assertEqual(documented, actual)

    def test_options_exist(self):
        checker = set(re.findall(r"--([a-z][a-z0-9-]+)", cli.parser().format_help()))
        server = {row[0] for row in Options.optParameters}
        for option in re.findall(
            r"`[^`]*?--([a-z][a-z0-9-]+)", read_doc("docs", "check.md")
        ):
            self.assertIn(option, checker | server | {"pidfile", "out"}, option)

    def test_commands_work_pasted(self):
        """
        The shell blocks of "Running it", run as written in a directory of
        their own (any free ports standing for 9090 and 9443), start
        servers, check them, and stop them.
        """
        prefix = os.path.dirname(os.path.dirname(sys.executable))
        if not os.path.exists(os.path.join(prefix, "bin", "echolab-check")):
            raise SkipTest("echolab-check is not installed next to this Python")
        text = read_doc("docs", "check.md")
        section = text[text.index("## Running it") : text.index("## Exit status")]
        blocks = re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)
        self.assertEqual(len(blocks), 3)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        os.symlink(prefix, os.path.join(cwd, ".venv"))
        self.addCleanup(stop_daemon, os.path.join(cwd, "check.pid"))
        for block in blocks:
            port = free_port()
            script = block.replace("9090", str(port)).replace("9443", str(port))
            done = subprocess.run(
                ["bash", "-ec", script],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=120,
            )
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assertRegex(done.stdout, r"\n\d+ passed, 0 failed, \d skipped\n")
        self.assertEqual(
            ElementTree.parse(os.path.join(cwd, "check.xml")).getroot().get("failures"),
            "0",
        )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_daemon(pid_file):
    """
    Stop a server a failed test left running.
    """
    if os.path.exists(pid_file):
        with open(pid_file) as f:
            os.kill(int(f.read()), signal.SIGTERM)
