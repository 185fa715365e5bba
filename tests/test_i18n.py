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
    command does (babel.cfg, keyword N_).
    """
    catalog("en")
    keywords = {"_": None, "N_": None}
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
