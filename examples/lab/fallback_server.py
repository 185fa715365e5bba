"""
Step 4 (lab task 4): when the port asked for is taken, try the next ones,
and say on the console which port the server really got. With steps 2
and 3: it asks for the port, keeps listening, and logs to server.log.

    python fallback_server.py          # asks: Port [9090]:
    python fallback_server.py 9090     # or takes it from the command line
"""

import socket
import sys

from ask import ask, parse_port
from logging_server import accept_forever, log, log_to, serve

TRIES = 10


def listen_on_first_free(port, tries=TRIES, host="127.0.0.1", kind=socket.socket):
    """
    A listening socket (of the class C{kind}) on the first free port of
    C{port}, C{port} + 1, ... (C{tries} ports in all). Port 0 asks the
    kernel for any free one.
    """
    last = port if port == 0 else min(port + tries - 1, 65535)
    for candidate in range(port, last + 1):
        server = kind(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, candidate))
        except OSError as e:  # EADDRINUSE: another program has it
            server.close()
            log.info("port %d is taken (%s)", candidate, e.strerror)
            continue
        server.listen()
        return server
    # Every port taken: one line on the console, and a failure exit status,
    # so a script starting the server knows.
    raise SystemExit(f"Ports {port}-{last} are all taken; not starting.")


def port_from_command_line_or_ask(default=9090):
    """
    The port named on the command line, else asked for (step 3).
    """
    if len(sys.argv) > 1:
        try:
            return parse_port(sys.argv[1])
        except ValueError as e:
            raise SystemExit(f"{e}.") from None
    return ask("Port", default, parse_port)


def run(handle=None):
    """
    Ask for the port, listen on the first free one from it, say which, and
    serve clients one after another with C{handle(conn, address)} (step
    2's echo unless told otherwise). Steps 5 and 6 run their own C{handle}.
    """
    wanted = port_from_command_line_or_ask()
    log_to("server.log")
    with listen_on_first_free(wanted) as server:
        port = server.getsockname()[1]
        log.info("server started on port %d", port)
        # The person (or script) starting the server must learn the port
        # it got, since it may not be the one asked for. flush=True: when
        # the console is a pipe, print() would otherwise hold the line back
        # in a buffer.
        print(f"listening on 127.0.0.1:{port}", flush=True)
        accept_forever(server, handle or serve)


if __name__ == "__main__":
    run()
