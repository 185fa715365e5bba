#!/usr/bin/env python3
"""
The figures of docs/scaling.md: token logins/s, password logins/s and
pipelined echo, for 1 and 2 workers, on SQLite and PostgreSQL, and through
HAProxy in front of nodes in network namespaces (contrib/cluster). The load
is benchmarks/loadgen (built by run.py's rules), on the same machine.

    .venv/bin/python benchmarks/scaling.py              # all, 3 repetitions
    .venv/bin/python benchmarks/scaling.py --quick      # 2 s windows, once

(HAProxy's rows need root.) Prints one Markdown table of medians, with
their ranges; every run's figures go to benchmarks/results/scaling-DATE.json.
"""

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT, BENCH, os.path.join(ROOT, "contrib", "cluster")]

import run as benchmarks  # noqa: E402
from cluster import TWISTD, Cluster  # noqa: E402
from cluster import missing as cluster_missing  # noqa: E402
from tests.postgres_support import PostgresServer  # noqa: E402

LOADGEN = os.path.join(BENCH, "bin", "loadgen")
# Registrations and look-ups from the load generator's few addresses are
# not what is measured: their per-address budgets are lifted. Hashing runs
# at normal priority: at idle priority, on a machine others keep busy, the
# figures would be theirs.
AUTH_ARGS = ["--budget-registrations", "1000000", "--budget-lookups", "1000000",
             "--max-connections", "5000", "--hash-priority", "normal"]  # fmt: skip


def seconds_per_hash(checks=5):
    """
    One argon2id check at the default parameters, timed here (median).
    """
    from echotwist.passwords import DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST, make_context

    context = make_context(DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST)
    stored = context.hash("correct horse battery")
    times = []
    for _ in range(checks):
        started = time.perf_counter()
        context.verify("correct horse battery", stored)
        times.append(time.perf_counter() - started)
    return sorted(times)[checks // 2]


def loadgen(mode, port, seconds, **options):
    command = [LOADGEN, mode, "--port", str(port), "--duration", str(seconds),
               "--warmup", "0.5", "--max-per-src", "50"]  # fmt: skip
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"loadgen {mode}: {done.stderr[-500:]}")
    return json.loads(lines[-1])


@contextlib.contextmanager
def server(mode, workers, store=None, extra=()):
    data = tempfile.mkdtemp(prefix="echolab-scaling-")
    args = [sys.executable, "-c", TWISTD, "--pidfile=", "-n", "echolab",
            "--mode", mode, "--port", "0", "--data-dir", data,
            "--workers", str(workers), *AUTH_ARGS, *extra]  # fmt: skip
    if store:
        args += ["--store", store]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = process.stdout.readline().decode()
    match = re.search(r"listening on \S+:(\d+)", line)
    if not match:
        raise RuntimeError(f"server did not start: {process.stderr.read().decode()}")
    time.sleep(1 + workers)  # (the workers start after the listening line)
    try:
        yield int(match.group(1))
    finally:
        process.terminate()
        process.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def auth_flows(port, seconds, concurrency):
    """
    Registrations (whose logins the others use), password logins, token
    logins: flows per second each.
    """
    with tempfile.NamedTemporaryFile(suffix=".creds") as creds:
        flows = dict(concurrency=concurrency, creds=creds.name)
        out = {}
        for mode, duration in (("register", seconds), ("pwlogin", seconds),
                               ("tokenlogin", seconds / 2)):  # fmt: skip
            result = loadgen(mode, port, duration, **flows)
            out[mode] = result["flows_per_s"]
            out[f"{mode}_p99_ms"] = result["p99_ms"]
        return out


def echo(port, seconds):
    return loadgen("pipeline", port, seconds, conns=50, depth=16, size=64)["msgs_per_s"]


def measure(seconds, concurrency):
    """
    Yield (label, results) for each configuration.
    """
    pg = PostgresServer.temporary(durable=True).start()
    try:
        for store in ("sqlite", "postgresql"):
            for workers in (1, 2):
                url = pg.create_database(f"s{workers}") if store != "sqlite" else None
                with server("auth", workers, url) as port:
                    results = auth_flows(port, seconds, concurrency)
                yield f"{store}, {workers} worker(s)", results
        for workers in (1, 2):
            with server("echo", workers) as port:
                yield f"echo mode, {workers} worker(s)", {"echo": echo(port, seconds)}
    finally:
        pg.destroy()
    if cluster_missing():
        yield f"HAProxy: skipped ({cluster_missing()})", {}
        return
    for mode in ("auth", "echo"):
        args = ["--mode", mode, *AUTH_ARGS]
        cluster = Cluster(2, args).start()
        try:
            if mode == "auth":
                results = auth_flows(cluster.port, seconds, concurrency)
            else:
                results = {"echo": echo(cluster.port, seconds)}
        finally:
            cluster.stop()
        yield f"HAProxy, 2 nodes x 1 worker, PostgreSQL ({mode})", results


def table(runs):
    """
    The Markdown table: for each configuration, each figure's median over
    the repetitions, with their range when there were several.
    """
    lines = [
        "| configuration | token logins/s | password logins/s | registrations/s "
        "| pipelined echo msgs/s |",
        "|---|---|---|---|---|",
    ]
    for label, results in runs.items():

        def cell(key, results=results):
            values = sorted(r[key] for r in results if key in r)
            if not values:
                return ""
            median = statistics.median(values)
            spread = f" ({values[0]:,.0f}-{values[-1]:,.0f})" if len(values) > 1 else ""
            return f"{median:,.0f}{spread}"

        cells = " | ".join(
            cell(k) for k in ("tokenlogin", "pwlogin", "register", "echo")
        )
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s windows, 1 rep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="auth flows")
    options = parser.parse_args()
    benchmarks.compile_tools()
    seconds, reps = (2, 1) if options.quick else (6, options.reps)
    per_hash = seconds_per_hash()
    print(f"argon2id check at the default parameters: {per_hash * 1000:.0f} ms; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    runs = {}
    for rep in range(reps):
        for label, results in measure(seconds, options.concurrency):
            print(f"rep {rep + 1}: {label}: {results}", flush=True)
            runs.setdefault(label, []).append(results)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(table(runs))
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(BENCH, "results", f"scaling-{stamp}.json"), "w") as f:
        record = {"when": stamp, "load": os.getloadavg(), "runs": runs,
                  "seconds_per_hash": per_hash}  # fmt: skip
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
