# -*- test-case-name: tests.test_client_prompts -*-
"""
Safe interactive input (lab task 2): ask for a value showing its default,
take the default on an empty answer, and ask again with a one-line reason
when the answer is refused. Shared by the server and the client, which
validate options with the same parsers and write addresses the same way.
"""

import ipaddress
import re
import socket

from echotwist.i18n import _


def parse_port(text, allow_zero=True):
    """
    A TCP port number: plain decimal digits, 1..65535 (or 0, "any free
    port", where C{allow_zero}).

    @raise ValueError: with a reason for a person.
    """
    text = text.strip()
    lowest = 0 if allow_zero else 1
    if not (text.isascii() and text.isdigit()):
        raise ValueError(
            _("{text!r} is not a port number (a whole number {lowest}-65535)").format(
                text=text, lowest=lowest
            )
        )
    port = int(text)
    if not lowest <= port <= 65535:
        raise ValueError(
            _("port {port} is out of range ({lowest}-65535)").format(
                port=port, lowest=lowest
            )
        )
    return port


def parse_interface(text):
    """
    An IP address to listen on, IPv4 or IPv6.

    @raise ValueError: with a reason for a person.
    """
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(
            _("{text!r} is not an IPv4 or IPv6 address").format(text=text)
        ) from None


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def parse_host(text, resolve=True, getaddrinfo=socket.getaddrinfo):
    """
    A host to connect to: an IPv4 or IPv6 address (C{::1}, or C{[::1]} as
    in URLs) or a host name that resolves.

    @param resolve: whether a host name must resolve (an address always
        stands for itself).
    @param getaddrinfo: L{socket.getaddrinfo}, replaced in tests.
    @return: the host, addresses without brackets, names in lower case.
    @raise ValueError: with a reason for a person.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(_("the host is empty"))
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not (host.isascii() and _HOST_NAME.fullmatch(host)):
        raise ValueError(
            _("{host!r} is not a host name or an IP address").format(host=host)
        )
    host = host.lower()
    if resolve:
        try:
            getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise ValueError(
                _("cannot resolve {host!r} ({reason})").format(host=host, reason=reason)
            ) from None
    return host


def format_address(host, port):
    """
    C{host:port}, an IPv6 address in brackets (C{[::1]:9090}).
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ask(question, default, parse, read=input, write=print):
    """
    Ask until the answer parses.

    @param question: what to ask, without the default.
    @param default: the value an empty answer takes, shown in brackets.
    @param parse: turns the answer into a value, or raises L{ValueError}
        with a one-line reason.
    @param read: reads one line given a prompt (L{input}); raises
        L{EOFError} at end of input.
    @param write: shows a line to the person.
    @return: the parsed value.
    @raise EOFError: when input ends before a good answer.
    """
    while True:
        answer = read(f"{question} [{default}]: ")
        if not answer.strip():
            return parse(str(default))
        try:
            return parse(answer)
        except ValueError as e:
            write(
                "  "
                + _("{why}; try again (empty for {default}).").format(
                    why=e, default=default
                )
            )
