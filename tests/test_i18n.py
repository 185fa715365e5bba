"""
Tests for the translations: the language chosen from the locale and
--lang, the catalogs complete for every string a person reads, the
shipped .mo files compiled from the .po files as they are, and no
user-visible client string left out of the catalogs.
"""

import ast
import gettext
import io
import os
import re
import string

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from echotwist import i18n

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "echotwist")

try:
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
except ImportError:  # pragma: no cover - babel is in the test extra
    read_po = None


def catalog(language):
    if read_po is None:
        raise SkipTest("babel is not installed (pip install -e '.[test]')")
    path = os.path.join(i18n.LOCALE_DIR, language, "LC_MESSAGES", "echolab.po")
    with open(path, "rb") as f:
        return read_po(f)


def extracted():
    """
    The msgids Babel extracts from the package now, as the documented
    command does (babel.cfg; keywords N_, and the help texts of setting
    and option_row).
    """
    catalog("en")
    keywords = {"_": None, "N_": None, "setting": (3,), "option_row": (3,)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        PACKAGE,
        method_map=[("**.py", "python")],
        keywords=keywords,
    ):
        found.add(message)
    return found


def fields(text):
    return sorted(
        name for _, name, _, _ in string.Formatter().parse(text) if name is not None
    )


class LanguageTests(SynchronousTestCase):
    def test_locale(self):
        """
        LC_ALL wins over LC_MESSAGES, which wins over LANG; C, POSIX and
        languages without a catalog are English.
        """
        cases = [
            ({"LANG": "ru_RU.UTF-8"}, "ru"),
            ({"LANG": "ru_RU.UTF-8", "LC_ALL": "C"}, "en"),
            ({"LANG": "en_GB.UTF-8", "LC_MESSAGES": "ru_RU"}, "ru"),
            ({"LC_ALL": "ru_UA.UTF-8@euro"}, "ru"),
            ({"LANG": "de_DE.UTF-8"}, "en"),
            ({"LANG": "POSIX"}, "en"),
            ({}, "en"),
        ]
        for environ, expected in cases:
            self.assertEqual(i18n.language_of(environ), expected, environ)

    def test_option_overrides(self):
        """
        --lang (either spelling) wins over the locale; a bad one leaves the
        locale's language, for the option parser to refuse.
        """
        ru = {"LANG": "ru_RU.UTF-8"}
        self.assertEqual(i18n.language_in(["--lang", "en"], ru), "en")
        self.assertEqual(i18n.language_in(["--lang=ru"], {}), "ru")
        self.assertEqual(i18n.language_in(["--lang", "xx"], ru), "ru")
        self.assertEqual(i18n.language_in(["--port", "1"], ru), "ru")
        self.assertRaises(ValueError, i18n.parse_language, "de")

    def test_install(self):
        """
        Russian comes from the shipped catalog; English is the source.
        """
        self.addCleanup(i18n.install, "en")
        i18n.install("ru")
        self.assertEqual(i18n._("Password:"), "Пароль:")
        i18n.install("en")
        self.assertEqual(i18n._("Password:"), "Password:")


class CatalogTests(SynchronousTestCase):
    def test_every_string_in_both_catalogs(self):
        """
        Every string marked in the package is in the English catalog and
        translated in the Russian one (not fuzzy), with the same
        placeholders; nothing is left in a catalog that the code no longer
        says. Run the commands of docs/i18n.md after changing a string.
        """
        marked = extracted()
        for language in ("en", "ru"):
            entries = {m.id: m for m in catalog(language) if m.id}
            self.assertEqual(
                sorted(marked - set(entries)), [], f"missing from {language}"
            )
            self.assertEqual(sorted(set(entries) - marked), [], f"stale in {language}")
        for message in catalog("ru"):
            if not message.id:
                continue
            self.assertTrue(message.string, f"not translated: {message.id!r}")
            self.assertNotIn("fuzzy", message.flags, message.id)
            self.assertEqual(fields(message.id), fields(message.string), message.id)

    def test_mo_up_to_date(self):
        """
        The shipped .mo files say what their .po files say (pip install .
        ships them as they are, no compiler needed).
        """
        for language in ("en", "ru"):
            po = catalog(language)
            compiled = io.BytesIO()
            write_mo(compiled, po)
            path = os.path.join(i18n.LOCALE_DIR, language, "LC_MESSAGES", "echolab.mo")
            with open(path, "rb") as f:
                shipped = gettext.GNUTranslations(f)
            compiled.seek(0)
            fresh = gettext.GNUTranslations(compiled)
            for message in po:
                if message.id:
                    self.assertEqual(
                        shipped.gettext(message.id),
                        fresh.gettext(message.id),
                        f"{language}: recompile: {message.id!r}",
                    )


_SHOWN_BY = {
    "show",
    "hint",
    "prompt",
    "_say",
    "ValueError",
    "UsageError",
    "PasswordSourceError",
    "CAFileError",
    "ProfileError",
    "ConnectFailed",
}
_WORD = re.compile(r"[A-Za-z]{2,}")
_OPTION = re.compile(r"--[a-z-]+")


class UnmarkedTests(SynchronousTestCase):
    def test_client_strings_marked(self):
        """
        No string a person reads is written in the client without going
        through the catalogs: what is shown, prompted, or raised as a
        reason is a call of _ (or built from such calls), never a literal
        with words in it.
        """
        directory = os.path.join(PACKAGE, "client")
        found = []
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                called = node.func
                called = getattr(called, "attr", getattr(called, "id", None))
                if called in _SHOWN_BY and _has_words(node.args[0]):
                    found.append(f"{name}:{node.lineno}")
        self.assertEqual(found, [])


def _has_words(node):
    """
    Whether C{node} writes words of its own rather than taking them from
    the catalogs.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_WORD.search(_OPTION.sub("", node.value)))
    if isinstance(node, ast.JoinedStr):
        return any(_has_words(part) for part in node.values)
    if isinstance(node, ast.BinOp):
        return _has_words(node.left) or _has_words(node.right)
    return False


class ServerLanguageTests(SynchronousTestCase):
    """
    A real server with --lang ru: its console line and the texts of its
    replies are in Russian, its log stays in English.
    """

    def test_server_in_russian(self):
        import subprocess

        from echotwist.wire import MessageSocket

        from .client_support import CHEAP_HASH, TIMEOUT, TWISTD, server_env

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = subprocess.Popen(
            [
                TWISTD,
                "--pidfile=",
                "-n",
                "echolab",
                "--port",
                "0",
                "--mode",
                "auth",
                "--lang",
                "ru",
                "--data-dir",
                os.path.join(directory, "data"),
                *CHEAP_HASH,
            ],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
        self.addCleanup(process.wait, TIMEOUT)
        self.addCleanup(process.stdout.close)
        self.addCleanup(process.terminate)
        line = process.stdout.readline().decode("utf-8")
        found = re.search(r"слушаю на 127\.0\.0\.1:(\d+)", line)
        self.assertIsNotNone(found, line)
        with MessageSocket.connect_to(("127.0.0.1", int(found.group(1))), TIMEOUT) as s:
            self.assertEqual(s.recv_message()["type"], "welcome")
            self.assertEqual(s.recv_message()["text"], "Логин:")
            s.send_message({"type": "answer", "field": "login", "value": "x y"})
            refused = s.recv_message()
            self.assertEqual(refused["code"], "bad_value")
            self.assertEqual(
                refused["text"], "логин может содержать только A-Z a-z 0-9 . _ -"
            )
            s.recv_message()  # the question again
            s.send_message({"type": "quit"})
            self.assertEqual(s.recv_message(), {"type": "bye", "text": "До свидания."})
        second = subprocess.run(
            [
                TWISTD,
                "--pidfile=",
                "-n",
                "echolab",
                "--port",
                "0",
                "--lang",
                "ru",
                "--data-dir",
                os.path.join(directory, "data"),
            ],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=server_env(),
            timeout=TIMEOUT,
        )
        self.assertEqual(second.returncode, 1)
        self.assertIn(
            "уже использует другой сервер echolab", second.stdout + second.stderr
        )
        with open(
            os.path.join(directory, "data", "echolab.log"), encoding="utf-8"
        ) as f:
            log = f.read()
        self.assertIn("listening on 127.0.0.1:", log)
        self.assertNotIn("слушаю", log)
        self.assertIn("another echolab server is using", log)

    def test_server_help_in_russian(self):
        """
        twistd echolab --help follows the locale (and --lang).
        """
        import subprocess

        from .client_support import TIMEOUT, TWISTD, server_env

        env = server_env()
        env["LC_ALL"] = "ru_RU.UTF-8"
        result = subprocess.run(
            [TWISTD, "echolab", "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        text = " ".join(result.stdout.split())
        self.assertIn("Обслуживать протокол echolab", text)
        self.assertIn("Должно быть целым числом, 1-1000.", text)
        self.assertIn("Параметры:", result.stdout)
        self.assertIn("[по умолчанию: 1024]", text)
        english = subprocess.run(
            [TWISTD, "echolab", "--lang", "en", "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertIn("Serve the echolab protocol", english.stdout)


class WheelTests(SynchronousTestCase):
    def test_plain_install_translates(self):
        """
        What `pip install .` installs (the wheel built from this checkout)
        holds the compiled catalogs, and Russian works from it, with no
        Babel and no compiling at install time.
        """
        import subprocess
        import sys
        import zipfile

        from .client_support import TIMEOUT

        out = os.path.abspath(self.mktemp())
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT],
            capture_output=True,
            text=True,
            timeout=10 * TIMEOUT,
        )
        self.assertEqual(built.returncode, 0, built.stderr)
        [wheel] = os.listdir(out)
        installed = os.path.join(out, "site")
        with zipfile.ZipFile(os.path.join(out, wheel)) as archive:
            names = archive.namelist()
            archive.extractall(installed)
        for language in ("en", "ru"):
            self.assertIn(f"echotwist/locale/{language}/LC_MESSAGES/echolab.mo", names)
        script = (
            "from echotwist import i18n; i18n.install('ru'); "
            "assert i18n.LOCALE_DIR.startswith(%r), i18n.LOCALE_DIR; "
            "print(i18n._('Password:'))" % installed
        )
        ran = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                f"import sys; sys.path.insert(0, {installed!r}); {script}",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=out,
        )
        self.assertEqual((ran.returncode, ran.stdout), (0, "Пароль:\n"), ran.stderr)
