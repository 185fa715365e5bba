# -*- test-case-name: tests.test_prompts -*-
"""
Safe interactive input (lab task 2): ask for a value showing its default,
take the default on an empty answer, and ask again with a one-line reason
when the answer is refused. Shared by the server and the client, which
validate options with the same parsers.
"""

import ipaddress


def parse_port(text, allow_zero=True):
    """
    A TCP port number: plain decimal digits, 1..65535 (or 0, "any free
    port", where C{allow_zero}).

    @raise ValueError: with a reason for a person.
    """
    text = text.strip()
    lowest = 0 if allow_zero else 1
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a port number (a whole number {lowest}-65535)")
    port = int(text)
    if not lowest <= port <= 65535:
        raise ValueError(f"port {port} is out of range ({lowest}-65535)")
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
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


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
            write(f"  {e}; try again (empty for {default}).")
