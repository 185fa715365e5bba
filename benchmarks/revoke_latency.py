#!/usr/bin/env python3
"""
How long an administrator's revocation takes to reach a running server:
from the moment C{echolab-admin revoke} says it is done (its line is
printed once the change is committed) to the first refusal of the revoked token, polled every 5 ms over loopback.

    .venv/bin/python benchmarks/revoke_latency.py [--rounds 10]

It starts its own server (twistd -n echolab --port 0, auth mode, the
cheapest password hash) in a temporary folder, and prints each round and
the median; the server polls for changes every half second, so the figures
should spread between 0 and about 0.5 s.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from echotwist.wire import MessageSocket

BIN = os.path.dirname(sys.executable)
PASSWORD = "correct horse battery"


def exchange(port, *messages):
    """
    Send C{messages} on a new connection (each after the server's ask),
    and return the last reply.
    """
    with MessageSocket.connect_to(("127.0.0.1", port), timeout=10) as s:
        reply = s.recv_message()  # welcome
        for message in messages:
            while reply["type"] != "ask":
                reply = s.recv_message()
            s.send_message(message)
            reply = s.recv_message()
        return reply


def log_in(port):
    ask = {"type": "answer", "field": "login", "value": "alice"}
    with MessageSocket.connect_to(("127.0.0.1", port), timeout=10) as s:
        s.recv_message(), s.recv_message()
        s.send_message(ask)
        field = s.recv_message()["field"]
        s.send_message({"type": "answer", "field": field, "value": PASSWORD})
        return s.recv_message()["token"]


def accepted(port, token):
    return exchange(port, {"type": "token", "token": token})["type"] == "auth_ok"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    data = tempfile.mkdtemp(prefix="echolab-revoke-")
    server = subprocess.Popen(
        [
            os.path.join(BIN, "twistd"),
            "--pidfile=",
            "-n",
            "echolab",
            "--port",
            "0",
            "--data-dir",
            data,
            "--hash-memory",
            "19456",
            "--hash-time",
            "2",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(re.search(r":(\d+)", server.stdout.readline()).group(1))
        delays = []
        for i in range(rounds):
            token = log_in(port)
            assert accepted(port, token)
            launched = time.monotonic()
            admin = subprocess.Popen(
                [os.path.join(BIN, "echolab-admin"), "-d", data, "revoke", "alice"],
                stdout=subprocess.PIPE,
                text=True,
            )
            admin.stdout.readline()  # printed once the revocation is committed
            committed = time.monotonic()
            while accepted(port, token):
                time.sleep(0.005)
            refused = time.monotonic()
            admin.wait()
            delays.append(refused - committed)
            print(
                f"round {i + 1}: refused {delays[-1] * 1000:.0f} ms after the "
                f"revocation was committed ({(refused - launched) * 1000:.0f} ms "
                "after echolab-admin was launched)"
            )
            time.sleep(0.137 * (i % 4))  # land at different points of the poll
        print(
            f"{rounds} rounds: median {statistics.median(delays) * 1000:.0f} ms, "
            f"min {min(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
