"""
The documents say what the code does: the README's commands are the ones
CI runs, and every option the README and docs name exists; what the README
says to paste works when pasted.
"""

import functools
import io
import os
import re
import select
import shlex
import subprocess
import sys
import time

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from echotwist import prompts
from echotwist.check import cli as check_cli
from echotwist.client import console
from echotwist.tap import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class DocsTests(SynchronousTestCase):
    def test_ci_runs_readme_command(self):
        """
        CI runs the README's test command, character for character.
        """
        [command] = re.findall(r'^TEST_COMMAND="(.*)"$', read(".ci", "run"), re.M)
        self.assertIn("\n" + command + "\n", read("README.md"))

    def test_documented_options_exist(self):
        """
        Every --option named in the README and docs/protocol.md is a server
        option (or a client, echolab-check or twistd one).
        """
        known = {row[0] for row in Options.optParameters + Options.optFlags}
        known.add("help")
        client = console.Options
        known |= {row[0] for row in client.optParameters + client.optFlags}
        other = {
            "config-settings",
            "pidfile",
            "logfile",
            "tls",
            "ca",
            "insecure",
            "host",
            "profile",
            "listen",
            "raw-listen",
            "help-reactors",
            "out",
            "force",
        }
        checker = set(
            re.findall(r"--([a-z][a-z0-9-]+)", check_cli.parser().format_help())
        )
        for name in ("README.md", os.path.join("docs", "protocol.md")):
            for option in re.findall(r"`[^`]*?--([a-z][a-z0-9-]+)", read(name)):
                self.assertIn(option, known | other | checker, f"{name}: --{option}")


TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]
# Generous: the README's server hashes passwords at idle CPU priority, and
# the tests may keep every CPU busy.
TIMEOUT = 120


def readme_block(language, after):
    """
    The first C{language} code block of the README after the text C{after}.
    """
    text = read("README.md")
    block = re.compile(rf"^```{language}\n(.*?)^```$", re.M | re.S)
    return block.search(text, text.index(after)).group(1)


def readme_server_argv():
    """
    The README's command that starts the server (the last of the Quick
    start's first line of commands), as a shell splits it.
    """
    words = shlex.split(readme_block("sh", "## Quick start").splitlines()[0])
    last = words[len(words) - words[::-1].index("&&") :]
    assert last[:3] == [".venv/bin/twistd", "-n", "echolab"], last
    return last[1:]


def printed_claims(code):
    """
    What the comments of C{code}'s print lines say they print, as patterns
    in which C{...} stands for anything.
    """
    return [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.lstrip().startswith("print(")
    ]


class ReadmeServer:
    """
    The server, started in a directory of its own as the README starts it,
    on any free port instead of 9090.
    """

    def __init__(self, testcase, *extra):
        self.cwd = os.path.abspath(testcase.mktemp())
        os.makedirs(self.cwd)
        argv = [("0" if word == "9090" else word) for word in readme_server_argv()]
        self.process = subprocess.Popen(
            TWISTD + argv + list(extra),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        testcase.addCleanup(self.stop)
        line = self._first_line()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)$", line)
        testcase.assertTrue(match, f"the server printed {line!r}")
        self.port = int(match.group(1))

    def _first_line(self):
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if not select.select([self.process.stdout], [], [], 1)[0]:
                continue
            byte = self.process.stdout.read(1)
            if not byte:
                break
            line += byte
        return line.decode().strip()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


class ReadmeSnippetTests(SynchronousTestCase):
    """
    The README's Python snippet, pasted as it is against the server the
    README starts, runs and prints what its comments say.
    """

    def run_snippet(self, code, port):
        self.assertEqual(code.count('("127.0.0.1", 9090)'), 1)
        cwd = self.mktemp()
        os.makedirs(cwd)
        result = subprocess.run(
            [sys.executable, "-c", code.replace("9090", str(port))],
            cwd=cwd,
            capture_output=True,
            timeout=TIMEOUT,
            env=dict(os.environ, PYTHONIOENCODING="utf-8"),
        )
        stdout, stderr = result.stdout.decode(), result.stderr.decode()
        self.assertEqual((result.returncode, stderr), (0, ""), stdout)
        return stdout.splitlines()

    def assertPrints(self, lines, claims):
        """
        Each line printed is what its comment says, C{...} standing for
        anything.
        """
        printed = "printed:\n" + "\n".join(lines)
        self.assertEqual(len(lines), len(claims), printed)
        for i, claim in enumerate(claims):
            pattern = re.escape(claim).replace(re.escape("..."), ".*")
            self.assertTrue(
                re.fullmatch(pattern, lines[i]), f"not {claim!r}; {printed}"
            )

    def test_snippet_auth_mode(self):
        """
        Against C{twistd -n echolab --port 9090} (auth mode) the snippet
        registers bob, and run again logs him in with his password.
        """
        code = readme_block("python", "`MessageSocket`")
        claims = printed_claims(code)
        server = ReadmeServer(self)
        self.assertPrints(self.run_snippet(code, server.port), claims)
        again = [c.replace("'via': 'register'", "'via': 'password'") for c in claims]
        self.assertNotEqual(again, claims)
        self.assertPrints(self.run_snippet(code, server.port), again)

    def test_snippet_echo_mode(self):
        """
        As the README says, without the six lines between the welcome and
        the say the snippet works against a server in echo mode.
        """
        lines = readme_block("python", "`MessageSocket`").splitlines(keepends=True)
        welcome = next(i for i, line in enumerate(lines) if "'welcome'" in line)
        say = next(i for i, line in enumerate(lines) if '"say"' in line)
        self.assertTrue(
            "leave out the six lines" in " ".join(read("README.md").split()),
            "the README says how to use the snippet in echo mode",
        )
        self.assertEqual(say - welcome - 1, 6)
        code = "".join(lines[: welcome + 1] + lines[say:])
        claims = printed_claims(code)
        claims[0] = claims[0].replace("'mode': 'auth'", "'mode': 'echo'")
        server = ReadmeServer(self, "--mode", "echo")
        self.assertPrints(self.run_snippet(code, server.port), claims)


class PastedCommandTests(SynchronousTestCase):
    def test_tcp6_example(self):
        """
        The IPv6 C{--listen} example in the README, docs/protocol.md and
        C{--help}, split as a shell splits it, is accepted; unquoted, the
        shell would take its backslashes.
        """
        expected = "tcp6:9090:interface=\\:\\:1"
        sources = {
            "README.md": read("README.md"),
            "docs/protocol.md": read("docs", "protocol.md"),
            "--help": " ".join(str(Options()).split()),
        }
        for name, text in sources.items():
            examples = re.findall(r"--listen '[^']*'", text)
            examples = [e for e in examples if "tcp6" in e]
            self.assertEqual(len(examples), 1, name)
            self.assertEqual(text.count("interface=\\:"), 1, f"{name}: unquoted")
            options = Options()
            options.parseOptions(
                shlex.split(examples[0]) + ["--data-dir", self.mktemp()]
            )
            self.assertEqual(options["listen"], [expected], name)
        self.assertRaises(
            UsageError,
            Options().parseOptions,
            shlex.split("--listen " + expected) + ["--data-dir", self.mktemp()],
        )


class ClientStatusTests(SynchronousTestCase):
    def test_unresolvable_host(self):
        """
        docs/client.md gives the status of a C{--host} that does not
        resolve: the client's, one line on standard error.
        """
        [documented] = re.findall(
            r"A `--host` that does not resolve is a bad option[^.]*?status (\d)",
            " ".join(read("docs", "client.md").split()),
        )

        def getaddrinfo(*args, **kwargs):
            raise OSError(-2, "Name or service not known")

        self.patch(
            prompts,
            "parse_host",
            functools.partial(prompts.parse_host, getaddrinfo=getaddrinfo),
        )
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit) as caught:
            console.main(["--host", "no-such-host.invalid"])
        self.assertEqual(caught.exception.code, int(documented))
        self.assertEqual(
            stderr.getvalue(),
            "echolab-client: --host: cannot resolve 'no-such-host.invalid' "
            "(Name or service not known) (see --help)\n",
        )
