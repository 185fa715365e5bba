#!/usr/bin/env python3
"""
A small echolab cluster on this one machine, for real: a PostgreSQL server
in a temporary folder, echolab nodes each in a network namespace of its own
(its own host, reached over a veth link on 10.77.x.y), and HAProxy in front
sending PROXY v2 headers (contrib/cluster/haproxy.cfg). Needs root (ip
netns), Debian's haproxy and postgresql, and echolab installed in the
Python that runs it.

    # build it, run the checks (contrib/cluster/cluster_checks.py), tear it down
    .venv/bin/python contrib/cluster/cluster.py --nodes 3

    # build it and keep it until Ctrl-C (prints where HAProxy listens)
    .venv/bin/python contrib/cluster/cluster.py --nodes 2 --serve

Everything it made (namespaces, links, processes, the folder) is removed
on the way out, Ctrl-C included.
"""

import argparse
import csv
import io
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, HERE]

from tests.postgres_support import PostgresServer, temporary_folder  # noqa: E402
from tests.postgres_support import missing as postgres_missing  # noqa: E402

NODE_PORT = 7000
TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)
# Cheap hashing and a generous registration budget: the checks register
# dozens of logins from one client address in a few seconds.
CHECK_ARGS = ("--hash-memory", "19456", "--hash-time", "2",
              "--budget-registrations", "10000", "--throttle-login-address", "3")  # fmt: skip


def missing():
    """
    L{None} when a cluster can be built here, else one line saying why not.
    """
    if os.geteuid() != 0:
        return "the cluster needs root (ip netns)"
    for tool, package in (("ip", "iproute2"), ("haproxy", "haproxy")):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} not found: apt-get install {package}"
    return postgres_missing()


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def free_subnet():
    """
    A 10.77.x.0/24 that no interface of this machine uses.
    """
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True)
    for _ in range(100):
        x = secrets.randbelow(256)
        if f"inet 10.77.{x}." not in used.stdout:
            return ipaddress.ip_network(f"10.77.{x}.0/24")
    raise RuntimeError("no free 10.77.x.0/24")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """
    PostgreSQL, C{nodes} echolab servers in namespaces, HAProxy in front.

    @ivar port: where HAProxy listens, on 127.0.0.1.
    """

    def __init__(self, nodes=3, echolab_args=CHECK_ARGS, workers=1, durable=True):
        self.count = nodes
        self.echolab_args = list(echolab_args)
        self.workers = workers
        self.tag = secrets.token_hex(2)
        self.folder = temporary_folder("echolab-cluster-")
        self.pg = PostgresServer(os.path.join(self.folder, "pg"), durable=durable)
        self.subnet = None
        self.nodes = {}  # number -> Popen
        self.haproxy = None
        self.port = None

    def namespace(self, n):
        return f"echolab-{self.tag}-n{n}"

    def address(self, n, side="node"):
        """
        The node's address on its link (a /30 each), or the host's end.
        """
        return str(self.subnet[4 * n + (2 if side == "node" else 1)])

    def start(self):
        self.pg.start()
        self.url = self.pg.create_database("echolab")
        self.subnet = free_subnet()
        for n in range(1, self.count + 1):
            self._link(n)
            self.start_node(n)
        self._start_haproxy()
        self.wait_until(lambda s: all(v[0] == "UP" for v in s.values()), "nodes UP")
        return self

    def _link(self, n):
        ns, host_end, node_end = (
            self.namespace(n),
            f"el{self.tag}h{n}",
            f"el{self.tag}n{n}",
        )
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end,
            "netns", ns)  # fmt: skip
        run("ip", "addr", "add", f"{self.address(n, 'host')}/30", "dev", host_end)
        run("ip", "link", "set", host_end, "up")
        for command in (
            ["ip", "addr", "add", f"{self.address(n)}/30", "dev", node_end],
            ["ip", "link", "set", node_end, "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            run("ip", "netns", "exec", ns, *command)

    def start_node(self, n):
        """
        Start (or restart) node C{n}; returns once it listens.
        """
        data = os.path.join(self.folder, f"node{n}")
        listen = f"haproxy:tcp:{NODE_PORT}:interface={self.address(n)}"
        node = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(n), sys.executable, "-c", TWISTD,
             "--pidfile=", "-n", "echolab", "--listen", listen, "--data-dir", data,
             "--store", self.url, "--workers", str(self.workers), *self.echolab_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        line = node.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"node {n} did not start: {node.stderr.read().decode()}")
        self.nodes[n] = node

    def admin(self, n, *argv):
        """
        Run C{echolab-admin --store URL ARGV} on the cluster's store from
        node C{n}'s namespace, as an operator there would.

        @return: what it printed.
        """
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace(n), sys.executable, "-m",
             "echotwist.admin", "--store", self.url, *argv],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"echolab-admin {' '.join(argv)}: {done.stderr}")
        return done.stdout.strip()

    def kill_node(self, n):
        """
        C{kill -9} node C{n} (its workers follow their parent).
        """
        self.nodes[n].send_signal(signal.SIGKILL)
        self.nodes[n].wait()

    def _start_haproxy(self):
        self.port = free_port()
        with open(os.path.join(HERE, "haproxy.cfg")) as f:
            template = string.Template(f.read())
        servers = "\n".join(
            f"    server node{n} {self.address(n)}:{NODE_PORT}"
            for n in range(1, self.count + 1)
        )
        config = os.path.join(self.folder, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(template.substitute(
                folder=self.folder, bind=f"127.0.0.1:{self.port}", servers=servers
            ))  # fmt: skip
        run("haproxy", "-c", "-q", "-f", config)
        self.haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", config],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.folder, "haproxy.log"), "w"),
        )  # fmt: skip

    def stats(self):
        """
        @return: {server name: (status, sessions so far)} from HAProxy.
        """
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(os.path.join(self.folder, "haproxy.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            r["svname"]: (r["status"].split()[0], int(r["stot"]))
            for r in rows
            if r["pxname"] == "nodes" and r["svname"].startswith("node")
        }

    def wait_until(self, condition, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition(self.stats()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}: {self._last_stats()}")

    def _last_stats(self):
        try:
            return self.stats()
        except OSError as e:
            with open(os.path.join(self.folder, "haproxy.log")) as f:
                return f"{e}; haproxy: {f.read()[-500:]}"

    def stop(self):
        for process in [self.haproxy, *self.nodes.values()]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [self.haproxy, *self.nodes.values()]:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for n in range(1, self.count + 1):
            subprocess.run(["ip", "netns", "del", self.namespace(n)],
                           capture_output=True)  # fmt: skip
        self.pg.destroy()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="per node")
    parser.add_argument("--serve", action="store_true", help="keep it until Ctrl-C")
    parser.add_argument("--echolab-args", default=None,
                        help="node options [default: cheap hashing, for the checks]")  # fmt: skip
    options = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"cannot build the cluster: {why}", file=sys.stderr)
        return 1
    args = CHECK_ARGS if options.echolab_args is None else options.echolab_args.split()
    cluster = Cluster(options.nodes, args, options.workers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        cluster.start()
        print(f"cluster: {cluster.count} nodes ({cluster.subnet}), PostgreSQL "
              f"{cluster.pg.folder}, HAProxy on 127.0.0.1:{cluster.port}", flush=True)  # fmt: skip
        if options.serve:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            return 0
        import cluster_checks

        return cluster_checks.run_all(cluster)
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
