"""Echo-mode peer: one thread per connection, blocking sockets.

The usual lab answer: accept in a loop, start a thread that reads a frame
with a recv-exactly loop, answers with sendall, and repeats.  No pools, no
tuning.
"""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _echo  # noqa: E402


def recv_exactly(sock, n):
    """n bytes, or None if the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def serve(sock):
    with sock:
        try:
            sock.sendall(_echo.frame(_echo.WELCOME))
            while True:
                head = recv_exactly(sock, 4)
                if head is None:
                    return
                n = int.from_bytes(head, "big")
                if n > _echo.MAX_MESSAGE:
                    sock.sendall(_echo.frame(_echo.TOO_LARGE))
                    return
                payload = recv_exactly(sock, n)
                if payload is None:
                    return
                frames, close = _echo.replies(payload)
                sock.sendall(b"".join(_echo.frame(f) for f in frames))
                if close:
                    return
        except OSError:
            pass


def main():
    args = _echo.parse_args(__doc__)
    _echo.raise_fd_limit()
    listener = socket.create_server((args.interface, args.port))
    _echo.announce(args.interface, listener.getsockname()[1])
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
