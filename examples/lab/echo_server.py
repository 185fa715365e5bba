"""
Step 1: the raw echo pair (the lab's starting point), the server side.

It accepts one client, sends back whatever that client sends, and exits
when the client hangs up. Run it, then echo_client.py in another terminal:

    python echo_server.py 9090
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9090

# A TCP socket (SOCK_STREAM) over IPv4 (AF_INET). The `with` closes it for us.
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
    # Without SO_REUSEADDR, restarting the server right after it stopped
    # fails for a minute ("Address already in use"): the old connection's
    # address is still held by the kernel in its TIME_WAIT state.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # 127.0.0.1: only programs on this machine can connect. "" would listen
    # on every network interface, letting the whole network in.
    server.bind(("127.0.0.1", port))
    server.listen()
    print(f"listening on 127.0.0.1:{server.getsockname()[1]}", flush=True)

    # accept() waits for a client, and gives a NEW socket for talking to
    # it; `server` itself only ever accepts.
    conn, address = server.accept()
    print("connected:", address)
    with conn:
        while True:
            # recv(1024) returns AT MOST 1024 bytes: whatever has arrived so
            # far. TCP is a stream of bytes, not of messages: one send() on
            # the other side may arrive in pieces, several may arrive
            # together. An echo does not care: it sends back what it got.
            data = conn.recv(1024)
            if not data:  # b"": the client closed its side
                break
            # sendall, not send: send() may send only part of the data
            # when the kernel's buffer is full; sendall loops until all of
            # it has gone.
            conn.sendall(data)
    print("disconnected:", address)
