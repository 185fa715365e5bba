# -*- test-case-name: tests.test_tap -*-
"""
Settings declared once: a field of a settings dataclass says its own
command-line option (name, help, parser), and the option rows and the
values are made from the fields, so a setting cannot be added in one place
and forgotten in another.
"""

import dataclasses

from twisted.python import usage


def number(kind, lowest, highest=None, unit=""):
    """
    A parser for a number in bounds, and the help text describing them.
    """
    what = "a whole number" if kind is int else "a number"
    bounds = f"at least {lowest}" if highest is None else f"{lowest}-{highest}"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {what}") from None
        if (
            value != value
            or value < lowest
            or (highest is not None and value > highest)
        ):
            raise ValueError(f"{text} is out of range ({bounds}{unit})")
        return value

    parse.doc = f"Must be {what}, {bounds}{unit}."
    return parse


def choice(*choices):
    """
    A parser for one of C{choices}.
    """

    def parse(text):
        if text not in choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    return parse


SECONDS = number(float, 1, unit=" seconds")
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
    L{ValueError} into a one-line usage error naming the option.
    """
    if parse is None:
        return [name, short, default, doc]

    def coerce(text):
        try:
            return parse(text)
        except ValueError as e:
            raise usage.UsageError(f"--{name}: {e}") from None

    coerce.coerceDoc = getattr(parse, "doc", "")
    return [name, short, default, doc, coerce]


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
