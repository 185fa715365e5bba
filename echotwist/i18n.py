# -*- test-case-name: tests.test_i18n -*-
"""
The language people read: English or Russian, from C{--lang} or the
locale (C{LC_ALL}, then C{LC_MESSAGES}, then C{LANG}, as POSIX orders
them), with standard gettext catalogs (domain C{echolab}) shipped in
C{echotwist/locale}. The log is not translated: only what a person reads
on the console or in a reply's C{text} goes through L{_}.

Strings are marked where they are written: C{_("...")} translates at
once (call it when the text is needed, never at import); C{N_("...")}
only marks a string kept in a table, translated where it is used.
"""

import gettext
import os

DOMAIN = "echolab"
LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
LANGUAGES = ("en", "ru")
"""The languages there are catalogs for; the first is the default."""

_translation = gettext.NullTranslations()
_language = "en"


def language_of(environ=None):
    """
    The language the locale asks for, one of L{LANGUAGES}: the first set
    of C{LC_ALL}, C{LC_MESSAGES}, C{LANG} (C{ru_RU.UTF-8} is Russian;
    C{C}, C{POSIX} and any language without a catalog are English).
    """
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            code = value.split(".")[0].split("@")[0].split("_")[0].lower()
            return code if code in LANGUAGES else LANGUAGES[0]
    return LANGUAGES[0]


def parse_language(text):
    """
    The C{--lang} option: C{en} or C{ru} (C{ru_RU.UTF-8} too).

    @raise ValueError: for a language there is no catalog for.
    """
    code = text.split(".")[0].split("_")[0].lower()
    if code not in LANGUAGES:
        raise ValueError(
            _("{text!r} is not one of: {choices}").format(
                text=text, choices=", ".join(LANGUAGES)
            )
        )
    return code


parse_language.doc = "One of: " + ", ".join(LANGUAGES) + "."


def install(language=None):
    """
    Use C{language} (default: the locale's) from now on.
    """
    global _translation, _language
    _language = language or language_of()
    if _language == LANGUAGES[0]:
        _translation = gettext.NullTranslations()
    else:
        _translation = gettext.translation(
            DOMAIN, LOCALE_DIR, languages=[_language], fallback=True
        )


def language():
    """The language in use."""
    return _language


def language_in(argv, environ=None):
    """
    The language a command line asks for with C{--lang X} or
    C{--lang=X}, else the locale's: known before the options are parsed,
    so that their errors and C{--help} are in it too.
    """
    for index, argument in enumerate(argv):
        if argument == "--lang" and index + 1 < len(argv):
            value = argv[index + 1]
        elif argument.startswith("--lang="):
            value = argument.partition("=")[2]
        else:
            continue
        try:
            return parse_language(value)
        except ValueError:
            break
    return language_of(environ)


def _(message):
    """
    C{message} in the language in use.
    """
    return _translation.gettext(message)


def N_(message):
    """
    Mark C{message} for the catalogs without translating it (a table
    entry, translated with L{_} where it is shown).
    """
    return message
