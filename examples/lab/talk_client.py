"""
The client of steps 5 and 6: it answers the server's questions, keeps the
token a server gives it, and then sends each line typed and prints its
echo.

    python talk_client.py                  # asks for the host and port
    python talk_client.py 127.0.0.1 9090

Tokens are kept in tokens-client.json, one per server ("host:port"). A
token is a secret that one server issued: sent to another server, it
would hand that server (or whoever runs it) the key to our account on
the first. So a client only ever shows a server the token that server
gave it.
"""

import getpass
import socket
import sys

from ask import ask, parse_host, parse_port, typed_lines
from ident_server import MAX_LINE, load, save

TOKENS = "tokens-client.json"


def ask_secret(prompt):
    # getpass hides what is typed, but only a terminal can hide it; when
    # the answers come from a pipe (a test, a script) read them plainly.
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return input(prompt)


def main():
    if len(sys.argv) > 2:
        host, port = parse_host(sys.argv[1]), parse_port(sys.argv[2])
    else:
        host = ask("Host", "127.0.0.1", parse_host)
        port = ask("Port", 9090, parse_port)
    server = f"{host}:{port}"
    try:
        conn = socket.create_connection((host, port), timeout=30)
    except OSError as e:
        raise SystemExit(f"Cannot connect to {server}: {e.strerror or e}") from None
    with conn, conn.makefile("rwb") as stream:

        def send(line):
            stream.write(f"{line}\n".encode("utf-8"))
            stream.flush()

        def receive():
            line = stream.readline(MAX_LINE + 1)
            if not line:
                raise SystemExit("The server closed the connection.")
            return line.decode("utf-8", errors="replace").rstrip("\r\n")

        # The conversation, until the server says "ok".
        while True:
            line = receive()
            kind, _, text = line.partition(" ")
            if kind == "token?":
                send(load(TOKENS).get(server, ""))
            elif kind == "token":
                tokens = load(TOKENS)
                tokens[server] = text
                save(TOKENS, tokens)
            elif kind == "?":
                send(input(text + " "))
            elif kind == "*":
                send(ask_secret(text + " "))
            elif kind == "!":
                print(text)
            elif kind == "ok":
                print(text)
                break
        # The echo: one line out, one line back.
        for line in typed_lines():
            send(line)
            print(receive())


if __name__ == "__main__":
    main()
