# -*- test-case-name: tests.test_tap -*-
"""
Settings declared once: a field of a settings dataclass says its own
command-line option (name, help, parser), and the option rows and the
values are made from the fields, so a setting cannot be added in one place
and forgotten in another.
"""

import dataclasses
import re

from twisted.python import usage

from echotwist.i18n import N_, _, parse_language


def number(kind, lowest, highest=None, unit=""):
    """
    A parser for a number in bounds, and the help text describing them.
    """
    what = N_("a whole number") if kind is int else N_("a number")

    def bounds():
        if highest is None:
            return _("at least {lowest}").format(lowest=lowest) + (
                _(unit) if unit else ""
            )
        return f"{lowest}-{highest}" + (_(unit) if unit else "")

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(
                _("{text!r} is not {what}").format(text=text, what=_(what))
            ) from None
        if (
            value != value
            or value < lowest
            or (highest is not None and value > highest)
        ):
            raise ValueError(
                _("{text} is out of range ({bounds})").format(
                    text=text, bounds=bounds()
                )
            )
        return value

    def describe():
        return _("Must be {what}, {bounds}.").format(what=_(what), bounds=bounds())

    parse.describe = describe
    return parse


def choice(*choices):
    """
    A parser for one of C{choices}.
    """

    def parse(text):
        if text not in choices:
            raise ValueError(
                _("{text!r} is not one of: {choices}").format(
                    text=text, choices=", ".join(choices)
                )
            )
        return text

    return parse


SECONDS = number(float, 1, unit=N_(" seconds"))
LANGUAGE = parse_language
"""C{--lang}: the language of the console and of the replies' texts."""
COUNT = number(int, 1)


def setting(default, option, doc, parse=None, short=None):
    """
    A dataclass field that is also the command-line option C{--option}.

    @param parse: turns the option's text into the value, raising
        L{ValueError} with a reason for a person; L{None}: kept as text.
    """
    return dataclasses.field(
        default=default,
        metadata={"option": option, "doc": doc, "parse": parse, "short": short},
    )


def option_row(name, default, doc, parse=None, short=None):
    """
    A row of L{usage.Options.optParameters} whose coercer turns a
    L{ValueError} into a one-line usage error naming the option. What
    the parser accepts (its C{describe}) is added to the help by
    L{translated_docs}, in the language in use.
    """
    if parse is None:
        return [name, short, default, doc]

    def coerce(text):
        try:
            return parse(text)
        except ValueError as e:
            raise usage.UsageError(f"--{name}: {e}") from None

    coerce.describe = getattr(parse, "describe", None)
    return [name, short, default, doc, coerce]


def one_line(text):
    """C{text} (a docstring) on one line, as the catalogs have it."""
    return " ".join(text.split())


_DEFAULT = re.compile(r"\[default:(\s+)([^\]]*)\]")


def translated_usage(text):
    """
    C{--help} (from L{usage.Options.getUsage}) with the words Twisted
    adds to it, the C{Options:} heading and each C{[default: ...]}, in the
    language in use.
    """
    text = re.sub(r"(?m)^Options:$", lambda found: _("Options:"), text)
    return _DEFAULT.sub(
        lambda found: _("[default:{space}{value}]").format(
            space=found.group(1), value=found.group(2)
        ),
        text,
    )


def translated_docs(docs, rows):
    """
    The help texts C{docs} (of L{usage.Options}) in the language in use,
    each with what its option accepts.

    @param rows: the options' C{optParameters}.
    """
    translated = {name: _(one_line(doc)) for name, doc in docs.items()}
    for row in rows:
        describe = getattr(row[4], "describe", None) if len(row) > 4 else None
        if describe is not None:
            translated[row[0]] += " " + describe()
    return translated


def _declared(cls):
    return [f for f in dataclasses.fields(cls) if "option" in f.metadata]


def option_rows(cls):
    """
    The option rows of the settings dataclass C{cls}, in field order.
    """
    return [
        option_row(
            f.metadata["option"],
            f.default,
            f.metadata["doc"],
            f.metadata["parse"],
            f.metadata["short"],
        )
        for f in _declared(cls)
    ]


def from_options(cls, options):
    """
    An instance of the settings dataclass C{cls} from parsed C{options}.
    """
    return cls(**{f.name: options[f.metadata["option"]] for f in _declared(cls)})
