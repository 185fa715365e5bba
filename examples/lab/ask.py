"""
Step 3 (lab task 2): safe input with defaults.

A program that asks a person for a value must survive any answer: an empty
line (take the default), garbage (say what is wrong and ask again), the
end of input (Ctrl-D: give up cleanly, not with a traceback). These
helpers do that once, for the host and the port; every later step uses
them.
"""

import ipaddress
import socket


def ask(prompt, default, parse):
    """
    Ask for a value until C{parse} accepts the answer; an empty answer
    takes C{default}. C{parse} turns the text into the value, or raises
    ValueError with a reason a person can read.
    """
    while True:
        try:
            text = input(f"{prompt} [{default}]: ").strip()
        except EOFError:  # Ctrl-D, or the end of a piped file
            print()
            raise SystemExit("No answer; stopping.") from None
        if not text:
            return default
        try:
            return parse(text)
        except ValueError as e:
            print(f"  {e}. Try again.")


def parse_port(text):
    """
    A TCP port: a whole number from 0 to 65535 (0: any free port).
    """
    if not text.isdigit():  # int() would also take " 7", "+7" and "٧"
        raise ValueError(f"{text!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ValueError(f"{port} is over 65535, the largest port")
    return port


def parse_host(text):
    """
    A host: an IP address, or a name that resolves to one.
    """
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    try:
        socket.getaddrinfo(text, None)
    except (socket.gaierror, UnicodeError):
        raise ValueError(f"{text!r} is not a known host name") from None
    return text


def typed_lines(prompt="> "):
    """
    The lines a person types, until an empty line or the end of input.
    """
    while True:
        try:
            line = input(prompt)
        except EOFError:
            return
        if not line:
            return
        yield line
