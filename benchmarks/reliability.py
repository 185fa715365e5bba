#!/usr/bin/env python3
"""
Longer runs of echolab's reliability tests, printing the figures that
docs/reliability.md quotes: more Hypothesis examples, a differential
mutation fuzz against the contract model, more fuzzing, more connections,
more kill -9 rounds, longer and more never-reading clients, timeouts and
shutdown with more clients.

Run it from the repository root with the test virtualenv (see README.md):

    python benchmarks/reliability.py               # everything, a few minutes
    python benchmarks/reliability.py --quick       # smaller numbers, about a minute
    python benchmarks/reliability.py --only crash --only slow

Sections (for --only): properties, mutations, corpus, fuzz, connections,
burst, crash, slow, timeouts, shutdown. The figures are printed and also
written to benchmarks/results/reliability-<UTC time>.json (git-ignored).
Servers run as `twistd -n echolab` processes, as in tests/test_twistd.py,
with the cheapest password hash the server accepts.
"""

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SECTIONS = [
    "properties",
    "mutations",
    "corpus",
    "fuzz",
    "connections",
    "burst",
    "crash",
    "slow",
    "timeouts",
    "shutdown",
]


class Scratch:
    """
    What tests.test_twistd.Server needs of a test case: temporary paths and
    clean-ups.
    """

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="echolab-reliability-")
        self.cleanups = []
        self.count = 0

    def mktemp(self):
        self.count += 1
        return os.path.join(self.root, f"t{self.count}")

    def addCleanup(self, function, *args, **kwargs):
        self.cleanups.append((function, args, kwargs))

    def close(self):
        for function, args, kwargs in reversed(self.cleanups):
            function(*args, **kwargs)
        shutil.rmtree(self.root, ignore_errors=True)


def server(scratch, mode, *args, data=None):
    from tests.test_twistd import CHEAP, Server

    data = data or os.path.abspath(scratch.mktemp())
    process = Server(
        scratch, "--port", "0", "--mode", mode, "--data-dir", data, *CHEAP, *args
    )
    if process.port is None:
        raise RuntimeError(f"server did not start: {process.first_line!r}")
    process.data = data
    process.log = os.path.join(data, "echolab.log")
    return process


def run(coroutine, timeout=1800):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def log_errors(process):
    from tests.test_reliability import log_errors as split

    with open(process.log, encoding="utf-8") as f:
        unexpected, known = split(f.read())
    return len(unexpected), known


def trial(*names):
    """
    Run trial test names in this process.

    @return: (successful, tests run, seconds, failure descriptions)
    """
    from twisted.trial import reporter, runner

    stream = io.StringIO()
    work = tempfile.mkdtemp(prefix="echolab-trial-")
    suite = runner.TestLoader().loadByNames(list(names))
    result = reporter.Reporter(stream)
    started = time.monotonic()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        suite.run(result)
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    problems = [str(t) for t, _ in result.errors + result.failures]
    return (
        result.wasSuccessful(),
        result.testsRun,
        round(time.monotonic() - started, 1),
        problems,
    )


# Sections. Each returns a dict of figures.


def properties(args, scratch):
    from tests import test_properties

    ok, count, seconds, problems = trial("tests.test_properties")
    stats = test_properties.STATS
    visited = {k for k in stats if isinstance(k, tuple)}
    return {
        "scale (ECHOLAB_EXAMPLES_SCALE)": args.scale,
        "passed": ok,
        "problems": problems,
        "totality examples": stats["examples"],
        "payloads judged against the model": stats["payloads"],
        "split examples": stats["split examples"],
        "split pieces": stats["split pieces"],
        "state table cases": stats["state table cases"],
        "(mode, state, message kind) visited": len(visited),
        "seconds": seconds,
    }


def mutations(args, scratch):
    """
    Differential fuzz: valid messages with random bytes inserted, replaced
    or deleted, sent to the server protocol and to the contract model, in
    echo mode and at auth mode's login question; every disagreement is
    classified.
    """
    from twisted.trial.unittest import SynchronousTestCase

    from echotwist.wire import HEADER
    from tests import contract_model as model
    from tests import workloads
    from tests.helpers import Conversation, make_factory

    class Case(SynchronousTestCase):
        def runTest(self):
            pass

    from twisted.logger import globalLogPublisher

    failures = []

    def observe(event):
        if "log_failure" in event:
            failures.append(event["log_failure"])

    globalLogPublisher.addObserver(observe)
    case = Case()
    os.chdir(scratch.root)  # (the auth factory's database goes here)
    rnd = random.Random(args.seed)
    bases = [
        b'{"type":"say","text":"hello","repeat":2,"x":"abc","y":[1,2.5,{"k":"v"}]}',
        b'{"type":"quit","note":"bye now"}',
        b'{"type":"answer","field":"login","value":"bob"}',
        b'{"type":"token","token":"abcdef","extra":null}',
        '{"type":"say","text":"привет","repeat":3}'.encode(),
    ]
    factories = {mode: make_factory(case, mode) for mode in ("echo", "auth")}
    models = {mode: model.ServerModel(mode) for mode in factories}  # (shared state too)
    mismatches = Counter()
    examples = {}
    valid_utf8_disagreements = 0
    started = time.monotonic()
    for i in range(args.mutations):
        payload = workloads.mutate(
            rnd,
            rnd.choice(bases),
            rnd.randint(1, 3),
            lambda: rnd.choice(
                [rnd.randrange(256), rnd.choice(b'{}[]",:\\0123456789eE.-+ntfu')]
            ),
        )
        mode = "echo" if i % 2 else "auth"
        # An address of its own each time: throttling stays out of it.
        address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        conversation = Conversation(factories[mode], host=address)
        conversation.replies()
        expected = models[mode].connect(address).receive(payload)
        conversation.send_bytes(HEADER.pack(len(payload)) + payload)
        actual = [model.normalize(m) for m in conversation.replies()]
        conversation.lose()
        if actual != expected:
            key = (
                " ".join(m.get("code", m["type"]) for m in expected),
                " ".join(m.get("code", m["type"]) for m in actual),
            )
            mismatches[key] += 1
            examples.setdefault(key, repr(payload))
            try:
                payload.decode("utf-8")
                valid_utf8_disagreements += 1
            except UnicodeDecodeError:
                pass  # (invalid UTF-8 inside unknown members: fixed since)
    globalLogPublisher.removeObserver(observe)
    return {
        "mutated payloads": args.mutations,
        "seconds": round(time.monotonic() - started, 1),
        "logged errors": len(failures),
        "disagreements": sum(mismatches.values()),
        "disagreements on valid UTF-8 payloads": valid_utf8_disagreements,
        "disagreement classes (model -> server)": {
            f"{a} -> {b}": {"count": n, "example": examples[(a, b)]}
            for (a, b), n in mismatches.most_common()
        },
    }


def corpus(args, scratch):
    from tests import test_reliability

    ok, count, seconds, problems = trial(
        "tests.test_reliability.HostileEchoTests",
        "tests.test_reliability.HostileIdentTests",
        "tests.test_reliability.HostileAuthTests",
    )
    return {
        "passed": ok,
        "tests": count,
        "hostile frames in the echo corpus": len(test_reliability.HOSTILE),
        "seconds": seconds,
        "problems": problems,
    }


def fuzz(args, scratch):
    from tests import workloads

    process = server(scratch, "auth")
    before = workloads.rss_kib(process.process.pid)
    started = time.monotonic()
    sent = run(
        workloads.fuzz(process.port, args.seed, args.fuzz_connections, args.fuzz_frames)
    )
    seconds = time.monotonic() - started
    after = workloads.rss_kib(process.process.pid)

    async def normal():  # (from an address the fuzzers did not throttle)
        c = await workloads.Client.connect(process.port, source="127.0.0.2")
        await workloads.log_in(c, "auth", 1)
        echoes = await workloads.converse(c, 1, 5)
        await c.close()
        return echoes

    echoes = run(normal())
    code, _, err = process.stop()
    unexpected, known = log_errors(process)
    return {
        "connections at once": args.fuzz_connections,
        "sent": sent,
        "seconds": round(seconds, 1),
        "server rss before/after KiB": [before, after],
        "normal client afterwards: echoes checked": echoes,
        "exit status": code,
        "unexpected errors in the log": unexpected,
        "known-bug errors in the log (finish after disconnect)": known,
    }


def connections(args, scratch):
    from tests import workloads

    servers = {mode: server(scratch, mode) for mode in ("echo", "ident", "auth")}
    figures = run(
        workloads.many_conversations(
            {m: s.port for m, s in servers.items()}, args.connections, says=5
        )
    )
    figures["server rss KiB"] = {
        m: workloads.rss_kib(s.process.pid) for m, s in servers.items()
    }
    figures["exit statuses"] = [s.stop()[0] for s in servers.values()]
    figures["errors in the logs"] = sum(
        log_errors(s)[0] + log_errors(s)[1] for s in servers.values()
    )
    return figures


def burst(args, scratch):
    from tests import workloads

    figures = {}
    for count in args.burst:
        process = server(scratch, "echo")
        started = time.monotonic()
        welcomes, latencies = run(workloads.burst(process.port, count))
        figures[f"{count} connects"] = {
            "welcomes": welcomes,
            "seconds": round(time.monotonic() - started, 2),
            "p50 ms": round(1000 * workloads.percentile(latencies, 0.5), 1),
            "p99 ms": round(1000 * workloads.percentile(latencies, 0.99), 1),
            "max ms": round(1000 * latencies[-1], 1),
        }
        process.stop()
    return figures


def crash(args, scratch):
    from tests import workloads
    from tests.test_reliability import kill_soon

    rnd = random.Random(args.seed)
    data = os.path.abspath(scratch.mktemp())
    acknowledged = []
    lost_tokens = lost_passwords = 0
    integrity = Counter()
    exit_codes = Counter()
    started = time.monotonic()
    for round_ in range(args.crash_rounds):
        process = server(scratch, "auth", data=data)
        before = len(acknowledged)
        run(
            workloads.registration_burst(
                process.port,
                f"r{round_}",
                6,
                acknowledged,
                before + rnd.randint(5, 60),
                kill_soon(process, rnd),
            )
        )
        exit_codes[process.process.wait(30)] += 1
        again = server(scratch, "auth", data=data)
        sample = rnd.sample(acknowledged, min(5, len(acknowledged)))
        tokens, passwords = run(
            workloads.verify_registrations(again.port, acknowledged, sample)
        )
        lost_tokens += len(tokens)
        lost_passwords += len(passwords)
        again.stop()
        integrity[workloads.integrity(os.path.join(data, "echolab.db"))] += 1
    with sqlite3.connect(os.path.join(data, "echolab.db")) as db:
        stored = db.execute("SELECT count(*) FROM users").fetchone()[0]
    secrets = [p for _, p, _ in acknowledged] + [t for _, _, t in acknowledged]
    found = workloads.secrets_found(data, secrets)

    ident_data = os.path.abspath(scratch.mktemp())
    identified = []
    ident_lost = 0
    for round_ in range(args.ident_rounds):
        process = server(scratch, "ident", data=ident_data)
        before = len(identified)
        run(
            workloads.identification_burst(
                process.port,
                1000 * round_,
                6,
                identified,
                before + rnd.randint(10, 80),
                kill_soon(process, rnd),
            )
        )
        exit_codes[process.process.wait(30)] += 1
        again = server(scratch, "ident", data=ident_data)
        ident_lost = len(run(workloads.verify_identifications(again.port, identified)))
        again.stop()
        integrity[workloads.integrity(os.path.join(ident_data, "echolab.db"))] += 1
    return {
        "kill -9 rounds (auth, ident)": [args.crash_rounds, args.ident_rounds],
        "exit statuses of the killed servers": dict(exit_codes),
        "registrations acknowledged (auth_ok)": len(acknowledged),
        "users stored (acknowledged + in flight)": stored,
        "acknowledged, token login failed after restart (checked every round)": lost_tokens,
        "sampled password logins failed": lost_passwords,
        "identifications acknowledged (greet)": len(identified),
        "identifications lost": ident_lost,
        "integrity_check results": dict(integrity),
        "secrets searched (passwords + tokens, raw/hex/base64)": len(secrets),
        "secret occurrences found in data dir files": found,
        "seconds": round(time.monotonic() - started, 1),
    }


def slow(args, scratch):
    from tests import workloads

    figures = {}
    process = server(
        scratch, "echo", "--stall-timeout", str(args.stall), "--linger", "1"
    )
    figures["one never-reading client"] = run(
        workloads.slow_reader(
            process.port, process.process.pid, args.stall, limit_s=args.stall + 60
        )
    )
    figures["one never-reading client"]["--stall-timeout"] = args.stall
    process.stop()
    process = server(
        scratch, "echo", "--stall-timeout", str(args.stall), "--linger", "1"
    )
    figures[f"{args.stalled} never-reading clients"] = run(
        workloads.slow_reader(
            process.port,
            process.process.pid,
            args.stall,
            limit_s=args.stall + 60,
            stalled=args.stalled,
        )
    )
    process.stop()
    return figures


def timeouts(args, scratch):
    from tests import workloads

    results = []
    for _ in range(args.timeout_rounds):
        process = server(
            scratch,
            "auth",
            "--login-timeout",
            "2",
            "--idle-timeout",
            "2",
            "--frame-timeout",
            "1",
            "--max-connections",
            "3",
            "--linger",
            "1",
        )
        results.append(run(workloads.timeouts(process.port, 2, 2, 1)))
        process.stop()
    figures = {"rounds": len(results), "refused while full": results[0]["refused"]}
    for what, limit in (("login", 2), ("idle", 2), ("frame", 1)):
        elapsed = [r[what][0] for r in results]
        figures[f"{what} timeout {limit} s: closed after s (min, max)"] = [
            round(min(elapsed), 2),
            round(max(elapsed), 2),
        ]
        figures[f"{what}: last messages"] = results[0][what][1]
    return figures


def shutdown(args, scratch):
    from tests import workloads

    process = server(scratch, "auth", "--linger", "2")
    db = os.path.join(process.data, "echolab.db")

    async def scenario():
        loop = asyncio.get_running_loop()
        stop = lambda: process.process.send_signal(signal.SIGTERM)  # noqa: E731
        started = time.monotonic()
        received, acknowledged = await workloads.shutdown(
            process.port, stop, args.shutdown_groups
        )
        code = await loop.run_in_executor(None, process.process.wait, 60)
        return received, acknowledged, code, time.monotonic() - started

    received, acknowledged, code, seconds = run(scenario())
    with sqlite3.connect(db) as connection:
        stored = {row[0] for row in connection.execute("SELECT login FROM users")}
    return {
        "clients connected at SIGTERM": len(received),
        "clients that got bye last": sum(
            1 for ms in received if ms and ms[-1]["type"] == "bye"
        ),
        "exit status": code,
        "integrity_check": workloads.integrity(db),
        "acknowledged logins missing from the database": len(acknowledged - stored),
        "errors in the log": sum(log_errors(process)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument("--quick", action="store_true", help="smaller numbers")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    big = not args.quick
    args.scale = 10 if big else 2
    args.mutations = 100_000 if big else 20_000
    args.fuzz_connections = 16 if big else 8
    args.fuzz_frames = 2000 if big else 500
    args.connections = 1000 if big else 500
    args.burst = [1000, 3000] if big else [1000]
    args.crash_rounds = 20 if big else 5
    args.ident_rounds = 10 if big else 3
    args.stall = 15 if big else 5
    args.stalled = 200 if big else 50
    args.timeout_rounds = 5 if big else 2
    args.shutdown_groups = 40 if big else 10
    os.environ["ECHOLAB_EXAMPLES_SCALE"] = str(args.scale)

    chosen = args.only or SECTIONS
    scratch = Scratch()
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:],
        "cpus": os.cpu_count(),
        "load average at start": os.getloadavg(),
    }
    cwd = os.getcwd()
    try:
        for name in chosen:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            figures = globals()[name](args, scratch)
            figures["section seconds"] = round(time.monotonic() - started, 1)
            report[name] = figures
            print(
                json.dumps(figures, indent=2, ensure_ascii=False, default=str),
                flush=True,
            )
            os.chdir(cwd)
    finally:
        os.chdir(cwd)
        scratch.close()
    report["load average at end"] = os.getloadavg()
    results = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(results, exist_ok=True)
    path = os.path.join(
        results, f"reliability-{report['started'].replace(':', '')}.json"
    )
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False, default=str)
    print(f"written to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
