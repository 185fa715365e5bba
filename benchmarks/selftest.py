#!/usr/bin/env python3
"""Checks the benchmark tools themselves, in about half a minute.

    python benchmarks/selftest.py [--peer-python PATH]

Why: a benchmark is only worth its honesty.  This checks that
- every echo peer speaks the echo-mode contract (welcome, echo, repeat with
  n/of, non-ASCII text, split and coalesced frames, bad_message, bad_value,
  quit/bye), so none of them is a byte echoer that would flatter itself;
- the load generator really fails on wrong replies (a byte echo, a changed
  letter, replies out of order, a zero-length frame, a swapped type);
- it measures a server's CPU share (the headroom check relies on it);
- the CPU-distance probe measures, and far runs are told from near ones;
- the auth flows run against the auth stub.
It ends with 'N passed, M failed' and exits non-zero on any failure.
"""
import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run  # noqa: E402  (compile_tools, paths)

PASSED, FAILED = [], []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}", flush=True)


def start(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    m = re.search(rb"listening on \S+:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"{cmd} printed {line!r}")
    return proc, int(m.group(1))


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        payload = json.dumps(obj, ensure_ascii=False).encode()
        self.send_raw(struct.pack("!I", len(payload)) + payload)

    def exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def recv(self):
        (n,) = struct.unpack("!I", self.exact(4))
        return json.loads(self.exact(n).decode("utf-8"))

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True


def say(text, **extra):
    return {"type": "say", "text": text, **extra}


def check_peer(name, cmd):
    proc, port = start(cmd)
    try:
        c = Client(port)
        w = c.recv()
        check(f"{name}: welcome", w == {"type": "welcome", "server": "echolab", "version": "0",
                                        "mode": "echo", "max_message": 65536}, str(w))
        c.send(say("hello"))
        r = c.recv()
        check(f"{name}: echo", r == {"type": "echo", "text": "hello"}, str(r))
        c.send(say("rép", repeat=3))
        got = [c.recv() for _ in range(3)]
        want = [{"type": "echo", "text": "rép", "n": i, "of": 3} for i in (1, 2, 3)]
        check(f"{name}: repeat 3 with n/of", got == want, str(got))
        text = "héllo ✓ 🙂 \"quoted\" \\ tab\t"
        c.send(say(text))
        r = c.recv()
        check(f"{name}: non-ASCII and escaped text", r.get("text") == text, str(r))
        frames = b"".join(struct.pack("!I", len(p)) + p for p in
                          (json.dumps(say(f"m{i}")).encode() for i in range(5)))
        c.send_raw(frames)
        got = [c.recv()["text"] for _ in range(5)]
        check(f"{name}: coalesced frames answered in order", got == [f"m{i}" for i in range(5)],
              str(got))
        payload = json.dumps(say("split")).encode()
        for b in struct.pack("!I", len(payload)) + payload:
            c.send_raw(bytes([b]))
            time.sleep(0.001)
        r = c.recv()
        check(f"{name}: frame split byte by byte", r.get("text") == "split", str(r))
        c.send_raw(struct.pack("!I", 5) + b"{nope")
        r = c.recv()
        check(f"{name}: bad JSON -> bad_message", r.get("code") == "bad_message", str(r))
        c.send(say("x", repeat="3"))
        r = c.recv()
        check(f"{name}: string repeat -> bad_message", r.get("code") == "bad_message", str(r))
        c.send(say("x", repeat=0))
        r = c.recv()
        check(f"{name}: repeat 0 -> bad_value", r.get("code") == "bad_value", str(r))
        c.send({"type": "quit"})
        r = c.recv()
        check(f"{name}: quit -> bye and close", r.get("type") == "bye" and c.closed(), str(r))
    except (OSError, ValueError, ConnectionError) as exc:
        check(f"{name}: conversation", False, repr(exc))
    finally:
        proc.kill()
        proc.wait()


class Liar(threading.Thread):
    """A server that answers wrongly in one chosen way."""

    def __init__(self, how):
        super().__init__(daemon=True)
        self.how = how
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self):
        conn, _ = self.listener.accept()
        welcome = json.dumps({"type": "welcome", "server": "echolab", "version": "0",
                              "mode": "echo", "max_message": 65536}).encode()
        conn.sendall(struct.pack("!I", len(welcome)) + welcome)
        rfile = conn.makefile("rb")
        held = None
        try:
            for i in range(10 ** 9):
                (n,) = struct.unpack("!I", rfile.read(4))
                msg = json.loads(rfile.read(n))
                reply = {"type": "echo", "text": msg["text"]}
                if self.how == "byte echo":
                    out = json.dumps(msg).encode()
                elif self.how == "changed letter" and i == 50:
                    out = json.dumps({**reply, "text": "Z" + msg["text"][1:]}).encode()
                elif self.how == "zero-length frame" and i == 50:
                    out = b""
                elif self.how == "out of order" and i in (50, 51):
                    if i == 50:
                        held = json.dumps(reply).encode()
                        continue
                    out = json.dumps(reply).encode()
                    conn.sendall(struct.pack("!I", len(out)) + out)
                    out = held
                else:
                    # spacing and key order differ from the loadgen's own: fine
                    out = json.dumps({"text": msg["text"], "type": "echo"}, indent=1).encode()
                conn.sendall(struct.pack("!I", len(out)) + out)
        except (OSError, struct.error):
            pass


def check_loadgen_catches(how, should_fail=True):
    liar = Liar(how)
    liar.start()
    proc = subprocess.run([str(run.BIN / "loadgen"), "pipeline", "--port", str(liar.port),
                           "--depth", "2", "--duration", "0.5", "--warmup", "0", "--no-spin"],
                          capture_output=True, text=True, timeout=30)
    if should_fail:
        check(f"loadgen rejects a server with a {how}",
              proc.returncode == 1 and "BAD REPLY" in proc.stderr,
              f"exit {proc.returncode}, stderr {proc.stderr[-300:]!r}")
    else:
        check(f"loadgen accepts {how}", proc.returncode == 0, proc.stderr[-300:])


def check_server_cpu():
    """The server CPU share the headroom check relies on: a busy-polling peer
    uses a whole CPU."""
    proc, port = start([str(run.BIN / "c_epoll"), "--port", "0", "--spin"])
    try:
        r = subprocess.run([str(run.BIN / "loadgen"), "pipeline", "--port", str(port),
                            "--duration", "1", "--warmup", "0.2", "--no-spin",
                            "--server-pid", str(proc.pid)],
                           capture_output=True, text=True, timeout=30)
        share = (run.last_json(r.stdout) or {}).get("server_cpu")
        check("loadgen reports a busy-polling server's CPU share as about 1",
              share is not None and 0.85 <= share <= 1.1, f"{share!r} {r.stderr[-300:]}")
    finally:
        proc.kill()
        proc.wait()


def check_core_distance():
    """corelat gives a plausible round trip between the two pinned CPUs, and
    a run is flagged only when its CPUs were far apart."""
    ctx = run.Context()
    *_, ctx.cpu_pair = run.pinning()
    if not ctx.cpu_pair:
        check("corelat (skipped: no two CPUs to pin)", True)
        return
    rtt = run.core_rtt_ns(ctx)
    check("corelat measures a cache line's round trip between two CPUs",
          rtt is not None and 10 < rtt < 100_000, repr(rtt))
    check("a run is far when the round trip is over FAR_NS",
          run.far_apart({"core_rtt_ns": 400.0}) and not run.far_apart({"core_rtt_ns": 100.0})
          and not run.far_apart({}))


def check_auth_flows(python):
    proc, port = start([python, str(run.PEERS / "auth_stub.py"), "--port", "0"])
    creds = Path(f"/tmp/selftest-creds-{os.getpid()}.txt")
    try:
        for mode in ("register", "pwlogin", "tokenlogin"):
            r = subprocess.run([str(run.BIN / "loadgen"), mode, "--port", str(port), "--count",
                                "6", "--concurrency", "3", "--creds", str(creds)],
                               capture_output=True, text=True, timeout=60)
            res = run.last_json(r.stdout) or {}
            check(f"auth flow {mode} against auth_stub",
                  r.returncode == 0 and res.get("flows") == 6, r.stderr[-300:] + r.stdout)
        r = subprocess.run([str(run.BIN / "loadgen"), "latency", "--port", str(port),
                            "--duration", "0.5", "--warmup", "0.1", "--creds", str(creds)],
                           capture_output=True, text=True, timeout=60)
        res = run.last_json(r.stdout) or {}
        check("latency after a token login", r.returncode == 0 and res.get("samples", 0) > 400,
              r.stderr[-300:] + r.stdout)
        r = subprocess.run([str(run.BIN / "loadgen"), "latency", "--port", str(port),
                            "--duration", "0.5", "--warmup", "0.1", "--creds", str(creds),
                            "--rtts"], capture_output=True, text=True, timeout=60)
        res = run.last_json(r.stdout) or {}
        rtts = res.get("rtts_us") or []
        check("--rtts prints every round trip; pooling them gives loadgen's percentiles",
              len(rtts) == res.get("samples") and len(rtts) > 400
              and abs(run.pooled_p(rtts, 0.99) - res["p99_us"]) < 0.11
              and abs(run.pooled_p(rtts, 0.5) - res["p50_us"]) < 0.11,
              r.stderr[-300:] + r.stdout[:300])
    finally:
        creds.unlink(missing_ok=True)
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", default=sys.executable)
    args = ap.parse_args()
    run.compile_tools()
    py = args.peer_python
    peers = {
        "twisted_plain": [py, str(run.PEERS / "twisted_plain.py")],
        "asyncio_streams": [py, str(run.PEERS / "asyncio_streams.py")],
        "asyncio_protocol": [py, str(run.PEERS / "asyncio_protocol.py")],
        "asyncio_uvloop": [py, str(run.PEERS / "asyncio_protocol.py"), "--uvloop"],
        "threaded": [py, str(run.PEERS / "threaded.py")],
        "c_epoll": [str(run.BIN / "c_epoll")],
    }
    for name, cmd in peers.items():
        check_peer(name, cmd + ["--port", "0"])
    check_loadgen_catches("different spacing and key order", should_fail=False)
    for how in ("byte echo", "changed letter", "zero-length frame", "out of order"):
        check_loadgen_catches(how)
    check_server_cpu()
    check_core_distance()
    check_auth_flows(py)
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
