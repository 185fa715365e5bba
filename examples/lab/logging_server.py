"""
Step 2 (lab tasks 1 and 3): a server that keeps listening after a client
leaves, and writes what happens to a log file instead of the console.

    python logging_server.py 9090 server.log

Connect with echo_client.py (or `nc 127.0.0.1 9090`) several times: the
log shows each connection come and go, and the server stays up.
"""

import logging
import socket
import sys

log = logging.getLogger("echo")


def log_to(path):
    """
    Send service messages to the file C{path}. The logging module adds the
    time and level to each line, and appends to the file across restarts.
    The console stays for what a person running the server needs: which
    port it got.
    """
    logging.basicConfig(
        filename=path, level=logging.INFO, format="%(asctime)s %(message)s"
    )


def serve(conn, address):
    """
    Echo one client's bytes until it hangs up.
    """
    with conn:
        while True:
            try:
                data = conn.recv(1024)
            except ConnectionResetError:  # the client vanished abruptly
                break
            if not data:
                break
            conn.sendall(data)
            log.info("echoed %d bytes to %s:%d", len(data), *address)


def accept_forever(server, handle=serve):
    """
    Task 1: the difference from step 1 is this loop. After a client leaves,
    go back to accept() and wait for the next one. (One client at a time:
    the next waits in the listen queue. Step 7 serves several at once.)
    C{handle(conn, address)} talks to one client; later steps pass their
    own.
    """
    try:
        while True:
            conn, address = server.accept()
            log.info("connection from %s:%d", *address)
            handle(conn, address)
            log.info("disconnected %s:%d", *address)
    except KeyboardInterrupt:  # Ctrl-C stops the server
        log.info("server stopped")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9090
    log_to(sys.argv[2] if len(sys.argv) > 2 else "server.log")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        port = server.getsockname()[1]
        log.info("server started on port %d", port)
        print(f"listening on 127.0.0.1:{port}", flush=True)
        accept_forever(server)
