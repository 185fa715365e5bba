# -*- test-case-name: tests.test_client_options -*-
"""
The client's command line, and asking a person for what it left out
(lab task 2): the host and the port, with their defaults shown, checked by
the same parsers as the options (L{echotwist.prompts}).
"""

import os

from twisted.python import usage

from echotwist import __version__, prompts

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9090
DEFAULT_TIMEOUT = 10.0


def _parse_client_port(text):
    return prompts.parse_port(text, allow_zero=False)


def _parse_timeout(text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise ValueError(f"{text} is out of range (0.1-3600 seconds)")
    return value


class Options(usage.Options):
    """
    C{echolab-client} options; see C{--help}.
    """

    synopsis = "Usage: echolab-client [options]"
    longdesc = (
        "Talk to an echolab server: answer its questions, see every message "
        "it sends, and keep its login tokens like cookies. Host and port are "
        "asked for when not given and standard input is a terminal."
    )

    optParameters = [
        [
            "host",
            "H",
            None,
            f"Server host name or IP address [default: {DEFAULT_HOST}].",
        ],
        ["port", "p", None, f"Server TCP port, 1-65535 [default: {DEFAULT_PORT}]."],
        [
            "profile",
            None,
            None,
            "Token profile file [default: $XDG_CONFIG_HOME/echolab/profile.json, "
            "or ~/.config/echolab/profile.json].",
        ],
        [
            "ca",
            None,
            None,
            "PEM file of the CA certificates that may sign the server's "
            "certificate (implies --tls) [default: the system's trust store].",
        ],
        [
            "timeout",
            None,
            str(DEFAULT_TIMEOUT),
            "Seconds to wait for the connection and for the server's welcome.",
        ],
    ]
    optFlags = [
        ["tls", None, "Connect with TLS, verifying the server's certificate and name."],
        [
            "insecure",
            None,
            "Allow a password or a token to go in clear text to a host that is "
            "not this machine (never needed with --tls or on loopback).",
        ],
    ]

    def opt_version(self):
        """
        Show the version and exit.
        """
        print(f"echolab-client {__version__}")
        raise SystemExit(0)

    def postOptions(self):
        if self["host"] is not None:
            self["host"] = _checked("--host", prompts.parse_host, self["host"])
        if self["port"] is not None:
            self["port"] = _checked("--port", _parse_client_port, self["port"])
        self["timeout"] = _checked("--timeout", _parse_timeout, self["timeout"])
        if self["ca"] is not None:
            self["tls"] = True
        if self["profile"] is not None:
            self["profile"] = os.path.abspath(os.path.expanduser(self["profile"]))


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
                "Server host", DEFAULT_HOST, prompts.parse_host, read, write
            )
        else:
            options["host"] = DEFAULT_HOST
    if options["port"] is None:
        if interactive:
            options["port"] = prompts.ask(
                "Server port", DEFAULT_PORT, _parse_client_port, read, write
            )
        else:
            options["port"] = DEFAULT_PORT
