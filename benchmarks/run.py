#!/usr/bin/env python3
"""Runs the echolab benchmark suite: echolab and reference peers side by side.

    python benchmarks/run.py                     # everything, about 8 minutes
    python benchmarks/run.py --quick             # one short repetition
    python benchmarks/run.py --only pingpong_64,scaling --servers echolab,asyncio_uvloop
    python benchmarks/run.py --python /path/to/echolab-venv/bin/python

Why it is built this way:
- every server is started fresh for each scenario (temporary cwd and data
  dir), so no run inherits another's memory or state;
- servers run interleaved (A B C, then a shuffled order such as C A B, ...)
  and repeated, and medians are reported, so slow drifts of a shared VM hit
  every server alike, and no server always runs right after the same one;
- the server is pinned to CPU 0 and the load generator to CPU 1, so they do
  not steal each other's time on this 2-core machine;
- around every run it times a cache line's round trip between those two
  CPUs (corelat.c): a VM's host may place them on cores that share no
  cache, which slows large messages by a third; such runs are flagged, and
  60,000-byte ones redone with --retry-noisy;
- the C load generator is checked, per scenario, against a C peer: it must
  drive it at least 2x faster than the fastest Python server, or the figures
  would measure the load generator.

Only the standard library is needed (matplotlib for --chart, optional).
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import queue
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BIN = BENCH / "bin"
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
LISTENING = re.compile(rb"listening on \S+:(\d+)")

# ---------------------------------------------------------------- servers

# name -> description.  "kind" says which side of the headroom check a
# server is on; "modes" which scenarios it can serve.
SERVERS = {
    "echolab": dict(kind="python", modes={"echo", "auth"},
                    about="the project's server (twistd echolab)"),
    "echolab_metrics": dict(kind="python", modes={"echo", "auth"}, echolab=True, opt_in=True,
                            about="echolab with --metrics on (tcp:0 on loopback), "
                                  "nothing scraping it"),
    "twisted_plain": dict(kind="python", modes={"echo"}, needs="twisted",
                          about="Twisted Int32StringReceiver + stdlib json"),
    "asyncio_streams": dict(kind="python", modes={"echo"},
                            about="asyncio start_server/readexactly"),
    "asyncio_protocol": dict(kind="python", modes={"echo"},
                             about="asyncio Protocol, default event loop"),
    "asyncio_uvloop": dict(kind="python", modes={"echo"}, needs="uvloop",
                           about="asyncio Protocol on uvloop"),
    "threaded": dict(kind="python", modes={"echo"},
                     about="thread per connection, blocking sockets"),
    "c_epoll": dict(kind="c", modes={"echo"},
                    about="minimal C epoll peer (practical limit)"),
    "c_epoll_spin": dict(kind="c", modes={"echo"}, throughput_only=True,
                         about="the C peer busy-polling: load generator headroom"),
    "auth_stub": dict(kind="python", modes={"auth"},
                      about="auth-mode stand-in, NOT echolab (in-memory, scrypt)"),
}
DEFAULT_REF = "asyncio_uvloop"


def is_echolab(name):
    """Whether server `name` is echolab itself (plain, or a variant of it)."""
    return name == "echolab" or SERVERS[name].get("echolab", False)


def server_command(name, ctx, mode, data_dir):
    """The argv that starts server `name` (before CPU pinning)."""
    py = ctx.peer_python
    if is_echolab(name):
        metrics = ["--metrics", "tcp:0:interface=127.0.0.1"] if name == "echolab_metrics" else []
        return ctx.twistd + ["--pidfile=", "-n", "echolab", "--mode", mode,
                             "--port", "0", "--data-dir", str(data_dir)] + metrics + ctx.echolab_args
    if name == "asyncio_uvloop":
        return [py, str(PEERS / "asyncio_protocol.py"), "--port", "0", "--uvloop"]
    if name == "c_epoll":
        return [str(BIN / "c_epoll"), "--port", "0"]
    if name == "c_epoll_spin":
        return [str(BIN / "c_epoll"), "--port", "0", "--spin"]
    return [py, str(PEERS / f"{name}.py"), "--port", "0"]


def raise_fd_limit():
    """Run in the child before exec: thousands of connections need fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One server process, started fresh, with its port and PID."""

    def __init__(self, name, ctx, mode="echo"):
        self.name = name
        self.tmp = tempfile.TemporaryDirectory(prefix=f"bench-{name}-")
        data_dir = Path(self.tmp.name) / "data"
        cmd = ctx.pin_server + server_command(name, ctx, mode, data_dir)
        self.stderr = open(Path(self.tmp.name) / "stderr.txt", "w+b")
        self.proc = subprocess.Popen(cmd, cwd=self.tmp.name, stdout=subprocess.PIPE,
                                     stderr=self.stderr, stdin=subprocess.DEVNULL,
                                     preexec_fn=raise_fd_limit)
        self.lines = queue.Queue()
        self.tail = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = self._wait_listening(timeout=30)
        self.pid = self.proc.pid   # taskset execs, so this is the server

    def _drain(self):
        """Keeps reading stdout so a chatty server never blocks on the pipe."""
        for line in self.proc.stdout:
            self.lines.put(line)
            self.tail = (self.tail + [line])[-20:]
        self.lines.put(None)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            m = LISTENING.search(line)
            if m:
                return int(m.group(1))
        time.sleep(0.2)   # let a dying server finish its last words
        why = (f"{self.name} did not print 'listening on HOST:PORT' "
               f"(exit {self.proc.poll()}): {self.diagnostics()}")
        self.stop()
        raise RuntimeError(why)

    def diagnostics(self):
        self.stderr.seek(0)
        err = self.stderr.read()[-1500:].decode("utf-8", "replace")
        out = b"".join(self.tail)[-800:].decode("utf-8", "replace")
        return f"stdout tail: {out!r} stderr tail: {err!r}"

    def rss_kib(self):
        """Resident memory of the server process, from /proc."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        self.tmp.cleanup()


@contextlib.contextmanager
def serving(name, ctx, mode="echo"):
    """A fresh server for one run; a failed run's error gets the server's
    state and last words, and the server is always stopped."""
    server = Server(name, ctx, mode)
    try:
        yield server
    except LoadgenError as exc:
        state = ("still running" if server.alive()
                 else f"server exited with {server.proc.returncode}")
        raise LoadgenError(f"{exc} [{state}; {server.diagnostics()}]") from None
    finally:
        server.stop()


# ---------------------------------------------------------------- load generator

class LoadgenError(RuntimeError):
    pass


def loadgen_cmd(ctx, mode, port, **opts):
    cmd = ctx.pin_loadgen + [str(BIN / "loadgen"), mode, "--port", str(port)]
    for key, value in opts.items():
        if value is True:
            cmd.append("--" + key.replace("_", "-"))
        elif value is not None and value is not False:
            cmd += ["--" + key.replace("_", "-"), str(value)]
    return cmd


def last_json(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    if not lines:
        return None
    return json.loads(lines[-1])


def run_loadgen(ctx, mode, port, server=None, timeout=120, **opts):
    """Runs the load generator to completion.  While it runs, samples the
    server's RSS (for the scaling curve).  Returns (result, peak RSS KiB)."""
    proc = subprocess.Popen(loadgen_cmd(ctx, mode, port, **opts),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = [], []
    readers = [threading.Thread(target=lambda s, acc: acc.append(s.read()),
                                args=(s, acc), daemon=True)
               for s, acc in ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    peak = 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if server is not None and server.alive():
            try:
                peak = max(peak, server.rss_kib())
            except (OSError, RuntimeError):
                pass
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.1)
    for t in readers:
        t.join()
    stdout, stderr = "".join(out), "".join(err)
    if proc.returncode != 0:
        raise LoadgenError(f"loadgen {mode} exited {proc.returncode}: "
                           f"{stderr.strip()[-1200:]}")
    result = last_json(stdout)
    if result is None:
        raise LoadgenError(f"loadgen {mode} printed no result: {stderr.strip()[-600:]}")
    return result, peak


# ---------------------------------------------------------------- scenarios

PIPELINES = {
    # name: (label, connections, in flight per connection, text bytes)
    "pingpong_64": ("ping-pong, 64 B", 1, 1, 64),
    "pipe_50x16": ("50 conns x 16 in flight, 64 B", 50, 16, 64),
    "pipe_10x4_16k": ("10 conns x 4 in flight, 16 KiB", 10, 4, 16384),
    "pingpong_60000": ("ping-pong, 60,000 B", 1, 1, 60000),
}
SCALING_POINTS = [1, 10, 100, 1000, 5000]
IDLE_CONNS = 5000
SCENARIOS = list(PIPELINES) + ["idle_5000", "scaling", "auth"]
MAX_PER_SRC = 50     # connections per 127.0.0.x source address
SATURATED = 0.95     # share of its CPU at which a server is its own limit


def pipeline_run(ctx, name, server, conns, depth, size, warmup, duration):
    res, peak = run_loadgen(ctx, "pipeline", server.port, server=server,
                            conns=conns, depth=depth, size=size, warmup=warmup,
                            duration=duration, max_per_src=MAX_PER_SRC,
                            server_pid=server.pid)
    out = {"msgs_per_s": res["msgs_per_s"], "rss_kib": peak,
           "conns_ready": res["conns_ready"], "loadgen_busy": res["loadgen_busy"]}
    if "server_cpu" in res:   # share of a CPU the server used in the window
        out["server_cpu"] = res["server_cpu"]
    notes = []
    if res["conns_ready"] < conns:
        notes.append(f"{res['conns_ready']}/{conns} connections welcomed "
                     f"({res['refused']} refused {res['errors']}, {res['failed']} failed)")
    if res["msgs"] == 0:
        notes.append("no reply at all in the measured window (stalled)")
    if res["extra_frames"]:
        notes.append(f"{res['extra_frames']} frames of non-contract types skipped")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def scenario_pipeline(ctx, scenario, name):
    label, conns, depth, size = PIPELINES[scenario]
    with serving(name, ctx) as server:
        return pipeline_run(ctx, name, server, conns, depth, size,
                            ctx.warmup, ctx.duration)


def scenario_idle(ctx, name):
    """RSS before and after opening IDLE_CONNS idle connections."""
    with serving(name, ctx) as server:
        time.sleep(0.5)
        before = server.rss_kib()
        cmd = loadgen_cmd(ctx, "idle", server.port, conns=IDLE_CONNS,
                          max_per_src=MAX_PER_SRC, timeout=60)
        errfile = Path(server.tmp.name) / "loadgen-stderr.txt"
        with open(errfile, "w") as errf:
            lg = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=errf, text=True)
        try:
            ready = lg.stdout.readline()   # printed once every connection is settled
            if not ready.startswith("{"):
                raise LoadgenError(f"loadgen idle failed: {errfile.read_text().strip()[-800:]}")
            ready = json.loads(ready)
            time.sleep(0.5)   # let the server finish its per-connection work
            after = server.rss_kib()
            lg.stdin.close()   # tells the load generator to let go
            rest = lg.stdout.read()
            lg.wait(timeout=30)
        finally:
            if lg.poll() is None:
                lg.kill()
                lg.wait()
        err = errfile.read_text()
        if lg.returncode != 0:
            raise LoadgenError(f"loadgen idle exited {lg.returncode}: {err.strip()[-800:]}")
        done = last_json(rest) or {}
        welcomed = ready["welcomed"]
        out = {"kib_per_conn": (after - before) / max(welcomed, 1),
               "rss_before_kib": before, "rss_after_kib": after,
               "welcomed": welcomed, "lost_while_held": done.get("lost", 0),
               "connect_seconds": ready["connect_seconds"]}
        if welcomed < IDLE_CONNS:
            out["note"] = (f"{welcomed}/{IDLE_CONNS} welcomed, {ready['refused']} refused "
                           f"{ready['errors']}, {ready['failed']} failed")
        return out


def scenario_scaling(ctx, name):
    """One fresh server, connections ascending: throughput and peak RSS."""
    with serving(name, ctx) as server:
        time.sleep(0.3)
        out = {"rss_start_kib": server.rss_kib(), "points": {}}
        for n in ctx.scaling_points:
            out["points"][str(n)] = pipeline_run(ctx, name, server, n, 4, 64,
                                                 ctx.scaling_warmup, ctx.scaling_duration)
        return out


HASH_PROBE = """
import json, sys, threading, time
from echotwist import passwords
memory = int(sys.argv[1]) if sys.argv[1] else passwords.DEFAULT_MEMORY_KIB
passes = int(sys.argv[2]) if sys.argv[2] else passwords.DEFAULT_TIME_COST
context = passwords.make_context(memory, passes)
# As the server hashes: on a thread of its own, keeping argon2's memory from
# one hash to the next (an echolab without keep_hash_memory does not, and
# neither does this then).
getattr(passwords, "keep_hash_memory", lambda kib: None)(memory)
times = []
def check():
    stored = context.hash("benchmark password 1")
    for _ in range(9):
        start = time.perf_counter()
        context.verify("benchmark password 1", stored)
        times.append(time.perf_counter() - start)
thread = threading.Thread(target=check)
thread.start()
thread.join()
print(json.dumps({"times_s": times}))
"""


def echolab_option(ctx, name):
    """The value of --NAME in --echolab-args, or ''."""
    args = ctx.echolab_args
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return ""


def hash_check_times(ctx):
    """Seconds per argon2id check (echolab's parameters, 9 checks) timed on
    the server's CPU, or None when they cannot be timed."""
    cmd = ctx.pin_server + [ctx.echolab_python, "-c", HASH_PROBE,
                            echolab_option(ctx, "hash-memory"),
                            echolab_option(ctx, "hash-time")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    result = last_json(proc.stdout)
    if proc.returncode != 0 or result is None:
        # (say, run with --twistd only: this Python may not have echotwist)
        print(f"run.py: hash not timed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return result["times_s"]


def hash_capacity(ctx, times):
    """Password checks per second the server's CPUs allow: the median of
    the checks C{times}, timed just before and just after the hash-bound
    flows, so the machine's speed drifting during them (by a fifth, some
    minutes) moves both alike."""
    cpus = 1 if ctx.pin_server else (os.cpu_count() or 1)
    return cpus / median_of(times)


def pooled_p(samples, q):
    """The q quantile of pooled round trips (the load generator's rule)."""
    samples = sorted(samples)
    return samples[int(q * (len(samples) - 1) + 0.5)] if samples else None


def echo_latency(ctx, server, creds):
    """Echo round trips of a token-authenticated connection alone and with
    password logins at a fixed rate in the background.  The two alternate
    in windows (alone, behind, alone, behind, ...) and each side's windows
    are pooled before the percentiles are taken: this VM's own p99 drifts
    (41-235 us alone from one repetition to the next), and one window of
    each, a few seconds apart, made the ratio swing from 1.0x to 7.4x."""
    window = ctx.latency_duration / ctx.latency_rounds
    lat = dict(rate=ctx.latency_rate, warmup=ctx.warmup, duration=window,
               creds=creds, rtts=True)
    bg_secs = ctx.warmup + window + 1.0
    alone, behind, bg_rates = [], [], []
    for _ in range(ctx.latency_rounds):
        res, _ = run_loadgen(ctx, "latency", server.port, **lat)
        alone += res["rtts_us"]
        # open loop: a fixed start rate; the concurrency is only a cap, set
        # high enough that slow logins do not lower the rate asked
        bg = subprocess.Popen(
            loadgen_cmd(ctx, "pwlogin", server.port, concurrency=16, rate=ctx.bg_logins,
                        warmup=0.3, duration=bg_secs, creds=creds, max_per_src=MAX_PER_SRC),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            res, _ = run_loadgen(ctx, "latency", server.port, **lat)
            bg_out, bg_err = bg.communicate(timeout=bg_secs + 30)
        except subprocess.TimeoutExpired:
            raise LoadgenError("background pwlogin did not finish") from None
        finally:
            if bg.poll() is None:  # (an error above, or the timeout)
                bg.kill()
                bg.communicate()
        bg_res = last_json(bg_out)
        if bg.returncode != 0 or bg_res is None:
            raise LoadgenError(f"background pwlogin exited {bg.returncode}: {bg_err[-800:]}")
        behind += res["rtts_us"]
        bg_rates.append(bg_res["flows_per_s"])
    if not alone or not behind:
        raise LoadgenError("the latency runs measured no round trip")
    out = {"echo_p50_us": pooled_p(alone, 0.5), "echo_p99_us": pooled_p(alone, 0.99),
           "echo_p50_us_bg": pooled_p(behind, 0.5), "echo_p99_us_bg": pooled_p(behind, 0.99),
           "bg_logins_per_s": min(bg_rates)}
    out["echo_p99_bg_ratio"] = out["echo_p99_us_bg"] / out["echo_p99_us"]
    if out["bg_logins_per_s"] < 0.9 * ctx.bg_logins:
        out["note"] = (f"background logins reached {out['bg_logins_per_s']:.1f}/s "
                       f"of {ctx.bg_logins}/s asked")
    return out


def scenario_auth(ctx, name):
    """Auth mode on one server: registrations, password and token logins,
    then echo latency of an authenticated connection with and without
    password logins at a fixed rate in the background.  They share one
    server on purpose: logins need the accounts the registrations made."""
    with serving(name, ctx, mode="auth") as server:
        creds = Path(server.tmp.name) / "creds.txt"
        flows = dict(concurrency=ctx.auth_concurrency, warmup=ctx.warmup,
                     max_per_src=MAX_PER_SRC, creds=creds)
        # Hash-bound flows (about 22/s) get a window long enough that the
        # flows cut at its ends (4 in flight) move the rate by under 3%.
        durations = {"register": ctx.hash_flow_duration,
                     "pwlogin": ctx.hash_flow_duration,
                     "tokenlogin": ctx.auth_duration}
        out = {}
        checks = hash_check_times(ctx) if is_echolab(name) else None
        for mode, duration in durations.items():
            res, _ = run_loadgen(ctx, mode, server.port, duration=duration, **flows)
            out[f"{mode}_per_s"] = res["flows_per_s"]
            out[f"{mode}_p50_ms"] = res["p50_ms"]
            out[f"{mode}_p99_ms"] = res["p99_ms"]
            out[f"{mode}_loadgen_cpu"] = res["loadgen_cpu"]
            if any(res["errors"].values()):
                out[f"{mode}_errors"] = res["errors"]
            if mode == "pwlogin" and checks:
                checks += hash_check_times(ctx) or []
        if checks:
            out["hash_capacity_per_s"] = capacity = hash_capacity(ctx, checks)
            for mode in ("register", "pwlogin"):
                out[f"{mode}_of_capacity"] = out[f"{mode}_per_s"] / capacity
        out.update(echo_latency(ctx, server, creds))
        return out


# ---------------------------------------------------------------- discovery

def compile_tools():
    """Builds the C tools into bin/ (git-ignored) when sources are newer."""
    BIN.mkdir(exist_ok=True)
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        sys.exit("run.py: gcc is needed to build benchmarks/bin/loadgen")
    for src, exe, deps, flags in (
            (BENCH / "loadgen.c", BIN / "loadgen", [BENCH / "jsonscan.h"], []),
            (PEERS / "c_epoll.c", BIN / "c_epoll", [BENCH / "jsonscan.h"], []),
            (BENCH / "corelat.c", BIN / "corelat", [], ["-pthread"])):
        deps = [src, *deps]
        if exe.exists() and all(exe.stat().st_mtime >= d.stat().st_mtime for d in deps):
            continue
        cmd = [gcc, "-O2", "-Wall", *flags, "-o", str(exe), str(src)]
        print("compiling:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)


def find_twistd(args):
    """The twistd command for echolab: --twistd, else next to --python,
    else on PATH."""
    if args.twistd:
        return [args.twistd]
    if args.python:
        sibling = Path(args.python).parent / "twistd"
        if sibling.exists():
            return [str(sibling)]
        return [args.python, "-c", "import sys; from twisted.scripts.twistd import run; "
                "sys.argv[0] = 'twistd'; run()"]
    found = shutil.which("twistd")
    return [found] if found else None


def python_of(twistd):
    """The Python a twistd script runs on (its #! line), or None."""
    try:
        with open(twistd[0], "rb") as f:
            first = f.readline().decode(errors="replace").strip()
    except (OSError, IndexError, TypeError):
        return None
    if first.startswith("#!") and "python" in first:
        return first[2:].split()[0]
    return None


def echolab_available(twistd):
    """(True, '') when twistd lists the echolab plugin, else (False, why)."""
    if not twistd:
        return False, "no twistd found (give --twistd PATH or --python PATH)"
    try:
        proc = subprocess.run(twistd + ["--help"], capture_output=True, text=True,
                              timeout=60, cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{' '.join(twistd)} --help failed: {exc}"
    if re.search(r"^\s+echolab\b", proc.stdout, re.M):
        return True, ""
    return False, f"{' '.join(twistd)} has no echolab plugin (not installed in that venv?)"


def python_has(python, module):
    return subprocess.run([python, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def pinning():
    """taskset prefixes: server on CPU 0, load generator on CPU 1; and
    those two CPUs (None without pinning)."""
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        return (["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])],
                f"server on CPU {cpus[0]}, load generator on CPU {cpus[1]}", cpus[:2])
    return [], [], "no pinning (taskset missing or fewer than 2 CPUs)", None


def core_rtt_ns(ctx):
    """A cache line's round trip between the server's and the load
    generator's CPU, in ns (None when not pinned or the probe fails)."""
    if not ctx.cpu_pair:
        return None
    try:
        out = subprocess.run([str(BIN / "corelat"), *map(str, ctx.cpu_pair)],
                             capture_output=True, text=True, timeout=10)
        return float(out.stdout) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def machine_info():
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    try:
        info["bench_commit"] = subprocess.run(
            ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


class ForeignLoad:
    """CPU time used on the machine by processes other than this run's.

    The machine may be shared (other sessions, test suites): busy time from
    /proc/stat (user+nice+system) minus what this runner and its waited-for
    children used.  A noticeable share means noisy figures for that run.
    Interrupt time is left out: loopback traffic spends much of it."""

    def __init__(self):
        self.t, self.busy, self.ours = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()[1:]
            busy = sum(int(x) for x in fields[:3]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            busy = 0.0
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            ours += ru.ru_utime + ru.ru_stime
        return time.monotonic(), busy, ours

    def share(self):
        """Foreign CPU-seconds per second of wall time per CPU, since start."""
        t, busy, ours = self._sample()
        wall = max(t - self.t, 1e-6)
        foreign = max(0.0, (busy - self.busy) - (ours - self.ours))
        return foreign / wall / (os.cpu_count() or 1)


def wait_for_quiet(limit):
    """Waits (up to `limit` seconds) until other processes use under
    FOREIGN_MARK of the CPUs over half a second.  Returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        probe = ForeignLoad()
        time.sleep(0.5)
        if probe.share() < FOREIGN_MARK:
            break
    return time.monotonic() - t0


def run_one(ctx, sc, name, rep):
    """One run of one scenario on one server: (raw entry, progress text)."""
    rtt_before = core_rtt_ns(ctx)
    foreign = ForeignLoad()
    try:
        if sc in PIPELINES:
            result = scenario_pipeline(ctx, sc, name)
        elif sc == "idle_5000":
            result = scenario_idle(ctx, name)
        elif sc == "scaling":
            result = scenario_scaling(ctx, name)
        else:
            result = scenario_auth(ctx, name)
        entry = {"rep": rep, "result": result}
        brief = {k: v for k, v in flatten(sc, result).items()
                 if k.startswith(("msgs_per_s", "kib_per_conn", "register_per",
                                  "pwlogin_per", "tokenlogin_per", "echo_p99"))}
        shown = ", ".join(f"{k}={fmt(v)}" for k, v in brief.items())
    except (LoadgenError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        entry = {"rep": rep, "error": str(exc)}
        shown = f"FAILED: {exc}"
    entry["foreign_cpu"] = round(foreign.share(), 3)
    rtts = [r for r in (rtt_before, core_rtt_ns(ctx)) if r is not None]
    if rtts:
        entry["core_rtt_ns"] = max(rtts)
    return entry, shown


def far_apart(entry):
    """Whether the run's two CPUs shared no cache (see FAR_NS)."""
    return entry.get("core_rtt_ns", 0) > FAR_NS


# ---------------------------------------------------------------- summary

def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def flatten(scenario, result):
    """A run's result as {metric: number} (scaling points flattened)."""
    if scenario == "scaling":
        flat = {"rss_start_kib": result["rss_start_kib"]}
        for n, p in result["points"].items():
            flat[f"msgs_per_s@{n}"] = p["msgs_per_s"]
            flat[f"rss_kib@{n}"] = p["rss_kib"]
            flat[f"loadgen_busy@{n}"] = p["loadgen_busy"]
            if "server_cpu" in p:
                flat[f"server_cpu@{n}"] = p["server_cpu"]
        return flat
    return {k: v for k, v in result.items() if isinstance(v, (int, float))}


def notes_of(scenario, result):
    notes = [result.get("note")] if result.get("note") else []
    if scenario == "scaling":
        notes += [f"{n} conns: {p['note']}" for n, p in result["points"].items()
                  if p.get("note")]
    return notes


def summarize(raw):
    """Medians (and min/max) per scenario, server and metric."""
    summary = {}
    for scenario, by_server in raw.items():
        summary[scenario] = {}
        for name, runs in by_server.items():
            ok = [flatten(scenario, r["result"]) for r in runs if "result" in r]
            metrics = {}
            for key in sorted({k for f in ok for k in f}):
                vals = [f.get(key) for f in ok]
                vals = [v for v in vals if v is not None]
                metrics[key] = {"median": median_of(vals), "min": min(vals),
                                "max": max(vals), "n": len(vals)}
            notes = sorted({n for r in runs if "result" in r
                            for n in notes_of(scenario, r["result"])})
            errors = [r["error"] for r in runs if "error" in r]
            summary[scenario][name] = {"metrics": metrics, "notes": notes,
                                       "errors": errors}
    return summary


def fastest(servers, metric, kind):
    """(median, name) of the fastest server of C{kind} in C{metric}."""
    cands = [(srv["metrics"][metric]["median"], name) for name, srv in servers.items()
             if SERVERS[name]["kind"] == kind and metric in srv["metrics"]]
    return max(cands) if cands else (None, None)


def headroom(summary, servers):
    """Per throughput scenario: best C peer / fastest Python server."""
    checks = []
    rows = [(s, "msgs_per_s", PIPELINES[s][0]) for s in PIPELINES if s in summary]
    busy_key = {"msgs_per_s": "loadgen_busy"}
    if "scaling" in summary:
        points = sorted({int(k.split("@")[1]) for srv in summary["scaling"].values()
                         for k in srv["metrics"] if k.startswith("msgs_per_s@")})
        rows += [("scaling", f"msgs_per_s@{n}", f"scaling, {n} conns x 4") for n in points]
    for scenario, metric, label in rows:
        c_val, c_name = fastest(summary[scenario], metric, "c")
        py_val, py_name = fastest(summary[scenario], metric, "python")
        if c_val is None or py_val is None or py_val == 0:
            checks.append({"scenario": label, "status": "n/a (needs a C and a Python server)"})
            continue
        factor = c_val / py_val
        # how much of its time the load generator had work while driving the
        # fastest Python server (the rest it spent polling for replies)
        bkey = busy_key.get(metric, metric.replace("msgs_per_s@", "loadgen_busy@"))
        py_metrics = summary[scenario][py_name]["metrics"]
        busy = py_metrics.get(bkey, {}).get("median")
        # and how much of its CPU that server used: a server that used all of
        # it set its own figure, whatever the load generator could do
        ckey = metric.replace("msgs_per_s", "server_cpu")
        cpu = py_metrics.get(ckey, {}).get("median")
        if factor >= 2:
            status = "PASS"
        elif cpu is not None and cpu >= SATURATED:
            status = f"below 2x; the server was CPU-bound ({cpu:.0%})"
        else:
            status = "FAIL"
        checks.append({"scenario": label, "c_server": c_name, "c_msgs_per_s": c_val,
                       "python_server": py_name, "python_msgs_per_s": py_val,
                       "factor": round(factor, 2), "loadgen_busy_with_python": busy,
                       "server_cpu_of_python": cpu, "status": status})
    if "idle_5000" in summary:
        checks.append({"scenario": f"{IDLE_CONNS:,} idle connections",
                       "status": "n/a (memory, no throughput)"})
    # There is no C auth peer: the flows' own CPU use is the check instead.
    for name, srv in summary.get("auth", {}).items():
        for mode in ("register", "pwlogin", "tokenlogin"):
            m = srv["metrics"].get(f"{mode}_loadgen_cpu")
            if m:
                share = m["max"]
                checks.append({"scenario": f"auth {mode} ({name})", "loadgen_cpu": share,
                               "status": ("PASS" if share < 0.5 else "FAIL") +
                               f": load generator used {share:.0%} of its CPU (< 50% wanted)"})
    return checks


def fmt(value, metric=""):
    if value is None:
        return "-"
    if metric.startswith("rss") or metric.endswith("_kib"):
        return f"{value / 1024:,.1f} MiB"
    if metric.endswith("_of_capacity"):
        return f"{value:.0%}"
    if metric.endswith("_ratio"):
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


SPREAD_MARK = 0.2   # mark medians whose repetitions differ by more than 20%
FOREIGN_MARK = 0.05  # flag runs during which other processes used over 5% of the CPUs
# Flag runs whose CPUs were far apart: a cache line's round trip over FAR_NS.
# Cores that share a cache take 60-150 ns on current x86 (about 100 here);
# cores on different chiplets or sockets 250-800 (about 400 here).
FAR_NS = 250
# Far runs are redone (--retry-noisy) where far CPUs change the figure: the
# 60,000-byte ping-pong, a third slower for echolab and the C peer, 5% for
# the uvloop peer; within a budget, as far placements can last many minutes
# and one command must stay under ten.
FAR_RETRY_SCENARIOS = {"pingpong_60000"}
FAR_RETRY_BUDGET = 40  # seconds


def cell(summary, scenario, name, metric, ref):
    srv = summary.get(scenario, {}).get(name)
    if not srv:
        return "n/a"
    if metric not in srv["metrics"]:
        return "FAILED" if srv["errors"] else "-"
    stats = srv["metrics"][metric]
    m = stats["median"]
    text = fmt(m, metric)
    if m and (stats["max"] - stats["min"]) / abs(m) > SPREAD_MARK:
        text += " ~"
    rsrv = summary[scenario].get(ref)
    if rsrv and metric in rsrv["metrics"] and rsrv["metrics"][metric]["median"]:
        text += f" ({m / rsrv['metrics'][metric]['median']:.2f}x)"
    return text


def markdown(report):
    s = report["summary"]
    ref = report["reference"]
    echo_servers = [n for n in report["servers"] if "echo" in SERVERS[n]["modes"]]
    lines = [f"# echolab benchmarks, {report['started']}", "",
             f"Medians of {report['reps']} repetition(s); in brackets, the ratio to "
             f"the reference `{ref}` (higher is better for msgs/s, lower for memory "
             f"and latency). {report['pinning']}. Machine: {report['machine'].get('cpu', '?')}, "
             f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']}. "
             f"`~` marks a median whose repetitions spread over more than "
             f"{SPREAD_MARK:.0%} of it (each run is in the JSON file).", ""]
    listed = len(lines)
    for name, why in report["skipped"].items():
        lines.append(f"- skipped `{name}`: {why}")
    if report["foreign_cpu"] > FOREIGN_MARK or report["noisy_runs"]:
        lines.append(f"- **warning: the machine was shared.** Other processes used "
                     f"{report['foreign_cpu']:.0%} of the CPUs over the whole run, and over "
                     f"{FOREIGN_MARK:.0%} during {report['noisy_runs']} of the runs (each run's "
                     f"share is `foreign_cpu` in the JSON file); expect noisy figures.")
    rtts = report["core_rtt_ns"]
    if rtts:
        lines.append(f"- A cache line's round trip between the two CPUs (`corelat`, around "
                     f"every run): {min(rtts):.0f}-{max(rtts):.0f} ns.")
    if report["far_runs"]:
        where = ", ".join(f"{sc} {n}" for sc, n in report["far_runs"].items())
        lines.append(f"- **warning: the CPUs were far apart in "
                     f"{sum(report['far_runs'].values())} of the runs** ({where}; round trip "
                     f"over {FAR_NS} ns, `far` in the JSON file): large messages run about a "
                     f"third slower then.")
    if len(lines) > listed:
        lines.append("")

    table = [(PIPELINES[sc][0], sc, "msgs_per_s", "msgs/s") for sc in PIPELINES if sc in s]
    if "idle_5000" in s:
        table += [(f"{IDLE_CONNS:,} idle connections", "idle_5000", "kib_per_conn", "KiB/conn"),
                  (f"{IDLE_CONNS:,} idle connections", "idle_5000", "rss_after_kib", "RSS")]
    if table:
        lines += ["## Echo mode", "",
                  "| scenario | metric | " + " | ".join(echo_servers) + " |",
                  "|---|---|" + "---|" * len(echo_servers)]
        for label, sc, metric, unit in table:
            row = [cell(s, sc, n, metric, ref) for n in echo_servers]
            lines.append(f"| {label} | {unit} | " + " | ".join(row) + " |")
        lines.append("")

    if "scaling" in s:
        points = sorted({int(k.split("@")[1]) for srv in s["scaling"].values()
                         for k in srv["metrics"] if k.startswith("msgs_per_s@")})
        names = [n for n in echo_servers if n in s["scaling"]]
        for metric, title in (("msgs_per_s", "Scaling: msgs/s, 4 in flight per connection, 64 B"),
                              ("rss_kib", "Scaling: peak server RSS during the run")):
            lines += [f"## {title}", "", "| connections | " + " | ".join(names) + " |",
                      "|---|" + "---|" * len(names)]
            for p in points:
                lines.append(f"| {p:,} | " + " | ".join(
                    cell(s, "scaling", n, f"{metric}@{p}", ref) for n in names) + " |")
            lines.append("")

    if "auth" in s and s["auth"]:
        names = list(s["auth"])
        rows = [("registrations/s", "register_per_s"), ("password logins/s", "pwlogin_per_s"),
                ("password checks/s the server's CPUs allow (hash timed in the run)",
                 "hash_capacity_per_s"),
                ("registrations, share of that", "register_of_capacity"),
                ("password logins, share of that", "pwlogin_of_capacity"),
                ("token logins/s", "tokenlogin_per_s"),
                ("registration p50 ms", "register_p50_ms"),
                ("password login p50 ms", "pwlogin_p50_ms"),
                ("token login p50 ms", "tokenlogin_p50_ms"),
                ("echo p50 us", "echo_p50_us"), ("echo p99 us", "echo_p99_us"),
                (f"echo p50 us, {report['bg_logins']} pw logins/s behind", "echo_p50_us_bg"),
                (f"echo p99 us, {report['bg_logins']} pw logins/s behind", "echo_p99_us_bg"),
                ("echo p99 with logins behind / alone", "echo_p99_bg_ratio"),
                ("background logins/s reached", "bg_logins_per_s")]
        lines += ["## Auth mode (echolab only)", "",
                  f"{report['auth_concurrency']} flows in flight; echo latency at "
                  f"{report['latency_rate']:,} pings/s on a token-authenticated connection, "
                  "in windows alternating alone and with logins behind, each side's "
                  "round trips pooled; the hash timed before the registrations and "
                  "after the password logins.", "",
                  "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for label, metric in rows:
            lines.append(f"| {label} | " + " | ".join(
                cell(s, "auth", n, metric, None) for n in names) + " |")
        lines.append("")

    if report["headroom"]:
        lines += ["## Load generator headroom", "",
                  "The load generator must drive a C peer at least 2x faster than the "
                  "fastest Python server, or the figures would measure the load generator.", "",
                  "While it drove that fastest Python server: the share of the window "
                  "the load generator had work to do (the rest it was polling for "
                  "replies), and the share of its CPU the server used. Where the "
                  "factor falls short, a server that used all of its CPU "
                  f"(>= {SATURATED:.0%}) was the limit of its own figure, not the load "
                  "generator; the check says so instead of PASS.", "",
                  "| scenario | C peer msgs/s | fastest Python msgs/s | factor | "
                  "load generator busy | server CPU | check |",
                  "|---|---|---|---|---|---|---|"]
        for h in report["headroom"]:
            if "factor" not in h:
                lines.append(f"| {h['scenario']} | | | | | | {h['status']} |")
                continue
            busy = h.get("loadgen_busy_with_python")
            cpu = h.get("server_cpu_of_python")
            lines.append(f"| {h['scenario']} | {fmt(h['c_msgs_per_s'])} ({h['c_server']}) | "
                         f"{fmt(h['python_msgs_per_s'])} ({h['python_server']}) | "
                         f"{h['factor']:.2f}x | {'-' if busy is None else f'{busy:.0%}'} | "
                         f"{'-' if cpu is None else f'{cpu:.0%}'} | {h['status']} |")
        lines.append("")

    notes = [(sc, n, note) for sc, by in s.items() for n, srv in by.items()
             for note in srv["notes"]]
    errors = [(sc, n, e) for sc, by in s.items() for n, srv in by.items() for e in srv["errors"]]
    if notes or errors:
        lines += ["## Notes and failures", ""]
        lines += [f"- {sc} / {n}: {note}" for sc, n, note in notes]
        lines += [f"- FAILED {sc} / {n}: {e}" for sc, n, e in errors]
        lines.append("")
    lines.append(f"Total time {report['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def chart(report, path):
    """PNG of the scaling curves; matplotlib is optional."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--chart: matplotlib is not installed; skipping the chart "
              "(pip install matplotlib)", file=sys.stderr)
        return None
    s = report["summary"].get("scaling")
    if not s:
        print("--chart: no scaling results to draw", file=sys.stderr)
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, srv in s.items():
        pts = sorted((int(k.split("@")[1]), v["median"]) for k, v in srv["metrics"].items()
                     if k.startswith("msgs_per_s@"))
        rss = sorted((int(k.split("@")[1]), v["median"] / 1024)
                     for k, v in srv["metrics"].items() if k.startswith("rss_kib@"))
        style = "--" if SERVERS[name]["kind"] == "c" else "-"   # C peers: reference lines
        if pts:
            ax1.plot([n for n, _ in pts], [v for _, v in pts], style, marker="o", label=name)
        if rss:
            ax2.plot([n for n, _ in rss], [v for _, v in rss], style, marker="o", label=name)
    ax1.set(xscale="log", yscale="log", xlabel="connections (4 in flight each)",
            ylabel="msgs/s", title="Throughput")
    ax2.set(xscale="log", xlabel="connections", ylabel="peak RSS (MiB)", title="Server memory")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(f"echolab benchmarks, scaling ({report['started']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="scenarios: " + ", ".join(SCENARIOS) +
                                 "\nservers: " + ", ".join(SERVERS))
    ap.add_argument("--quick", action="store_true",
                    help="one repetition, short windows (a smoke run, about 2 minutes)")
    ap.add_argument("--only", help="comma-separated scenarios to run")
    ap.add_argument("--servers", help="comma-separated servers (default: all available)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--ref", default=DEFAULT_REF,
                    help=f"reference server for ratios ({DEFAULT_REF})")
    ap.add_argument("--python", help="python of the venv where echolab is installed "
                    "(also runs the Python peers unless --peer-python)")
    ap.add_argument("--twistd", help="twistd that has the echolab plugin")
    ap.add_argument("--peer-python", help="python for the Python peers (needs twisted, uvloop)")
    ap.add_argument("--echolab-args", default="",
                    help="extra arguments for echolab, e.g. its connection limits")
    ap.add_argument("--duration", type=float, help="measured seconds per run (1.5)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds first (0.5)")
    ap.add_argument("--auth-concurrency", type=int, default=4, help="auth flows in flight (4)")
    ap.add_argument("--bg-logins", type=float, default=20,
                    help="background password logins/s in the latency test (20)")
    ap.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                    help="on a shared machine: before the first run and after a run "
                    "that other processes disturbed, wait up to S seconds for them to "
                    "go quiet (default 0: do not wait)")
    ap.add_argument("--retry-noisy", type=int, default=0, metavar="N",
                    help="on a shared machine: redo a run up to N times while other "
                    "processes used over 5%% of the CPUs during it, or (60,000-byte "
                    f"ping-pong, up to {FAR_RETRY_BUDGET} s in all) while its two CPUs "
                    "were far apart; the least disturbed attempt counts (default 0)")
    ap.add_argument("--chart", action="store_true", help="also draw the scaling curves (PNG)")
    return ap.parse_args()


class Context:
    """Settings every scenario needs."""


def main():
    args = parse_args()
    t0 = time.monotonic()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    ctx = Context()
    ctx.reps = args.reps or (1 if args.quick else 3)
    ctx.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 0.5)
    ctx.duration = args.duration or (0.7 if args.quick else 1.5)
    ctx.scaling_warmup = 0.3
    ctx.scaling_duration = 0.5 if args.quick else 1.0
    ctx.scaling_points = SCALING_POINTS
    ctx.auth_duration = 1.0 if args.quick else 2.0
    ctx.hash_flow_duration = 1.0 if args.quick else 6.0
    ctx.latency_duration = 1.0 if args.quick else 4.0  # p99: about the 40th worst of 4,000
    ctx.latency_rounds = 1 if args.quick else 2  # windows of each, alternating
    ctx.latency_rate = 1000
    ctx.bg_logins = args.bg_logins
    ctx.auth_concurrency = args.auth_concurrency
    ctx.peer_python = args.peer_python or args.python or sys.executable
    ctx.twistd = find_twistd(args)
    ctx.echolab_python = args.python or python_of(ctx.twistd) or sys.executable
    ctx.echolab_args = shlex.split(args.echolab_args)
    ctx.pin_server, ctx.pin_loadgen, pin_text, ctx.cpu_pair = pinning()

    scenarios = args.only.split(",") if args.only else list(SCENARIOS)
    for sc in scenarios:
        if sc not in SCENARIOS:
            sys.exit(f"run.py: unknown scenario {sc!r}; known: {', '.join(SCENARIOS)}")
    wanted = (args.servers.split(",") if args.servers else
              [n for n in SERVERS if n != "auth_stub" and not SERVERS[n].get("opt_in")])
    for n in wanted:
        if n not in SERVERS:
            sys.exit(f"run.py: unknown server {n!r}; known: {', '.join(SERVERS)}")

    compile_tools()
    skipped = {}
    servers = []
    for name in wanted:
        if is_echolab(name):
            ok, why = echolab_available(ctx.twistd)
            if not ok:
                skipped[name] = why
                print(f"run.py: skipping {name}: {why}", file=sys.stderr)
                continue
        need = SERVERS[name].get("needs")
        if need and not python_has(ctx.peer_python, need):
            skipped[name] = f"{ctx.peer_python} cannot import {need}"
            print(f"run.py: skipping {name}: {skipped[name]}", file=sys.stderr)
            continue
        servers.append(name)
    if "auth" in scenarios and not any("auth" in SERVERS[n]["modes"] for n in servers):
        if "echolab" in skipped:
            servers.append("auth_stub")
            print("run.py: echolab unavailable: the auth scenarios run against auth_stub, "
                  "a stand-in that tests the machinery (its figures are not echolab's)",
                  file=sys.stderr)
    if args.ref not in servers:
        print(f"run.py: reference {args.ref} is not in this run: no ratios", file=sys.stderr)

    def runs_for(sc):
        mode = "auth" if sc == "auth" else "echo"
        names = [n for n in servers if mode in SERVERS[n]["modes"]]
        if sc == "idle_5000":
            names = [n for n in names if not SERVERS[n].get("throughput_only")]
        return names

    def order(sc, rep):
        # A fresh order each repetition after the first (seeded, so a run
        # can be repeated): with a fixed order each server always runs right
        # after the same one, and any carry-over from that run would favour
        # or harm it every time.
        names = runs_for(sc)
        if rep:
            random.Random(f"{sc}/{rep}").shuffle(names)
        return names

    plan = [(sc, rep, n) for sc in scenarios for rep in range(ctx.reps) for n in order(sc, rep)]
    print(f"run.py: {len(plan)} runs, {ctx.reps} repetition(s), servers {', '.join(servers)}; "
          f"{pin_text}", file=sys.stderr)
    raw = {sc: {n: [] for n in runs_for(sc)} for sc in scenarios}
    whole_run = ForeignLoad()
    far_budget = FAR_RETRY_BUDGET
    discarded = []
    disturbed = True  # (wait before the first run; later, after a disturbed one)
    for i, (sc, rep, name) in enumerate(plan, 1):
        attempts = []
        for attempt in range(1 + args.retry_noisy):
            if args.quiet_wait and disturbed:
                wait_for_quiet(args.quiet_wait)
            t = time.monotonic()
            entry, shown = run_one(ctx, sc, name, rep)
            took = time.monotonic() - t
            noisy = disturbed = entry["foreign_cpu"] > FOREIGN_MARK
            entry["far"] = far_apart(entry)
            if noisy:
                shown += f" [other processes used {entry['foreign_cpu']:.0%} of the CPUs]"
            if entry["far"]:
                shown += f" [CPUs far apart: {entry['core_rtt_ns']:.0f} ns]"
            retry = attempt < args.retry_noisy and (noisy or (
                entry["far"] and sc in FAR_RETRY_SCENARIOS and far_budget >= took))
            if retry and not noisy:
                far_budget -= took
            print(f"[{i:3}/{len(plan)}] {sc} rep {rep + 1}/{ctx.reps} {name}: {shown} "
                  f"({took:.1f} s){' - again' if retry else ''}", file=sys.stderr)
            attempts.append(entry)
            if not retry:
                break
        # The least disturbed attempt counts: near CPUs first, then quiet ones.
        best = min(attempts, key=lambda e: (e["far"], e["foreign_cpu"]))
        raw[sc][name].append(best)
        discarded += [{"scenario": sc, "server": name, **e} for e in attempts if e is not best]

    summary = summarize(raw)
    foreign_share = whole_run.share()
    report = {
        "started": started, "seconds": time.monotonic() - t0, "reps": ctx.reps,
        "reference": args.ref, "pinning": pin_text, "machine": machine_info(),
        "foreign_cpu": round(foreign_share, 3),
        "noisy_runs": sum(r.get("foreign_cpu", 0) > FOREIGN_MARK
                          for by in raw.values() for runs in by.values() for r in runs),
        "far_runs": {sc: far for sc, by in raw.items()
                     if (far := sum(r.get("far", False) for runs in by.values() for r in runs))},
        "core_rtt_ns": [r["core_rtt_ns"] for by in raw.values() for runs in by.values()
                        for r in runs if "core_rtt_ns" in r],
        "servers": servers, "skipped": skipped,
        "about": {n: SERVERS[n]["about"] for n in servers},
        "settings": {k: v for k, v in vars(ctx).items() if not k.startswith("pin")},
        "bg_logins": ctx.bg_logins, "latency_rate": ctx.latency_rate,
        "auth_concurrency": ctx.auth_concurrency,
        "raw": raw, "discarded_noisy_runs": discarded, "summary": summary,
        "headroom": headroom(summary, servers),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path, md_path = RESULTS / f"bench-{stamp}.json", RESULTS / f"bench-{stamp}.md"
    md = markdown(report)
    json_path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    md_path.write_text(md)
    print(md)
    print(f"written: {json_path} and {md_path}", file=sys.stderr)
    if args.chart:
        png = chart(report, RESULTS / f"bench-{stamp}-scaling.png")
        if png:
            print(f"chart: {png}", file=sys.stderr)
    failed = any(srv["errors"] for by in summary.values() for srv in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
