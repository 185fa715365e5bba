"""
What the cluster (contrib/cluster/cluster.py) must show, each check a
client of HAProxy doing what users do, printing one "ok:" line with what it
saw, or raising.
"""

import secrets
import threading
import time

from echotwist.wire import MessageSocket
from tests.test_deployment import one_process_allowance

PASSWORD = "a perfectly fine passphrase"


def connect(cluster):
    s = MessageSocket.connect_to(("127.0.0.1", cluster.port), timeout=10)
    assert s.recv_message()["type"] == "welcome"
    return s


def until(s, *kinds):
    while True:
        message = s.recv_message()
        if message["type"] in kinds:
            return message


def register(cluster, login):
    with connect(cluster) as s:
        until(s, "ask")
        s.send_message({"type": "answer", "field": "login", "value": login})
        assert until(s, "ask")["field"] == "new_password"
        s.send_message({"type": "answer", "field": "new_password", "value": PASSWORD})
        return until(s, "auth_ok", "error")


def token_login(s, token):
    s.send_message({"type": "token", "token": token})
    return until(s, "auth_ok", "error")


def echo(s, text):
    s.send_message({"type": "say", "text": text})
    return until(s, "echo")["text"] == text


def sessions(cluster):
    return {name: total for name, (_, total) in cluster.stats().items()}


def tokens_everywhere(cluster):
    """
    A client registers through HAProxy, then reconnects many times: its
    connections land on every node, and its token works on each.
    """
    token = register(cluster, "traveller")["token"]
    before = sessions(cluster)
    for _ in range(4 * cluster.count):
        with connect(cluster) as s:
            assert token_login(s, token)["login"] == "traveller"
            assert echo(s, "over here")
    after = sessions(cluster)
    landed = {name: after[name] - before[name] for name in after}
    assert all(landed.values()), landed
    shown = ", ".join(f"{name} {n}" for name, n in sorted(landed.items()))
    print(f"ok: registered through HAProxy; {sum(landed.values())} token logins "
          f"landed on {shown}; each one accepted the token and echoed")  # fmt: skip
    return token


def refused_everywhere(cluster, token):
    """
    C{token} is refused by each of 2 x nodes connections through HAProxy
    (round robin: every node, twice).
    """
    codes = set()
    for _ in range(2 * cluster.count):
        with connect(cluster) as s:
            codes.add(token_login(s, token).get("code"))
    assert codes == {"bad_token"}, codes


def logout_everywhere(cluster):
    """
    A token revoked (logout) through one node is refused on every node at
    once (the stores are shared; no node caches tokens).
    """
    token = register(cluster, "leaver")["token"]
    with connect(cluster) as s:
        token_login(s, token)
        s.send_message({"type": "logout"})
        until(s, "bye")
    revoked = time.monotonic()
    refused_everywhere(cluster, token)
    took = time.monotonic() - revoked
    print(f"ok: a token logged out on one node was refused by all "
          f"{2 * cluster.count} connections after it ({took:.2f} s)")  # fmt: skip


def admin_revoke_everywhere(cluster, within=1.0):
    """
    An administrator revokes a login's tokens once (C{echolab-admin
    --store URL revoke}, from node1's namespace): its sessions on every
    node end, and its token is refused by every node, within a second.
    """
    token = register(cluster, "revoked")["token"]
    before = sessions(cluster)
    held = []
    for _ in range(2 * cluster.count):  # caches warm, a session on each node
        s = connect(cluster)
        assert token_login(s, token)["login"] == "revoked"
        held.append(s)
    after = sessions(cluster)
    landed = {name: after[name] - before[name] for name in after}
    assert all(landed.values()), landed
    said = cluster.admin(1, "revoke", "revoked")
    revoked = time.monotonic()
    ended = []
    for s in held:
        with s:
            s.settimeout(max(within - (time.monotonic() - revoked), 0.01))
            until(s, "bye")
            ended.append(time.monotonic() - revoked)
    refused_everywhere(cluster, token)
    refused = time.monotonic() - revoked
    print(f"ok: admin revoke made once ({said!r}): all {len(held)} sessions "
          f"on {len(landed)} nodes ended within {max(ended):.2f} s; the token "
          f"was refused by all {2 * cluster.count} connections after it "
          f"(done {refused:.2f} s after the revoke)")  # fmt: skip


def throttle_across_nodes(cluster, free=3):
    """
    Wrong passwords for one login, spread over the nodes by HAProxy, get
    the free failures (nodes run with --throttle-login-address 3) and one
    more of one node, not of all of them; then they are refused unchecked
    while blocked.
    """
    register(cluster, "victim")

    def guess(i):
        with connect(cluster) as s:
            until(s, "ask")
            s.send_message({"type": "answer", "field": "login", "value": "victim"})
            until(s, "ask")
            s.send_message({"type": "answer", "field": "password", "value": f"guess number {i}"})  # fmt: skip
            return until(s, "error")["code"]

    codes = one_process_allowance(guess, free, guesses=free + 4)
    print(f"ok: {len(codes)} wrong passwords over {cluster.count} nodes: "
          f"{codes.count('bad_password')} checked, the rest refused unchecked "
          f"while blocked ({' '.join(codes)})")  # fmt: skip


def kill_a_node(cluster, victim=1, registrations=45, threads=3):
    """
    Registrations keep coming, from several clients at once, while a node
    is killed with kill -9: every acknowledged one survives (its token
    works afterwards), clients cut off reconnect and land on the other
    nodes, and echo clients that reconnect with their tokens keep being
    served.
    """
    acknowledged, cut = {}, []
    done = threading.Semaphore(0)
    echoers = [
        EchoClient(cluster, register(cluster, f"echoer{i}")["token"])
        for i in range(2 * cluster.count)
    ]
    for echoer in echoers:
        echoer.start()

    def registering(share):
        for _ in range(share):
            login = f"user-{secrets.token_hex(4)}"
            for _attempt in range(5):
                try:
                    answer = register(cluster, login)
                    if answer["type"] == "auth_ok":
                        acknowledged[login] = answer["token"]
                    break
                except (OSError, EOFError, AssertionError):
                    cut.append(login)  # no answer: tried again, elsewhere
            done.release()

    clients = [
        threading.Thread(target=registering, args=(registrations // threads,))
        for _ in range(threads)
    ]
    for client in clients:
        client.start()
    for _ in range(registrations // 3):
        done.acquire()
    cluster.kill_node(victim)
    for client in clients:
        client.join(60)
    cluster.wait_until(lambda s: s[f"node{victim}"][0] == "DOWN", "the node DOWN")
    for login, token in acknowledged.items():
        with connect(cluster) as s:
            assert token_login(s, token)["login"] == login, login
    served = [echoer.stop() for echoer in echoers]
    reconnected = sum(1 for echoer in echoers if echoer.reconnects)
    assert reconnected, "no echo client was on the killed node"
    print(f"ok: node{victim} killed (kill -9) after {registrations // 3} of "
          f"{registrations} registrations ({threads} clients at once); "
          f"{len(acknowledged)} acknowledged, all {len(acknowledged)} tokens work "
          f"afterwards; {len(cut)} attempt(s) cut off and retried on the others; "
          f"{reconnected} of {len(echoers)} echo clients reconnected, all kept "
          f"being served ({sum(served)} echoes)")  # fmt: skip


class EchoClient(threading.Thread):
    """
    A logged-in client saying things all along, reconnecting (with its
    token) when its node goes.
    """

    def __init__(self, cluster, token):
        super().__init__(daemon=True)
        self.cluster, self.token = cluster, token
        self.echoes = self.reconnects = 0
        self._finished = threading.Event()

    def run(self):
        while not self._finished.is_set():
            try:
                with connect(self.cluster) as s:
                    assert token_login(s, self.token)["type"] == "auth_ok"
                    while not self._finished.is_set():
                        assert echo(s, f"echo {self.echoes}")
                        self.echoes += 1
                        time.sleep(0.01)
            except (OSError, EOFError):
                self.reconnects += 1
                time.sleep(0.05)

    def stop(self):
        self._finished.set()
        self.join(10)
        assert self.echoes > 0
        return self.echoes


def run_all(cluster):
    tokens_everywhere(cluster)
    logout_everywhere(cluster)
    admin_revoke_everywhere(cluster)
    throttle_across_nodes(cluster)
    kill_a_node(cluster)
    print("ok: all checks passed")
    return 0
