"""
Step 7 (lab task 7): messages with a length header, through the helpers
of echotwist.wire.MessageSocket, and several clients served at once. From
here on the examples speak echolab's protocol (docs/protocol.md).

Why the header? TCP delivers a stream of bytes, not messages: what one
send() wrote may arrive over several recv()s, and two messages may arrive
in one. Steps 5 and 6 ended a message with a newline, which fails as soon
as a message holds one. A length said first (4 bytes, then the payload,
a JSON object) tells the reader how many bytes to wait for, whatever they
hold, and a length over the limit is refused before any of it is read.

    python framed_server.py 9090
    echolab-client --host 127.0.0.1 --port 9090
"""

import importlib.metadata
import socket
import threading

from echotwist.wire import FrameError, MessageSocket, decode_message
from fallback_server import listen_on_first_free, port_from_command_line_or_ask
from logging_server import log, log_to

MAX_MESSAGE = 65536  # the largest payload we accept, told in the welcome
IDLE_SECONDS = 300  # a client silent this long is closed
MAX_CLIENTS = 1000  # threads cost memory: more clients than this get "busy"
# What each client message must hold: member name and JSON type.
MEMBERS = {"say": {"text": str}, "answer": {"field": str, "value": str},
           "token": {"token": str}, "logout": {}, "quit": {}}  # fmt: skip


def error(code, text):
    return {"type": "error", "code": code, "text": text}


def bye(text):
    return {"type": "bye", "text": text}


def malformed(message):
    """Why a message is not well formed, or None. (type(x) is int, not
    isinstance: in Python, True is an int too.)"""
    members = MEMBERS.get(message["type"])
    if members is None:
        return f"unknown message type {message['type']!r}"
    for name, kind in members.items():
        if type(message.get(name)) is not kind:
            return f"{name!r} must be a {kind.__name__}"
    if message["type"] == "say" and type(message.get("repeat", 1)) is not int:
        return "'repeat' must be an integer"
    return None


class EchoSession:
    """
    What one client's messages mean: in echo mode, a say gets its echo.
    Step 8 makes say answer with several echoes, and modes_server.py adds
    the questions of steps 5 and 6 (ident and auth modes).
    """

    mode = "echo"

    def __init__(self, conn, address):
        self.conn, self.address = conn, address

    def start(self):
        """After the welcome: echo mode asks nothing."""

    def refuse(self, code, text):
        self.conn.send_message(error(code, text))

    def handle(self, message):
        """Answer one well-formed message other than quit; False: close."""
        if message["type"] == "say":
            self.say(message)
        else:  # answer, token, logout: well formed, but nothing is asked
            self.refuse("bad_state", f"{message['type']!r} is not expected now")
        return True

    def say(self, message):
        self.conn.send_message({"type": "echo", "text": message["text"]})


def close_gently(conn):
    """
    Close after an error, so that the error arrives. Closing a socket whose
    peer's data we have not read makes the kernel send a reset (RST), which
    can destroy the error still on its way. So: close our sending side,
    read and throw away what still comes for a moment, then close.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(2)
        while conn.recv(65536):
            pass
    except OSError:
        pass


def serve(conn, address, session_class=EchoSession):
    conn.max_frame = MAX_MESSAGE  # recv_bytes refuses longer frames unread
    conn.settimeout(IDLE_SECONDS)
    session = session_class(conn, address)
    version = importlib.metadata.version("echolab")
    conn.send_message(
        {"type": "welcome", "server": "echolab", "version": version,
         "mode": session.mode, "max_message": MAX_MESSAGE}
    )  # fmt: skip
    session.start()
    while True:
        try:
            payload = conn.recv_bytes()  # a whole frame, however it arrives
        except EOFError:  # the client left (maybe in mid-frame)
            return
        except FrameError as e:  # the header announced too much
            conn.send_message(error("too_large", str(e)))
            return close_gently(conn)
        except TimeoutError:
            conn.send_message(error("timeout", "idle for too long"))
            conn.send_message(bye("Timed out; closing."))
            return close_gently(conn)
        try:
            message = decode_message(payload) if payload else None
        except FrameError as e:  # not UTF-8, not JSON, no string "type"
            message, complaint = None, str(e)
        else:
            complaint = "empty message" if message is None else malformed(message)
        # The protocol's order: first whether a message is well formed, then
        # (in the session) whether it is allowed now, then its values.
        if complaint is not None:
            session.refuse("bad_message", complaint)
        elif message["type"] == "quit":
            conn.send_message(bye("Goodbye."))
            return close_gently(conn)
        elif not session.handle(message):
            return close_gently(conn)


def client_thread(conn, address, slots, session_class):
    """One thread per client: a slow client does not hold up the others."""
    log.info("connection from %s:%d", *address)
    try:
        with conn:
            serve(conn, address, session_class)
    except OSError as e:  # reset, broken pipe: the client is gone
        log.info("lost %s:%d: %s", *address, e)
    finally:
        slots.release()
        log.info("disconnected %s:%d", *address)


def run(session_class=EchoSession):
    wanted = port_from_command_line_or_ask()
    log_to("server.log")
    slots = threading.BoundedSemaphore(MAX_CLIENTS)
    # A listening MessageSocket accepts MessageSockets.
    with listen_on_first_free(wanted, kind=MessageSocket) as server:
        print(f"listening on 127.0.0.1:{server.getsockname()[1]}", flush=True)
        while True:
            conn, address = server.accept()
            if not slots.acquire(blocking=False):
                conn.send_message(error("busy", "too many connections"))
                conn.send_message(bye("Server busy; try later."))
                close_gently(conn)
                conn.close()
                continue
            args = (conn, address, slots, session_class)
            threading.Thread(target=client_thread, args=args, daemon=True).start()


if __name__ == "__main__":
    run()
