"""
Client workloads for the reliability tests (tests/test_reliability.py)
and their longer runs (benchmarks/reliability.py): many clients at once on
one asyncio loop, against a server in another process, each checking every
reply it gets. Nothing here sleeps to wait for something; every wait has a
deadline.
"""

import asyncio
import base64
import os
import random
import sqlite3
import statistics
import time
from collections import Counter

from echotwist.wire import HEADER, decode_message, encode_message

TIMEOUT = 60  # seconds any one reply may take on a loaded machine


class Closed(Exception):
    """
    The server closed the connection (EOF or reset).
    """


class Client:
    """
    One connection, speaking frames.
    """

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port, host="127.0.0.1", source=None):
        """
        Connect, from the loopback address C{source} if given (Linux
        answers for all of 127/8, so each client can have an address of
        its own for ident mode).
        """
        local = (source, 0) if source else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), TIMEOUT
        )
        return cls(reader, writer)

    def send(self, message):
        payload = message if isinstance(message, bytes) else encode_message(message)
        self.writer.write(HEADER.pack(len(payload)) + payload)

    def send_raw(self, data):
        self.writer.write(data)

    async def recv(self, timeout=TIMEOUT):
        try:
            header = await asyncio.wait_for(self.reader.readexactly(4), timeout)
            (length,) = HEADER.unpack(header)
            payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise Closed(str(e)) from None
        return decode_message(payload)

    async def until(self, kind, timeout=TIMEOUT):
        while True:
            message = await self.recv(timeout)
            if message["type"] == kind:
                return message

    async def closed(self, timeout=TIMEOUT):
        """
        Wait for the server to close, discarding what comes first.

        @return: the messages received before the close.
        """
        messages = []
        try:
            while True:
                messages.append(await self.recv(timeout))
        except Closed:
            return messages

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def source_address(i):
    """
    A loopback address of its own for client C{i} (127.1.0.0/16).
    """
    return f"127.1.{i // 250}.{i % 250 + 1}"


# Conversations: each client has its own texts and checks each reply.


async def log_in(client, mode, i, password=None):
    """
    Take a new connection through its mode's start: nothing (echo), a name
    (ident, from an address of its own), a registration (auth).

    @return: the C{auth_ok} in auth mode, else L{None}.
    """
    welcome = await client.recv()
    check(welcome["type"] == "welcome" and welcome["mode"] == mode, welcome)
    if mode == "ident":
        ask = await client.recv()
        check(ask == {**ask, "type": "ask", "field": "name"}, ask)
        name = f"Кирилл {i}"
        client.send({"type": "answer", "field": "name", "value": name})
        greet = await client.recv()
        check(
            (greet["type"], greet["name"], greet["known"]) == ("greet", name, False),
            greet,
        )
    elif mode == "auth":
        await client.recv()  # ask login
        login = f"user{i}"
        client.send({"type": "answer", "field": "login", "value": login})
        ask = await client.recv()
        check(ask["field"] == "new_password", ask)
        client.send(
            {
                "type": "answer",
                "field": "new_password",
                "value": password or f"pass phrase {i}",
            }
        )
        auth_ok = await client.recv()
        check(
            (auth_ok["type"], auth_ok["login"], auth_ok["via"])
            == ("auth_ok", login, "register"),
            auth_ok,
        )
        greet = await client.recv()
        check(greet["type"] == "greet" and not greet["known"], greet)
        return auth_ok
    return None


async def converse(client, i, says):
    """
    C{says} rounds of C{say} with texts of this client's own, each echo
    checked (text, C{n}, C{of}).

    @return: the number of echoes received.
    """
    echoes = 0
    for r in range(says):
        text = f"client {i} round {r} " + "ж" * (i % 50)
        repeat = 1 + (i + r) % 4
        client.send({"type": "say", "text": text, "repeat": repeat})
        for n in range(1, repeat + 1):
            echo = await client.recv()
            expected = {"type": "echo", "text": text}
            if repeat > 1:
                expected.update(n=n, of=repeat)
            check(echo == expected, (i, r, echo))
            echoes += 1
    return echoes


async def many_conversations(ports, count, says=5, offset=0):
    """
    Open C{count} connections, spread over the servers in C{ports} (a
    dict mode -> port); once every one is open and past its mode's start,
    all hold C{says} rounds of say/echo at once, then close.

    @return: a dict of figures.
    """
    modes = sorted(ports)
    started = time.monotonic()

    async def open_one(i):
        mode = modes[i % len(modes)]
        # (ident: one name per address; auth: a class's registrations are
        # budgeted per address)
        source = source_address(offset + i) if mode != "echo" else None
        client = await Client.connect(ports[mode], source=source)
        await log_in(client, mode, offset + i)
        return client

    clients = await asyncio.gather(*(open_one(i) for i in range(count)))
    opened = time.monotonic()
    echoes = await asyncio.gather(
        *(converse(c, offset + i, says) for i, c in enumerate(clients))
    )
    await asyncio.gather(*(c.close() for c in clients))
    return {
        "connections": count,
        "held at once": count,
        "echoes checked": sum(echoes),
        "open s": round(opened - started, 2),
        "talk s": round(time.monotonic() - opened, 2),
    }


async def burst(port, count):
    """
    C{count} connects at once; each must get C{welcome}.

    @return: (welcomes, sorted latencies in seconds).
    """

    async def one():
        start = time.monotonic()
        client = await Client.connect(port)
        try:
            welcome = await client.recv()
            check(welcome["type"] == "welcome", welcome)
            return time.monotonic() - start, client
        except BaseException:
            await client.close()
            raise

    results = await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.gather(*(c.close() for _, c in results))
    return len(results), sorted(latency for latency, _ in results)


def percentile(values, fraction):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(fraction * len(values)))]


# Fuzzing: random bytes and frames from several connections at once.


VALID = [
    {"type": "say", "text": "fuzz", "repeat": 3},
    {"type": "answer", "field": "login", "value": "fuzzer"},
    {"type": "answer", "field": "new_password", "value": "fuzzing passphrase"},
    {"type": "answer", "field": "password", "value": "fuzzing passphrase"},
    {"type": "answer", "field": "name", "value": "Fuzz"},
    {"type": "token", "token": "A" * 43},
    {"type": "logout"},
    {"type": "quit"},
]


def fuzz_payload(rnd):
    """
    A random payload: bytes, a mutated valid message, or a valid one.
    """
    roll = rnd.random()
    if roll < 0.25:
        return rnd.randbytes(rnd.randrange(0, 64))
    payload = encode_message(rnd.choice(VALID))
    if roll < 0.85:
        payload = mutate(
            rnd,
            payload,
            rnd.randint(1, 4),
            lambda: rnd.choice([rnd.randrange(256), *b'{}[]",:\\0e.-ntfu']),
        )
    return payload


def mutate(rnd, payload, edits, pick_byte):
    """
    C{payload} with C{edits} random edits: a byte from C{pick_byte()}
    inserted or put in place of another, or a byte deleted.
    """
    payload = bytearray(payload)
    for _ in range(edits):
        where = rnd.randrange(len(payload) + 1)
        byte = pick_byte()
        action = rnd.randrange(3)
        if action == 0:
            payload.insert(where, byte)
        elif where < len(payload):
            if action == 1:
                payload[where] = byte
            else:
                del payload[where]
    return bytes(payload)


async def fuzz(port, seed, connections=8, frames=400):
    """
    C{connections} clients at once each send C{frames} random frames,
    reading everything that comes back. Each connection carries a batch of
    up to 40 frames (some cut in two pieces) and then C{quit}: once the
    server closes, it has judged every frame of the batch, unless one of
    them closed the connection first (a quit, a logout, too many bad
    messages). Now and then a connection instead carries raw garbage or a
    huge length, which desynchronizes or ends the stream, and hangs up.

    @return: a dict of figures.
    """
    figures = Counter()

    async def session(rnd, budget):
        client = await Client.connect(port)
        figures["connections"] += 1
        reader = asyncio.ensure_future(client.closed())
        sent = 0
        try:
            roll = rnd.random()
            if roll < 0.04:
                client.send_raw(rnd.randbytes(rnd.randrange(1, 200)))
                client.writer.write_eof()
                figures["raw garbage streams"] += 1
            elif roll < 0.07:
                length = rnd.choice([65537, 2**31, 2**32 - 1])
                client.send_raw(HEADER.pack(length) + rnd.randbytes(100))
                figures["huge lengths"] += 1
            else:
                sent = min(budget, rnd.randint(1, 40))
                for _ in range(sent):
                    payload = fuzz_payload(rnd)
                    data = HEADER.pack(len(payload)) + payload
                    if rnd.random() < 0.2:
                        cut = rnd.randrange(len(data) + 1)
                        client.send_raw(data[:cut])
                        await client.writer.drain()
                        await asyncio.sleep(0)  # (the pieces may go apart)
                        client.send_raw(data[cut:])
                    else:
                        client.send_raw(data)
                client.send({"type": "quit"})
                figures["frames"] += sent
            messages = await asyncio.wait_for(reader, TIMEOUT)
        except ConnectionError:
            figures["connections reset"] += 1
            return max(sent, 1)
        finally:
            await client.close()
        figures["replies"] += len(messages)
        if messages and messages[-1] == {
            "type": "bye",
            "text": messages[-1].get("text"),
        }:
            figures["connections ended with bye"] += 1
        return max(sent, 1)

    async def one(k):
        rnd = random.Random(f"{seed}-{k}")
        left = frames
        while left > 0:
            left -= await session(rnd, left)

    await asyncio.gather(*(one(k) for k in range(connections)))
    return dict(figures)


# Durability: registrations and identifications, then kill -9.


async def registration_burst(port, prefix, clients, acknowledged, enough, on_enough):
    """
    C{clients} connections register logins C{prefix}-K-N one after the
    other, each recording (login, password, token) in C{acknowledged} once
    its C{auth_ok} arrives. When C{enough} are recorded, C{on_enough()} is
    called (it kills the server); the burst ends when every connection has
    been cut.
    """
    fired = False

    async def one(k):
        nonlocal fired
        n = 0
        while True:
            try:
                client = await Client.connect(port)
            except OSError:
                return
            try:
                while True:
                    login = f"{prefix}-{k}-{n}"
                    password = f"durable {login} {os.urandom(4).hex()}"
                    n += 1
                    await client.until("ask")
                    client.send({"type": "answer", "field": "login", "value": login})
                    ask = await client.until("ask")
                    check(ask["field"] == "new_password", ask)
                    client.send(
                        {"type": "answer", "field": "new_password", "value": password}
                    )
                    auth_ok = await client.until("auth_ok")
                    acknowledged.append((login, password, auth_ok["token"]))
                    if len(acknowledged) >= enough and not fired:
                        fired = True
                        on_enough()
                    await client.until("greet")
                    # Next login on a new connection.
                    await client.close()
                    client = await Client.connect(port)
            except (Closed, OSError, asyncio.TimeoutError):
                await client.close()
                if fired:
                    return

    await asyncio.gather(*(one(k) for k in range(clients)))


async def identification_burst(port, first, clients, acknowledged, enough, on_enough):
    """
    Like L{registration_burst} in ident mode: each connection comes from
    an address of its own and records (address, name) once greeted.
    """
    fired = False
    addresses = iter(range(first, first + 1_000_000))

    async def one(k):
        nonlocal fired
        while True:
            i = next(addresses)
            address = source_address(i)
            name = f"name {i} {os.urandom(3).hex()}"
            try:
                client = await Client.connect(port, source=address)
            except OSError:
                return
            try:
                await client.until("ask")
                client.send({"type": "answer", "field": "name", "value": name})
                greet = await client.until("greet")
                check(greet["name"] == name, greet)
                acknowledged.append((address, name))
                if len(acknowledged) >= enough and not fired:
                    fired = True
                    on_enough()
                await client.close()
            except (Closed, OSError, asyncio.TimeoutError):
                await client.close()
                if fired:
                    return

    await asyncio.gather(*(one(k) for k in range(clients)))


async def verify_registrations(port, acknowledged, password_sample):
    """
    Every acknowledged registration logs in with its token; a sample also
    with its password (the login typed in another case).

    @return: (token logins that failed, password logins that failed).
    """
    lost_tokens, lost_passwords = [], []
    semaphore = asyncio.Semaphore(32)

    async def by_token(login, password, token):
        async with semaphore:
            client = await Client.connect(port)
            try:
                await client.until("ask")
                client.send({"type": "token", "token": token})
                reply = await client.recv()
                if reply.get("type") != "auth_ok" or reply.get("login") != login:
                    lost_tokens.append((login, reply))
            finally:
                await client.close()

    async def by_password(login, password, token):
        async with semaphore:
            client = await Client.connect(port)
            try:
                await client.until("ask")
                client.send(
                    {"type": "answer", "field": "login", "value": login.upper()}
                )
                ask = await client.recv()
                if ask.get("field") != "password":
                    lost_passwords.append((login, ask))
                    return
                client.send({"type": "answer", "field": "password", "value": password})
                reply = await client.recv()
                if reply.get("type") != "auth_ok" or reply.get("via") != "password":
                    lost_passwords.append((login, reply))
            finally:
                await client.close()

    await asyncio.gather(*(by_token(*a) for a in acknowledged))
    await asyncio.gather(*(by_password(*a) for a in password_sample))
    return lost_tokens, lost_passwords


async def verify_identifications(port, acknowledged):
    """
    Every acknowledged identification is greeted by name, as known.

    @return: the ones that were not.
    """
    lost = []
    semaphore = asyncio.Semaphore(32)

    async def one(address, name):
        async with semaphore:
            client = await Client.connect(port, source=address)
            try:
                await client.recv()  # welcome
                greet = await client.recv()
                if greet != {**greet, "type": "greet", "name": name, "known": True}:
                    lost.append((address, name, greet))
            finally:
                await client.close()

    await asyncio.gather(*(one(*a) for a in acknowledged))
    return lost


def integrity(path):
    """
    SQLite's own check of the database file: C{"ok"} when consistent.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def secrets_found(folder, secrets):
    """
    How many times any secret (raw, hex or base64) appears in any file
    under C{folder} (the database, its WAL and shared memory, the logs).
    """
    needles = []
    for secret in secrets:
        raw = secret.encode()
        needles += [raw, raw.hex().encode(), base64.b64encode(raw)]
    found = 0
    for where, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(where, name), "rb") as f:
                content = f.read()
            found += sum(content.count(needle) for needle in needles)
    return found


# A client that never reads.


def rss_kib(pid):
    """
    The resident set size of process C{pid}, in KiB (VmRSS).
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


async def slow_reader(
    port, pid, stall_timeout, text_size=60_000, limit_s=60, stalled=1
):
    """
    C{stalled} clients each send C{say} (C{text_size} characters, C{repeat}
    100) in a loop and never read, until the server cuts them; meanwhile
    another client keeps echoing, and the server's RSS is sampled.

    Once the server gives up on a client it closes in stages, discarding
    (unparsed) what the client still sends for --linger seconds, so the
    bytes sent are given twice: within the first C{stall_timeout} seconds
    (before any cut: what backpressure let through) and in all.

    @return: a dict of figures.
    """
    import socket

    loop = asyncio.get_running_loop()
    baseline = rss_kib(pid)
    samples = [baseline]
    sent_by_then = None
    say = encode_message({"type": "say", "text": "x" * text_size, "repeat": 100})
    frame = HEADER.pack(len(say)) + say
    sockets = []
    for _ in range(stalled):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sockets.append(s)
    sent = 0
    cut = []
    started = time.monotonic()
    done = asyncio.Event()

    async def stall(s):
        nonlocal sent
        try:
            while time.monotonic() - started < limit_s:
                await asyncio.wait_for(loop.sock_sendall(s, frame), limit_s)
                sent += len(frame)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        cut.append(time.monotonic() - started)

    async def stall_all():
        await asyncio.gather(*(stall(s) for s in sockets))
        done.set()

    async def sample():
        nonlocal sent_by_then
        while not done.is_set():
            samples.append(rss_kib(pid))
            if time.monotonic() - started < stall_timeout:
                sent_by_then = sent
            try:
                await asyncio.wait_for(done.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    rtts = []

    async def echo():
        client = await Client.connect(port)
        await client.recv()
        i = 0
        while not done.is_set():
            t = time.monotonic()
            client.send({"type": "say", "text": f"still here {i}"})
            reply = await client.recv()
            check(reply == {"type": "echo", "text": f"still here {i}"}, reply)
            rtts.append(time.monotonic() - t)
            i += 1
        await client.close()

    await asyncio.gather(stall_all(), sample(), echo())
    for s in sockets:
        s.close()
    return {
        "stalled clients": stalled,
        "bytes sent within stall_timeout (before any cut)": sent_by_then,
        "bytes sent in all (with the lingering close's discards)": sent,
        "cut after s": round(max(cut), 2),
        "first cut after s": round(min(cut), 2),
        "rss baseline KiB": baseline,
        "rss max KiB": max(samples),
        "rss growth KiB": max(samples) - baseline,
        "rss samples": len(samples),
        "echoes answered meanwhile": len(rtts),
        "echo rtt p50 ms": round(1000 * statistics.median(rtts), 2) if rtts else None,
        "echo rtt p99 ms": round(1000 * percentile(rtts, 0.99), 2) if rtts else None,
        "echo rtt max ms": round(1000 * max(rtts), 2) if rtts else None,
    }


# Timeouts and shutdown.


async def timeouts(port, login_timeout, idle_timeout, frame_timeout):
    """
    On an auth server run with C{--max-connections 3} and these timeouts:
    one client never logs in, one logs in and falls silent, one leaves half
    a frame; a fourth connects meanwhile.

    Each "since" is taken before the server can have started the clock it
    times the client out on, so no timeout may come sooner.

    @return: a dict: for each of C{login}, C{idle}, C{frame}, the seconds
        until the close and the last two messages; C{refused}: what the
        fourth connection got.
    """

    async def timed_out(client, since):
        messages = await client.closed()
        elapsed = time.monotonic() - since
        await client.close()
        return elapsed, [(m["type"], m.get("code")) for m in messages][-2:]

    async def never_logs_in():
        since = time.monotonic()
        c = await Client.connect(port)
        await c.until("ask")
        return await timed_out(c, since)

    async def idle():
        c = await Client.connect(port)
        await log_in(c, "auth", 1)
        since = time.monotonic()
        c.send({"type": "say", "text": "last words"})
        await c.until("echo")
        return await timed_out(c, since)

    async def half_frame(ready):
        c = await Client.connect(port)
        await log_in(c, "auth", 2)
        payload = encode_message({"type": "say", "text": "never finished"})
        whole = HEADER.pack(len(payload)) + payload
        since = time.monotonic()
        c.send_raw(whole[: len(whole) // 2])
        ready.set()
        return await timed_out(c, since)

    ready = asyncio.Event()
    tasks = [
        asyncio.ensure_future(never_logs_in()),
        asyncio.ensure_future(idle()),
        asyncio.ensure_future(half_frame(ready)),
    ]
    await ready.wait()
    busy = await Client.connect(port)
    refused = await busy.closed()
    await busy.close()
    login, idle_, frame = await asyncio.gather(*tasks)
    return {
        "login": login,
        "idle": idle_,
        "frame": frame,
        "refused": [(m["type"], m.get("code")) for m in refused],
    }


async def shutdown(port, stop, groups=10):
    """
    Connect 5 x C{groups} clients to an auth server: 2 x C{groups} logged
    in, C{groups} registering at the moment C{stop()} is called (it sends
    SIGTERM), C{groups} at the password question, C{groups} at the login
    question. Every client then reads until the server closes.

    @return: (what each client received, the logins that got auth_ok).
    """
    ready = []
    for i in range(2 * groups):
        c = await Client.connect(port)
        await log_in(c, "auth", i)
        ready.append(c)
    registering, at_password, at_login = [], [], []
    for i in range(groups):
        c = await Client.connect(port)
        await c.until("ask")
        c.send({"type": "answer", "field": "login", "value": f"late{i}"})
        await c.until("ask")
        registering.append(c)
        c = await Client.connect(port)
        await c.until("ask")
        c.send({"type": "answer", "field": "login", "value": "user0"})
        await c.until("ask")
        at_password.append(c)
        c = await Client.connect(port)
        await c.until("ask")
        at_login.append(c)
    for i, c in enumerate(registering):
        c.send({"type": "answer", "field": "new_password", "value": f"in flight {i}"})
    stop()
    everyone = ready + registering + at_password + at_login
    received = await asyncio.gather(*(c.closed() for c in everyone))
    for c in everyone:
        await c.close()
    acknowledged = {f"user{i}" for i in range(2 * groups)}
    acknowledged |= {
        m["login"] for ms in received for m in ms if m["type"] == "auth_ok"
    }
    return received, acknowledged


# Attacks (tests/test_attacks.py): CPU, latency and reply counts.


def cpu_seconds(pid):
    """
    The CPU time process C{pid} has used, all its threads, user and system
    (C{utime + stime} of C{/proc/PID/stat}), in seconds.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # (the name may hold spaces)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_idle(pid, timeout, window=1.0, busy=0.1):
    """
    Sample the CPU time of C{pid} every 50 ms until, over the last
    C{window} seconds, it used less than C{busy} of one core.

    @return: (the seconds it took, the window's end included, or L{None}
        when not idle within C{timeout}; CPU seconds used meanwhile).
    """
    started = time.monotonic()
    first = cpu_seconds(pid)
    samples = [(started, first)]
    while True:
        await asyncio.sleep(0.05)  # the sampling period, not a wait for state
        now, cpu = time.monotonic(), cpu_seconds(pid)
        samples.append((now, cpu))
        while len(samples) > 1 and samples[1][0] <= now - window:
            samples.pop(0)
        since, cpu_then = samples[0]
        if now - since >= window and (cpu - cpu_then) / (now - since) < busy:
            return now - started, cpu - first
        if now - started > timeout:
            return None, cpu - first


async def rss_peak(pid, coroutine, every=0.05):
    """
    Run C{coroutine}, reading the VmRSS of C{pid} every C{every} seconds
    meanwhile.

    @return: (its result, the highest VmRSS seen, in KiB).
    """
    task = asyncio.ensure_future(coroutine)
    peak = rss_kib(pid)
    while not task.done():
        await asyncio.wait([task], timeout=every)
        peak = max(peak, rss_kib(pid))
    return task.result(), peak


async def abandon(port, seconds, tasks, conversation, addresses):
    """
    C{tasks} clients at once, for C{seconds}: each connects (from the next
    of C{addresses} loopback addresses, L{source_address}), runs
    C{conversation(client, n)} and hangs up at once, without waiting for
    any reply, then starts again.

    @return: the number of conversations held.
    """
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    held = 0

    async def one():
        nonlocal held
        while time.monotonic() < deadline:
            n = next(counter)
            client = await Client.connect(port, source=source_address(n % addresses))
            try:
                await conversation(client, n)
                held += 1
            finally:
                await client.close()

    await asyncio.gather(*(one() for _ in range(tasks)))
    return held


async def abandoned_registration(client, n):
    """
    Register a new login, and leave before the answer (L{abandon}).
    """
    await client.until("ask")
    client.send({"type": "answer", "field": "login", "value": f"gone{n}"})
    ask = await client.until("ask")
    check(ask["field"] == "new_password", ask)
    client.send(
        {"type": "answer", "field": "new_password", "value": f"never waited {n} here"}
    )


def abandoned_guess(logins):
    """
    A conversation for L{abandon}: a wrong password for one of C{logins},
    and leave before the answer.
    """

    async def conversation(client, n):
        await client.until("ask")
        client.send(
            {"type": "answer", "field": "login", "value": logins[n % len(logins)]}
        )
        ask = await client.until("ask")
        check(ask["field"] == "password", ask)
        client.send({"type": "answer", "field": "password", "value": f"guess {n}!"})

    return conversation


async def authenticate(port, login, password, field, source=None, timeout=TIMEOUT):
    """
    One connection answers C{login}, then C{password} to the question
    C{field} (C{"new_password"} registers, C{"password"} logs in).

    @return: (the reply to the password: C{auth_ok} or C{error}, seconds
        from connect to that reply).
    """
    started = time.monotonic()
    client = await Client.connect(port, source=source)
    try:
        await client.until("ask", timeout)
        client.send({"type": "answer", "field": "login", "value": login})
        ask = await client.until("ask", timeout)
        check(ask["field"] == field, (login, ask))
        client.send({"type": "answer", "field": field, "value": password})
        reply = await client.recv(timeout)
        return reply, time.monotonic() - started
    finally:
        await client.close()


async def answers_at_once(port, attempts, field, sources):
    """
    One connection per (login, password) of C{attempts}, connection K from
    loopback address C{sources[K]}; each answers its login and waits for
    the question C{field}; then all send their password at the same moment.

    @return: (the reply to each password, in order; seconds from the
        moment they were sent to the last reply).
    """

    async def open_one(login, source):
        client = await Client.connect(port, source=source)
        await client.until("ask")
        client.send({"type": "answer", "field": "login", "value": login})
        ask = await client.until("ask")
        check(ask["field"] == field, (login, ask))
        return client

    clients = await asyncio.gather(
        *(open_one(login, s) for (login, _), s in zip(attempts, sources, strict=True))
    )
    try:
        sent = time.monotonic()
        for client, (_, password) in zip(clients, attempts, strict=True):
            client.send({"type": "answer", "field": field, "value": password})
        replies = await asyncio.gather(*(c.recv() for c in clients))
        return replies, time.monotonic() - sent
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def reply_kind(reply):
    """
    C{"auth_ok"}, C{"ask"} or an error's code.
    """
    return reply.get("code", reply["type"])


async def lookups(port, count, source, limited=None, parallel=16):
    """
    C{count} connections from C{source}, C{parallel} at a time, each
    answering a login never registered (a look-up) and hanging up after
    the reply. The L{asyncio.Event} C{limited}, if given, is set at the
    first C{rate_limited}.

    @return: a L{Counter} of the replies (L{reply_kind}).
    """
    semaphore = asyncio.Semaphore(parallel)
    replies = Counter()

    async def one(n):
        async with semaphore:
            client = await Client.connect(port, source=source)
            try:
                await client.until("ask")
                client.send({"type": "answer", "field": "login", "value": f"probe{n}"})
                kind = reply_kind(await client.recv())
                replies[kind] += 1
                if kind == "rate_limited" and limited is not None:
                    limited.set()
            finally:
                await client.close()

    await asyncio.gather(*(one(n) for n in range(count)))
    return replies


async def registrations_then(port, count, stop):
    """
    C{count} connections, each from a loopback address of its own, each
    answering a new login; then all send their new password at the same
    moment, and C{stop()} is called when the first C{auth_ok} is in (hashes
    are then running and queued). Every client then reads until the server
    closes.

    @return: (what each client received, the time C{stop()} was called).
    """

    async def open_one(i):
        client = await Client.connect(port, source=source_address(i))
        await client.until("ask")
        client.send({"type": "answer", "field": "login", "value": f"queued{i}"})
        ask = await client.until("ask")
        check(ask["field"] == "new_password", ask)
        return client

    clients = await asyncio.gather(*(open_one(i) for i in range(count)))
    first = asyncio.Event()

    async def read(client):
        messages = []
        try:
            while True:
                messages.append(await client.recv())
                if messages[-1]["type"] == "auth_ok":
                    first.set()
        except Closed:
            return messages

    for i, client in enumerate(clients):
        client.send(
            {"type": "answer", "field": "new_password", "value": f"in the queue {i}"}
        )
    readers = [asyncio.ensure_future(read(c)) for c in clients]
    try:
        await asyncio.wait_for(first.wait(), TIMEOUT)
        stopped = time.monotonic()
        stop()
        return await asyncio.gather(*readers), stopped
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def silent_until_closed(port, timeout):
    """
    Connect and send nothing (on a TLS listener: not even a ClientHello).

    @return: seconds until the server closed the connection, or L{None}
        when it had not within C{timeout}.
    """
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            left = started + timeout - time.monotonic()
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for(reader.read(4096), left)
            except asyncio.TimeoutError:
                return None
            except ConnectionError:
                data = b""
            if not data:
                return time.monotonic() - started
    finally:
        writer.close()
