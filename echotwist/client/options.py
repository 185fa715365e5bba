# -*- test-case-name: tests.test_client_options -*-
"""
The client's command line, and asking a person for what it left out
(lab task 2): the host and the port, with their defaults shown, checked by
the same parsers as the options (L{echotwist.prompts}).
"""

import os

from twisted.python import usage

from echotwist import __version__, prompts
from echotwist import messages as m
from echotwist.i18n import N_, _, parse_language
from echotwist.optionspec import one_line, translated_usage
from echotwist.client.ending import exit_statuses

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9090
DEFAULT_TIMEOUT = 10.0
MAX_RECONNECTS = 8
"""Tries after a lost connection with C{--reconnect}, before giving up."""
MAX_BACKOFF = 30.0
"""Seconds: the longest wait between two tries."""


def _parse_client_port(text):
    return prompts.parse_port(text, allow_zero=False)


def _parse_timeout(text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            _("{text!r} is not a number of seconds").format(text=text)
        ) from None
    if not 0.1 <= value <= 3600:
        raise ValueError(
            _("{text} is out of range (0.1-3600 seconds)").format(text=text)
        )
    return value


class Options(usage.Options):
    """
    C{echolab-client} options; see C{--help}. The help texts are marked
    for the catalogs here and translated when the options are made, in
    the language installed by then (L{echotwist.i18n.language_in}).
    """

    synopsis = N_("Usage: echolab-client [options]")
    longdesc = N_(
        "Talk to an echolab server: answer its questions, see every message "
        "it sends, and keep its login tokens like cookies. Host and port are "
        "asked for when not given and standard input is a terminal. A script "
        "(standard input not a terminal) gives its answers as options: "
        "--login or --name, and the password with --password-file or "
        "--password-fd, never in its lines, which are only ever said."
    )

    optParameters = [
        [
            "host",
            "H",
            None,
            N_("Server host name or IP address [default: {host}]."),
        ],
        ["port", "p", None, N_("Server TCP port, 1-65535 [default: {port}].")],
        [
            "profile",
            None,
            None,
            N_(
                "Token profile file [default: $XDG_CONFIG_HOME/echolab/profile.json, "
                "or ~/.config/echolab/profile.json]."
            ),
        ],
        [
            "ca",
            None,
            None,
            N_(
                "PEM file of the CA certificates that may sign the server's "
                "certificate (implies --tls) [default: the system's trust store]."
            ),
        ],
        ["login", None, None, N_("The login to answer the server with (auth mode).")],
        ["name", None, None, N_("The name to answer the server with (ident mode).")],
        [
            "password-file",
            None,
            None,
            N_("Read the password from the first line of this file."),
        ],
        [
            "password-fd",
            None,
            None,
            N_("Read the password from this open file descriptor (3 or more)."),
        ],
        [
            "timeout",
            None,
            None,
            N_(
                "Seconds to wait for the connection and for the server's welcome "
                "[default: {timeout}]."
            ),
        ],
        [
            "lang",
            None,
            None,
            N_(
                "Language of what is shown: en or ru "
                "[default: from LC_ALL, LC_MESSAGES or LANG]."
            ),
        ],
    ]
    optFlags = [
        [
            "tls",
            None,
            N_("Connect with TLS, verifying the server's certificate and name."),
        ],
        [
            "insecure",
            None,
            N_(
                "Allow a password or a token to go in clear text to a host that is "
                "not this machine (never needed with --tls or on loopback)."
            ),
        ],
        [
            "reconnect",
            None,
            N_(
                "When the connection is lost or the server ends the session, "
                "connect again (up to {tries} tries, waiting 1, 2, 4 ... "
                "up to {backoff} s) and log in with the saved token."
            ),
        ],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        values = {
            "host": DEFAULT_HOST,
            "port": DEFAULT_PORT,
            "tries": MAX_RECONNECTS,
            "backoff": f"{MAX_BACKOFF:g}",
            "timeout": f"{DEFAULT_TIMEOUT:g}",
        }
        self.docs = {
            name: _(one_line(doc)).format(**values) for name, doc in self.docs.items()
        }
        self.synopsis = _(self.synopsis)
        self.longdesc = _(self.longdesc) + " " + exit_statuses()

    def getUsage(self, width=None):
        return translated_usage(super().getUsage(width))

    def opt_version(self):
        """
        Show the version and exit.
        """
        N_("Show the version and exit.")
        N_("Display this help and exit.")
        print(f"echolab-client {__version__}")
        raise SystemExit(0)

    def postOptions(self):
        if self["host"] is not None:
            self["host"] = _checked("--host", prompts.parse_host, self["host"])
        if self["port"] is not None:
            self["port"] = _checked("--port", _parse_client_port, self["port"])
        self["timeout"] = _checked(
            "--timeout", _parse_timeout, self["timeout"] or str(DEFAULT_TIMEOUT)
        )
        if self["ca"] is not None:
            self["tls"] = True
        if self["password-fd"] is not None:
            self["password-fd"] = _checked(
                "--password-fd", _parse_descriptor, self["password-fd"]
            )
        if self["password-fd"] is not None and self["password-file"] is not None:
            raise usage.UsageError(_("give --password-file or --password-fd, not both"))
        if self["login"] is not None:
            self["login"] = _checked("--login", _parse_login, self["login"])
        if self["name"] is not None:
            self["name"] = _checked("--name", _parse_name, self["name"])
        if self["lang"] is not None:
            self["lang"] = _checked("--lang", parse_language, self["lang"])
        if self["profile"] is not None:
            self["profile"] = os.path.abspath(os.path.expanduser(self["profile"]))


def _parse_descriptor(text):
    if not (text.isascii() and text.isdigit()):
        raise ValueError(
            _("{text!r} is not a file descriptor number").format(text=text)
        )
    return int(text)


def _parse_login(text):
    why = m.check_login(text.strip())
    if why:
        raise ValueError(why)
    return text.strip()


def _parse_name(text):
    why = m.check_name(text.strip())
    if why:
        raise ValueError(why)
    return text.strip()


def _checked(option, parse, text):
    try:
        return parse(text)
    except ValueError as e:
        raise usage.UsageError(f"{option}: {e}") from None


def fill_in(options, interactive, read, write):
    """
    Give C{options} a host and a port: asked for (defaults shown, empty
    takes them, refused answers asked again) when standard input is a
    terminal, else the defaults, without reading any input.

    @param interactive: whether a person is there to ask.
    @param read: reads one line given a prompt; raises L{EOFError} at the
        end of input.
    @param write: shows one line.
    @raise EOFError: if the input ends before an answer.
    """
    if options["host"] is None:
        if interactive:
            options["host"] = prompts.ask(
                _("Server host"), DEFAULT_HOST, prompts.parse_host, read, write
            )
        else:
            options["host"] = DEFAULT_HOST
    if options["port"] is None:
        if interactive:
            options["port"] = prompts.ask(
                _("Server port"), DEFAULT_PORT, _parse_client_port, read, write
            )
        else:
            options["port"] = DEFAULT_PORT
