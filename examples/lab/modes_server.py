"""
Step 8, the lab finished: the servers of steps 5 and 6 over step 7's
frames, i.e. echolab's ident and auth modes (docs/protocol.md), with step
8's repeat. Names, users and tokens are kept as steps 5 and 6 keep them.
A question ("ask") waits for its "answer"; after any error the pending
question is sent again; "say" waits for the greeting; until then a token
may replace the whole login.

    python modes_server.py 9090 auth        # or ident
    echolab-check 127.0.0.1:9090 --mode auth
"""

import hmac
import secrets
import sys
import threading
import time

from auth_server import MAX_TRIES, TOKEN_DAYS, TOKENS, USERS, check_login
from auth_server import check_new_password, password_hash, token_key
from framed_server import error, run
from ident_server import NAMES, check_name, load, save
from repeat_server import RepeatSession

# Each client has a thread: one at a time reads and writes the files, or
# two registrations at once would each write the users without the other.
STORE = threading.Lock()
PROMPTS = {"name": "What is your name?", "login": "Login:", "password": "Password:",
           "new_password": "New login. Choose a password (8 characters or more):"}  # fmt: skip


def lookup(path, key):
    with STORE:
        return load(path).get(key)


def store(path, key, value):
    """Set one entry of a store (remove it, for None), then write the file."""
    with STORE:
        data = load(path)
        data[key] = value
        if value is None:
            del data[key]
        save(path, data)


class QuestionSession(RepeatSession):
    """What ident and auth modes share: questions, and no say before."""

    ready = False
    pending = None  # the field of the question waiting for its answer

    def ask(self, field):
        self.pending = field
        secret = field.endswith("password")
        question = {"type": "ask", "field": field, "text": PROMPTS[field]}
        self.conn.send_message({**question, "secret": secret})

    def refuse(self, code, text):
        self.conn.send_message(error(code, text))
        if self.pending is not None:
            self.ask(self.pending)

    def greet(self, name, known):
        self.pending, self.ready = None, True
        text = f"Welcome back, {name}!" if known else f"Nice to meet you, {name}!"
        self.conn.send_message(
            {"type": "greet", "name": name, "known": known, "text": text}
        )

    def handle(self, message):
        kind = message["type"]
        if kind == "answer" and self.pending and message["field"] == self.pending:
            return self.answer(self.pending, message["value"])
        if kind == "say" and self.ready:
            self.say(message)
            return True
        return self.other(message)

    def other(self, message):
        if self.pending is not None:
            why = f"the pending question is {self.pending!r}"
        else:
            why = f"{message['type']!r} is not expected now"
        self.refuse("bad_state", why)
        return True


class IdentSession(QuestionSession):
    mode = "ident"

    def start(self):
        name = lookup(NAMES, self.address[0])
        if name is None:
            self.ask("name")
        else:
            self.greet(name, True)

    def answer(self, field, value):
        name = value.strip()
        complaint = check_name(name)
        if complaint is not None:
            self.refuse("bad_value", complaint)
            return True
        store(NAMES, self.address[0], name)  # stored before the greeting
        self.greet(name, False)
        return True


class AuthSession(QuestionSession):
    mode = "auth"
    login = user = token = None  # token: the key of the one used or issued here
    wrong = 0

    def start(self):
        self.ask("login")

    def answer(self, field, value):
        if field == "login":
            complaint = check_login(value)
            if complaint is not None:
                self.refuse("bad_value", complaint)
                return True
            self.login, self.user = value, lookup(USERS, value.lower())
            self.ask("password" if self.user else "new_password")
        elif field == "password":
            salt, stored = bytes.fromhex(self.user["salt"]), self.user["hash"]
            if hmac.compare_digest(password_hash(value, salt), stored):
                self.logged_in(self.user["login"], "password", known=True)
                return True
            self.wrong += 1  # counted per connection: the third one closes it
            if self.wrong >= MAX_TRIES:
                self.conn.send_message(error("too_many_attempts", "3 wrong passwords"))
                self.conn.send_message({"type": "bye", "text": "Goodbye."})
                return False
            self.refuse("bad_password", "wrong password")
        else:  # new_password
            complaint = check_new_password(value)
            if complaint is not None:
                self.refuse("weak_password", complaint)
                return True
            salt = secrets.token_bytes(16)
            user = {"login": self.login, "salt": salt.hex(),
                    "hash": password_hash(value, salt)}  # fmt: skip
            store(USERS, self.login.lower(), user)
            self.logged_in(self.login, "register", known=False)
        return True

    def logged_in(self, login, via, known):
        token = secrets.token_urlsafe(32)
        self.token, expires = token_key(token), int(time.time()) + TOKEN_DAYS * 86400
        store(TOKENS, self.token, {"login": login, "expires": expires})
        ok = {"type": "auth_ok", "login": login, "via": via}
        self.conn.send_message({**ok, "token": token, "expires": expires})
        self.greet(login, known)

    def other(self, message):
        if message["type"] == "token" and not self.ready:
            key = token_key(message["token"])
            entry = lookup(TOKENS, key)
            if entry is None or entry["expires"] <= time.time():
                self.refuse("bad_token", "unknown, expired or revoked token")
                return True
            self.token = key
            ok = {"type": "auth_ok", "login": entry["login"], "via": "token"}
            self.conn.send_message(ok)
            self.greet(entry["login"], True)
            return True
        if message["type"] == "logout" and self.ready:
            store(TOKENS, self.token, None)  # revoked: forgotten
            self.conn.send_message({"type": "bye", "text": "Logged out."})
            return False
        return super().other(message)


if __name__ == "__main__":
    mode = sys.argv[2] if len(sys.argv) > 2 else "auth"
    run({"echo": RepeatSession, "ident": IdentSession, "auth": AuthSession}[mode])
