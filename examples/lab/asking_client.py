"""
Step 3 (lab task 2): a client that asks for the host and the port, with
defaults, and then sends each line typed to a raw echo server:

    python asking_client.py
    Host [127.0.0.1]:
    Port [9090]: 90x90
      '90x90' is not a port number. Try again.
    Port [9090]:
    > hello
    hello

An empty line (or Ctrl-D) ends the conversation.
"""

import socket

from ask import ask, parse_host, parse_port, typed_lines

host = ask("Host", "127.0.0.1", parse_host)
port = ask("Port", 9090, parse_port)

try:
    sock = socket.create_connection((host, port), timeout=10)
except OSError as e:  # refused, unreachable, timed out: say it in one line
    raise SystemExit(f"Cannot connect to {host}:{port}: {e.strerror or e}") from None

with sock:
    for line in typed_lines():
        data = (line + "\n").encode("utf-8")
        sock.sendall(data)
        # As in step 1: read until the whole echo is back, however TCP
        # splits it.
        echo = b""
        while len(echo) < len(data):
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("The server closed the connection.")
            echo += chunk
        print(echo.decode("utf-8"), end="")
