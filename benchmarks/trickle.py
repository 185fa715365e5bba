"""
What a frame trickled in small pieces costs the server: the measurement
behind echolab's framing (echotwist/framing.py) and its paced reads of
trickled frames (echotwist/flow.py).

    python benchmarks/trickle.py            # both parts, about a minute
    python benchmarks/trickle.py --quick

1. In process: CPU to receive one frame fed to dataReceived in pieces of
   1, 4, 16 and 64 bytes, by Twisted's Int32StringReceiver (which rebuilds
   its buffer on every read: quadratic) and by echolab's FrameReceiver
   (a bytearray: linear), for a 64 KiB frame and, in 64-byte pieces, a
   1 MiB one.
2. Over loopback: a client sends a 64 KiB say one byte per send, paced
   so that each byte arrives alone, to a real `twistd -n echolab`; the
   server's CPU time (from /proc) for the whole frame, with echolab's
   pacing of trickled frames and without it (patched out).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet.testing import StringTransport
from twisted.protocols.basic import Int32StringReceiver

from echotwist.framing import FrameReceiver
from echotwist.wire import HEADER


class TwistedReceiver(Int32StringReceiver):
    MAX_LENGTH = 2**24

    def stringReceived(self, payload):
        self.got = len(payload)


class LinearReceiver(FrameReceiver):
    MAX_LENGTH = 2**24

    def stringReceived(self, payload):
        self.got = len(payload)


def cpu_to_receive(receiver_class, frame, piece):
    receiver = receiver_class()
    receiver.makeConnection(StringTransport())
    pieces = [frame[i : i + piece] for i in range(0, len(frame), piece)]
    start = time.process_time()
    for p in pieces:
        receiver.dataReceived(p)
    spent = time.process_time() - start
    assert receiver.got == len(frame) - 4
    return spent


def in_process(quick):
    print("1. CPU to receive one frame fed in pieces (in process, best of 3)")
    print(
        f"{'frame':>8} {'piece':>6} {'Int32StringReceiver':>20} {'FrameReceiver':>14} {'ratio':>6}"
    )
    cases = [(65536, 1), (65536, 4), (65536, 16), (65536, 64), (1 << 20, 64)]
    if quick:
        cases = [(65536, 1), (65536, 64)]
    for size, piece in cases:
        frame = HEADER.pack(size) + b"x" * size
        twisted = min(cpu_to_receive(TwistedReceiver, frame, piece) for _ in range(3))
        linear = min(cpu_to_receive(LinearReceiver, frame, piece) for _ in range(3))
        print(
            f"{size:>8} {piece:>6} {twisted * 1000:>17.1f} ms {linear * 1000:>11.1f} ms"
            f" {twisted / linear:>5.1f}x"
        )


PACING_OFF = (
    "import sys, echotwist.flow as p; p.FREE_SMALL_READS = 10**9; "
    "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)
PACING_ON = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


def server_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trickle_over_tcp(code, size, gap):
    """
    Start a server (with C{code}), trickle one say of C{size} bytes of text
    at one byte per C{gap} seconds, return (server CPU s, wall s, echoed).
    """
    folder = tempfile.mkdtemp()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--pidfile=",
            "-n",
            "echolab",
            "--mode",
            "echo",
            "--port",
            "0",
            "--data-dir",
            os.path.join(folder, "data"),
            "--frame-timeout",
            "600",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = server.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1])
        payload = b'{"type":"say","text":"' + b"x" * size + b'"}'
        frame = HEADER.pack(len(payload)) + payload
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.recv(4096)  # the welcome
            before = server_cpu_seconds(server.pid)
            started = time.monotonic()
            for i in range(len(frame)):
                s.send(frame[i : i + 1])
                deadline = time.perf_counter() + gap
                while time.perf_counter() < deadline:
                    pass
            s.settimeout(30)
            echoed = b""
            while len(echoed) < len(payload):
                echoed += s.recv(1 << 20)
            wall = time.monotonic() - started
            cpu = server_cpu_seconds(server.pid) - before
        return cpu, wall, len(echoed) >= len(payload)
    finally:
        server.terminate()
        server.wait()


def over_loopback(quick):
    size = 16384 if quick else 65000  # a say just under the 64 KiB limit
    gap = 40e-6
    print()
    print(f"2. A {size:,}-byte say sent one byte per send, {gap * 1e6:.0f} us apart,")
    print("   to a real server (its CPU time from /proc)")
    for label, code in [("paced (echolab)", PACING_ON), ("not paced", PACING_OFF)]:
        cpu, wall, ok = trickle_over_tcp(code, size, gap)
        print(
            f"   {label:16s} server CPU {cpu * 1000:7.0f} ms   wall {wall:5.1f} s   echoed: {ok}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    in_process(args.quick)
    over_loopback(args.quick)
