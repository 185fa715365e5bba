"""
Step 5 (lab task 5): an identification server. It recognizes a client by
its IP address: a known one is greeted by name, an unknown one is asked
for its name, which is stored in names.json for next time.

    python ident_server.py 9090
    python talk_client.py 127.0.0.1 9090

Until step 7 adds a length header, a message here is one line of text: a
newline ends it. Each line the server sends starts with what it is:

    ? PROMPT    a question; the client answers with one line
    ! TEXT      something to show (a refused answer)
    ok TEXT     the greeting; from then on every line is echoed back as is
"""

import json
import os

from fallback_server import run
from logging_server import log

NAMES = "names.json"
MAX_LINE = 1024  # the longest line we read: a client cannot fill our memory


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:  # the first run: nobody known yet
        return {}


def save(path, data):
    """
    Write C{data} so that a crash never leaves a half-written file: write a
    new file, flush it to the disk, then rename it over the old one (a
    rename is all or nothing). Only its owner may read it (mode 0600).
    """
    temporary = path + ".new"
    private = lambda name, flags: os.open(name, flags, 0o600)  # noqa: E731
    with open(temporary, "w", encoding="utf-8", opener=private) as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


class Lines:
    """
    Messages as lines over a socket. recv() returns whatever bytes have
    arrived, maybe half a line, maybe three lines: makefile() gives a file
    whose readline() collects bytes until the newline, however they came.
    """

    def __init__(self, conn):
        self.file = conn.makefile("rwb")

    def send(self, kind, text):
        self.send_line(f"{kind} {text}")

    def send_line(self, line):
        self.file.write(f"{line}\n".encode("utf-8"))
        self.file.flush()

    def receive(self):
        """
        The next line, without its newline; EOFError if the client left.
        """
        line = self.file.readline(MAX_LINE + 1)
        if not line:
            raise EOFError()
        if len(line) > MAX_LINE:
            raise EOFError("line too long")  # end the conversation
        return line.decode("utf-8", errors="replace").rstrip("\r\n")

    def ask(self, prompt, check, secret=False):
        """
        Ask until C{check(answer)} returns no complaint.
        """
        while True:
            self.send("*" if secret else "?", prompt)
            answer = self.receive()
            complaint = check(answer)
            if complaint is None:
                return answer
            self.send("!", complaint)

    def echo_forever(self):
        while True:
            self.send_line(self.receive())


def check_name(name):
    if not 1 <= len(name.strip()) <= 64:
        return "A name has 1 to 64 characters."
    if not name.isprintable():
        return "A name cannot hold control characters."
    return None


def identify(lines, address):
    """
    Greet the client by name, asking for it the first time.
    """
    ip = address[0]  # the port changes with every connection; the IP does not
    names = load(NAMES)
    if ip in names:
        lines.send("ok", f"Welcome back, {names[ip]}!")
        log.info("%s is %s", ip, names[ip])
    else:
        name = lines.ask("What is your name?", check_name).strip()
        names[ip] = name
        save(NAMES, names)  # stored before we greet: the greeting is a promise
        log.info("%s is new: %s", ip, name)
        lines.send("ok", f"Nice to meet you, {name}!")
    return True


def converse(introduce):
    """
    A handler for step 4's C{run}: C{introduce(lines, address)} opens the
    conversation (and returns whether the client may go on), then every
    line is echoed, until the client leaves.
    """

    def handle(conn, address):
        lines = Lines(conn)
        try:
            if introduce(lines, address):
                lines.echo_forever()
        except (EOFError, ConnectionError):
            pass
        finally:
            conn.close()

    return handle


if __name__ == "__main__":
    run(converse(identify))
