"""Echo-mode message logic shared by the Python peers.

Why shared: the peers differ only in their I/O model (Twisted, asyncio
streams/protocol, uvloop, threads), so the JSON work is the same code in
each and the comparison measures the I/O model, not the message handling.
It does real work on every message: stdlib json decode, member checks,
json encode with ensure_ascii=False and compact separators, as the echolab
server does.
"""
import argparse
import json
import resource

MAX_MESSAGE = 65536


def encode(obj):
    """One payload: compact UTF-8 JSON without \\u escapes."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def frame(payload):
    """A frame: 4-byte big-endian length, then the payload."""
    return len(payload).to_bytes(4, "big") + payload


def error(code, text):
    return encode({"type": "error", "code": code, "text": text})


WELCOME = encode({"type": "welcome", "server": "echolab", "version": "0",
                  "mode": "echo", "max_message": MAX_MESSAGE})
TOO_LARGE = error("too_large", "frame over max_message")
BYE = encode({"type": "bye", "text": "bye"})


def replies(payload):
    """Answers one received payload: returns (reply payloads, close_after)."""
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return [error("bad_message", "not UTF-8 JSON")], False
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return [error("bad_message", "not an object with a string type")], False
    kind = msg["type"]
    if kind == "say":
        text = msg.get("text")
        repeat = msg.get("repeat", 1)
        if not isinstance(text, str) or type(repeat) is not int:
            return [error("bad_message", "say needs a string text, an int repeat")], False
        if not 1 <= repeat <= 100:
            return [error("bad_value", "repeat must be 1..100")], False
        if repeat == 1:
            return [encode({"type": "echo", "text": text})], False
        return [encode({"type": "echo", "text": text, "n": i, "of": repeat})
                for i in range(1, repeat + 1)], False
    if kind == "quit":
        return [BYE], True
    if kind in ("answer", "token", "logout"):
        return [error("bad_state", "not in echo mode")], False
    return [error("bad_message", "unknown type")], False


def parse_args(description, uvloop_flag=False):
    """--port (0 = any free port) and --interface, as every peer takes."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--interface", default="127.0.0.1")
    if uvloop_flag:
        ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    return ap.parse_args()


def raise_fd_limit():
    """Thousands of connections need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def announce(host, port):
    """The line run.py (and the echolab contract) waits for."""
    print(f"listening on {host}:{port}", flush=True)
