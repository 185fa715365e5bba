"""
Step 7 (lab task 7): a client speaking frames through
echotwist.wire.MessageSocket, a socket.socket with send_message and
recv_message. It works against echolab itself in every mode (it answers
the questions ident and auth modes ask) and against step 7's and 8's
servers:

    python framed_client.py 127.0.0.1 9090
    > hello
    hello

An empty line (or Ctrl-D) sends "quit".
"""

import sys

from ask import ask, parse_host, parse_port, typed_lines
from echotwist.wire import MessageSocket
from talk_client import ask_secret


def connect():
    """
    A MessageSocket connected to the server named on the command line (or
    asked for), after the server's first message, its welcome.
    """
    if len(sys.argv) > 2:
        host, port = parse_host(sys.argv[1]), parse_port(sys.argv[2])
    else:
        host = ask("Host", "127.0.0.1", parse_host)
        port = ask("Port", 9090, parse_port)
    try:
        sock = MessageSocket.connect_to((host, port), timeout=30)
    except OSError as e:
        raise SystemExit(
            f"Cannot connect to {host}:{port}: {e.strerror or e}"
        ) from None
    welcome = sock.recv_message()  # a whole frame, however TCP splits it
    print(
        f"Connected to {welcome['server']} {welcome['version']}, {welcome['mode']} mode"
    )
    return sock, welcome["mode"]


def log_in(sock, mode):
    """
    In ident and auth modes, answer the server's questions ("ask") until it
    greets us; in echo mode there are none.
    """
    while mode != "echo":
        message = sock.recv_message()
        kind = message["type"]
        if kind == "ask":
            read = ask_secret if message["secret"] else input
            value = read(message["text"] + " ")
            sock.send_message(
                {"type": "answer", "field": message["field"], "value": value}
            )
        elif kind == "greet":
            print(message["text"])
            return
        elif kind == "error":
            print("Refused:", message["text"])
        elif kind == "bye":
            raise SystemExit(message["text"])


def say_once(sock, text):
    sock.send_message({"type": "say", "text": text})
    reply = sock.recv_message()
    print(reply["text"] if reply["type"] == "echo" else f"Refused: {reply['text']}")


def main(say=say_once):
    """
    Connect, log in if asked to, then C{say} each line typed (step 8
    passes its own C{say}); an empty line says goodbye.
    """
    sock, mode = connect()
    with sock:
        log_in(sock, mode)
        for text in typed_lines():
            say(sock, text)
        sock.send_message({"type": "quit"})
        print(sock.recv_message()["text"])  # the server's bye


if __name__ == "__main__":
    main()
