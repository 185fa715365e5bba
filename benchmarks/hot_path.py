"""
CPU per message of the server's own code (framing, decoding, the session,
encoding, writing), in process, without sockets or the reactor: the part
of the cost echolab controls. Run: python benchmarks/hot_path.py

Each scenario feeds reads shaped like the load generator's (one 64-byte
say per read for ping-pong, 16 per read for pipelining, ...) to an echo
mode ServerProtocol whose transport only counts bytes. With --metrics,
the same with metrics on (docs/performance.md, "With metrics on").
"""

import time

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from echotwist.factory import EchoFactory
from echotwist.settings import Settings
from echotwist.wire import HEADER, encode_message


class CountingTransport:
    """
    The least a transport must do for the protocol: take bytes, and (as
    Twisted's does) hold them until the reactor's next write, here the end
    of each read.
    """

    disconnecting = False

    def __init__(self):
        self.written = 0
        self._pending = []

    def write(self, data):
        self._pending.append(data)

    def writeSequence(self, seq):
        self._pending.extend(seq)

    def flush(self):
        data = b"".join(self._pending)
        self._pending.clear()
        self.written += len(data)

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 9090)

    def registerProducer(self, producer, streaming):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


def frame(message):
    payload = encode_message(message)
    return HEADER.pack(len(payload)) + payload


SCENARIOS = [
    # name, text size, frames per read, reads
    ("ping-pong 64 B", 64, 1, 200_000),
    ("16 in flight, 64 B", 64, 16, 20_000),
    ("4 in flight, 16 KiB", 16384, 4, 5_000),
    ("ping-pong 60,000 B", 60000, 1, 5_000),
    ("ping-pong 60,000 B Cyrillic", 30000, 1, 5_000),
]


def run(name, size, per_read, reads, metrics=False):
    clock = Clock()
    factory = EchoFactory(Settings(mode="echo"), clock)
    if metrics:  # as --metrics makes it: metered connections and sessions
        from echotwist.metrics import ServerMetrics

        ServerMetrics(clock, "bench", "echo").watch(factory)
    protocol = factory.buildProtocol(None)
    transport = CountingTransport()
    protocol.makeConnection(transport)
    text = ("ж" if "Cyrillic" in name else "x") * size
    data = frame({"type": "say", "text": text}) * per_read
    received = protocol.dataReceived
    flush = transport.flush
    best = None
    for _ in range(3):
        start = time.process_time()
        for _ in range(reads):
            received(data)
            flush()
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    per_message = best / (reads * per_read)
    print(
        f"{name:30s} {per_message * 1e6:7.2f} us/message  {1 / per_message:12,.0f} messages/s"
    )


if __name__ == "__main__":
    import sys

    # --metrics: the same with metrics on; --only N: the Nth scenario alone.
    with_metrics = "--metrics" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    for i, scenario in enumerate(SCENARIOS):
        if only is None or int(only) == i:
            run(*scenario, metrics=with_metrics)
