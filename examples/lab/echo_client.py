"""
Step 1: the raw echo pair, the client side.

It connects, sends one message, prints what comes back, and hangs up:

    python echo_client.py 9090
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9090
message = "hello, world!"

with socket.create_connection(("127.0.0.1", port)) as sock:
    data = message.encode("utf-8")  # sockets carry bytes, not str
    sock.sendall(data)
    # The echo is as long as what we sent, but recv may hand it over in
    # pieces (TCP keeps no message boundaries), so read until we have it
    # all. A single recv() works on a quiet loopback, and fails one day on
    # a real network.
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(1024)
        if not chunk:  # the server closed before echoing everything
            break
        received += chunk
    print("sent:    ", message)
    print("received:", received.decode("utf-8"))
