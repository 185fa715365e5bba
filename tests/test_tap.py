"""
Tests for L{echotwist.tap}: the command line, the port question (lab task
2), and that the twistd plugin and echo.tac build the same server.
"""

import dataclasses
import io
import os
import stat

from twisted.application.service import IService, IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from echotwist import tap
from echotwist.factory import EchoFactory
from echotwist.hashing import HashSettings
from echotwist.listening import ListenerService
from echotwist.service import ClientsService, DataDirectoryLock, StoresService
from echotwist.settings import Settings
from echotwist.throttle import Limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeTerminal(io.StringIO):
    """
    Standard input that claims to be a terminal, holding typed lines.
    """

    def isatty(self):
        return True


def parse(testcase, *args, stdin=None):
    options = tap.Options()
    options._stdin = stdin
    options._stdout = io.StringIO()
    if not any(a.startswith("--data-dir") for a in args):
        args = ("--data-dir", testcase.mktemp()) + args
    options.parseOptions(list(args))
    return options


class OptionTests(SynchronousTestCase):
    def test_defaults(self):
        """
        Without options: port 9090 (no terminal to ask), auth mode, the
        contract's interface and message limit, the log inside the data dir.
        """
        options = parse(self)
        self.assertEqual(options["port"], 9090)
        self.assertEqual(options["port-tries"], 10)
        self.assertEqual(options["interface"], "127.0.0.1")
        self.assertEqual(options["mode"], "auth")
        self.assertEqual(options["max-message"], 65536)
        self.assertEqual(options["hash-priority"], "idle")
        self.assertEqual(
            options["log-file"], os.path.join(options["data-dir"], "echolab.log")
        )
        self.assertEqual(options.settings(), Settings())
        self.assertEqual(options.limits(), Limits())
        self.assertEqual(options.hashing(), HashSettings())

    def test_every_setting_is_an_option(self):
        """
        Each field of the settings classes that declares an option is set
        by that option, and the option rows come from those fields alone.
        """
        for cls, value_of in [
            (Settings, "settings"),
            (Limits, "limits"),
            (HashSettings, "hashing"),
        ]:
            for field in dataclasses.fields(cls):
                option = field.metadata.get("option")
                if option is None:
                    continue
                if field.name == "mode":
                    text, expected = "echo", "echo"
                elif field.name == "priority":
                    text, expected = "normal", "normal"
                else:
                    expected = field.default + 1
                    text = str(expected)
                options = parse(self, f"--{option}", text)
                got = getattr(getattr(options, value_of)(), field.name)
                self.assertEqual(got, expected, option)

    def test_default_data_dir(self):
        """
        The default data directory is ./echolab-data, made with mode 0700.
        """
        cwd = os.getcwd()
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        os.chdir(where)
        self.addCleanup(os.chdir, cwd)
        options = tap.Options()
        options._stdin = None
        options.parseOptions([])
        path = os.path.join(os.path.abspath(where), "echolab-data")
        self.assertEqual(options["data-dir"], path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700)

    def test_values(self):
        """
        Every option is parsed into its own type.
        """
        options = parse(
            self,
            "--port",
            "0",
            "--port-tries",
            "3",
            "--interface",
            "::1",
            "--mode",
            "ident",
            "--max-message",
            "1024",
            "--idle-timeout",
            "90",
            "--max-per-address",
            "5",
            "--token-ttl",
            "60",
        )
        self.assertEqual(
            (options["port"], options["port-tries"], options["interface"]),
            (0, 3, "::1"),
        )
        settings = options.settings()
        self.assertEqual(
            (
                settings.mode,
                settings.max_message,
                settings.idle_timeout,
                settings.max_per_address,
                settings.token_ttl,
            ),
            ("ident", 1024, 90.0, 5, 60),
        )

    def test_refused(self):
        """
        Bad values are one-line usage errors naming the problem.
        """
        for args, words in [
            (["--port", "abc"], "not a port number"),
            (["--port", "70000"], "out of range"),
            (["--port", "-1"], "not a port number"),
            (["--port", "１２"], "not a port number"),
            (["--port-tries", "0"], "out of range"),
            (["--mode", "chat"], "not one of"),
            (["--interface", "example.com"], "not an IPv4 or IPv6 address"),
            (["--max-message", "12"], "out of range"),
            (["--idle-timeout", "nan"], "out of range"),
            (["--hash-memory", "1024"], "out of range"),
            (["--hash-time", "1"], "out of range"),
            (["--hash-priority", "high"], "not one of: idle, normal"),
            (["--login-timeout", "soon"], "not a number"),
            (["--metrics", "tcp:nine"], "--metrics"),
            (["--metrics", "gopher:70"], "Unknown endpoint type"),
            (["--log-rotate-bytes", "999"], "out of range"),
            (["--log-format", "xml"], "not one of: text, json"),
            (["--trace", "--metrics", "tcp:0"], "not with --metrics"),
            (["--workers", "2", "--metrics", "unix:/m.sock"], "with --workers takes"),
        ]:
            e = self.assertRaises(UsageError, parse, self, *args)
            self.assertIn(words, str(e), args)
            self.assertNotIn("\n", str(e))

    def test_log_file_unusable(self):
        """
        A log file that cannot be written is a one-line usage error, not a
        traceback at start-up.
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        for path in (os.path.join(folder, "no", "such", "dir.log"), folder):
            e = self.assertRaises(UsageError, parse, self, "--log-file", path)
            self.assertTrue(str(e).startswith("--log-file: "), str(e))

    def test_data_dir_kept(self):
        """
        An existing data directory keeps its mode.
        """
        path = self.mktemp()
        os.makedirs(path)
        os.chmod(path, 0o750)
        parse(self, "--data-dir", path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o750)

    def test_data_dir_unusable(self):
        """
        A data directory that cannot be made is a usage error.
        """
        blocker = self.mktemp()
        open(blocker, "w").close()
        e = self.assertRaises(
            UsageError, parse, self, "--data-dir", os.path.join(blocker, "sub")
        )
        self.assertIn("--data-dir", str(e))


class PortQuestionTests(SynchronousTestCase):
    def ask(self, typed):
        options = tap.Options()
        options._stdin = FakeTerminal(typed)
        options._stdout = io.StringIO()
        options.parseOptions(["--data-dir", self.mktemp()])
        return options, options._stdout.getvalue()

    def test_default(self):
        """
        An empty answer takes the default, which the question shows.
        """
        options, shown = self.ask("\n")
        self.assertEqual(options["port"], 9090)
        self.assertIn("[9090]", shown)

    def test_bad_then_good(self):
        """
        Bad answers get a one-line reason and the question again.
        """
        options, shown = self.ask("abc\n70000\n 9191 \n")
        self.assertEqual(options["port"], 9191)
        self.assertIn("'abc' is not a port number", shown)
        self.assertIn("port 70000 is out of range", shown)
        self.assertEqual(shown.count("Port to listen on"), 3)

    def test_end_of_input(self):
        """
        End of input at the question exits cleanly.
        """
        e = self.assertRaises(SystemExit, self.ask, "abc\n")
        self.assertEqual(e.code, 0)

    def test_option_wins(self):
        """
        With C{--port} given nothing is asked.
        """
        options = tap.Options()
        options._stdin = FakeTerminal("")
        options._stdout = io.StringIO()
        options.parseOptions(["--port", "7000", "--data-dir", self.mktemp()])
        self.assertEqual(options["port"], 7000)
        self.assertEqual(options._stdout.getvalue(), "")


class MakeServiceTests(SynchronousTestCase):
    def build(self, *args):
        options = parse(self, "--port", "0", *args)
        return options, tap.makeService(options, reactor=MemoryReactorClock())

    def test_echo_mode(self):
        """
        Echo mode needs no stores: the data directory's lock, the clients and
        the listener.
        """
        _, top = self.build("--mode", "echo")
        self.assertEqual(
            [type(s) for s in top], [DataDirectoryLock, ClientsService, ListenerService]
        )
        self.assertIsInstance(top.factory, EchoFactory)
        self.assertIsNone(top.factory.identities)

    def test_auth_mode(self):
        """
        Auth mode opens the stores before listening and holds the accounts.
        """
        _, top = self.build("--mode", "auth")
        kinds = [type(s) for s in top]
        self.assertLess(kinds.index(StoresService), kinds.index(ListenerService))
        self.assertIsNotNone(top.factory.accounts)

    def test_hash_priority(self):
        """
        The hashing threads' priority is idle unless --hash-priority says
        normal.
        """
        for args, priority in [((), "idle"), (("--hash-priority", "normal"), "normal")]:
            _, top = self.build("--mode", "auth", *args)
            (stores,) = [s for s in top if isinstance(s, StoresService)]
            self.assertEqual(stores.hasher.priority, priority)

    def test_metrics(self):
        """
        Metrics are off by default: the factory builds plain connections.
        With --metrics, metered ones, and the metrics and their listener
        start after the server's listeners (and stop before them).
        """
        from echotwist.metrics import ServerMetrics
        from echotwist.protocol import ServerProtocol

        _, top = self.build("--mode", "ident")
        self.assertIs(top.factory.protocol, ServerProtocol)
        self.assertFalse(any(isinstance(s, ServerMetrics) for s in top))
        _, top = self.build("--mode", "ident", "--metrics", "tcp:0:interface=127.0.0.1")
        kinds = [type(s) for s in top]
        self.assertEqual(kinds[-3:], [ListenerService, ServerMetrics, ListenerService])
        self.assertTrue(issubclass(top.factory.protocol, ServerProtocol))
        self.assertIsNot(top.factory.protocol, ServerProtocol)

    def test_log_options(self):
        """
        --log-rotate-bytes 0 leaves rotating to an external tool; the
        format is text unless --log-format says json.
        """
        options, top = self.build("--log-rotate-bytes", "0", "--log-format", "json")
        self.assertEqual(
            (options["log-rotate-bytes"], options["log-format"]), (0, "json")
        )
        self.assertIn("json, reopened on SIGUSR1", top.start_lines[2])


class PluginTests(SynchronousTestCase):
    def test_plugin_found(self):
        """
        twistd finds the echolab plugin, which names L{echotwist.tap}.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("echolab", makers)
        self.assertIs(makers["echolab"].options, tap.Options)

    def test_tac_same_service(self):
        """
        echo.tac builds its service with the same L{tap.makeService}, from
        ECHOLAB_ARGS, as the plugin does from the command line.
        """
        args = f"--mode ident --port 0 --data-dir {self.mktemp()}"
        self.patch(os, "environ", dict(os.environ, ECHOLAB_ARGS=args))
        calls = []
        original = tap.makeService

        def spy(options, **kw):
            calls.append(options)
            return original(options, reactor=MemoryReactorClock(), **kw)

        self.patch(tap, "makeService", spy)
        namespace = {"__file__": os.path.join(ROOT, "echo.tac")}
        with open(namespace["__file__"]) as f:
            exec(compile(f.read(), "echo.tac", "exec"), namespace)
        [options] = calls
        [echolab] = IService(namespace["application"])
        self.assertEqual(options.settings(), Settings(mode="ident"))
        self.assertIsInstance(echolab.factory, EchoFactory)
