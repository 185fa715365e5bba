"""
Step 6 (lab task 6): an authentication server. Like step 5, but a client
logs in with a login and a password, registering on its first visit, and
gets a token, like a browser's cookie, to skip the password next time.

    python auth_server.py 9090
    python talk_client.py 127.0.0.1 9090

The lines are step 5's, with three more kinds:

    token?      send your token for this server (an empty line if none)
    * PROMPT    a secret question: the client hides what is typed
    token T     keep T as your token for this server
"""

import hashlib
import hmac
import re
import secrets
import time

from fallback_server import run
from ident_server import converse, load, save
from logging_server import log

USERS, TOKENS = "users.json", "tokens.json"
TOKEN_DAYS = 30
MAX_TRIES = 3


def password_hash(password, salt):
    """
    Never store a password: store a hash of it, and check a password by
    hashing it again. Two defences against a thief of users.json:

    - a salt, random for every password: the same password gets a different
      hash for each user, so one guess tests one user, not all, and tables
      of hashes of common passwords computed in advance are useless;
    - a slow hash: scrypt costs about 16 MiB and tens of milliseconds per
      guess (n=2**14, r=8), where sha256 costs a microsecond, so guessing
      billions of passwords is out of reach.
    """
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32
    ).hex()


def token_key(token):
    """
    Tokens are stored hashed too: whoever reads tokens.json cannot log in
    with them. A token is random and long, so a fast hash is enough.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_login(login):
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", login):
        return "A login has 1 to 32 of A-Z a-z 0-9 . _ -"
    return None


def check_new_password(password):
    if not 8 <= len(password) <= 1024:
        return "A password has 8 to 1024 characters."
    return None


def by_token(lines):
    """
    The login the client's token belongs to, or None.
    """
    token = lines.receive()
    entry = load(TOKENS).get(token_key(token)) if token else None
    if entry and entry["expires"] > time.time():
        return entry["login"]
    return None


def by_password(lines, user):
    for attempt in range(1, MAX_TRIES + 1):
        lines.send("*", "Password:")
        given = password_hash(lines.receive(), bytes.fromhex(user["salt"]))
        # compare_digest takes as long whatever the first difference: == stops
        # at it, and its timing would tell an attacker how much was right.
        if hmac.compare_digest(given, user["hash"]):
            return True
        log.info("wrong password for %s (%d)", user["login"], attempt)
        lines.send("!", "Wrong password.")
    return False


def register(lines, login):
    password = lines.ask("New login. Choose a password:", check_new_password, True)
    salt = secrets.token_bytes(16)
    users = load(USERS)
    users[login.lower()] = {
        "login": login,
        "salt": salt.hex(),
        "hash": password_hash(password, salt),
    }
    save(USERS, users)
    log.info("registered %s", login)


def authenticate(lines, address):
    """
    Log the client in by token, or by login and password (registering a
    new login); hand it a new token after a password.
    """
    lines.send_line("token?")
    login = by_token(lines)
    if login is not None:
        lines.send("ok", f"Welcome back, {login}! (logged in with your token)")
    else:
        login = lines.ask("Login:", check_login)
        user = load(USERS).get(login.lower())  # logins ignore case
        if user is None:
            register(lines, login)
        elif not by_password(lines, user):
            lines.send("!", "Too many wrong passwords; goodbye.")
            return False
        else:
            login = user["login"]
        token = secrets.token_urlsafe(32)  # 256 random bits: unguessable
        tokens = load(TOKENS)
        expires = time.time() + TOKEN_DAYS * 86400
        tokens[token_key(token)] = {"login": login, "expires": expires}
        save(TOKENS, tokens)
        lines.send("token", token)
        lines.send("ok", f"Hello, {login}!")
    log.info("%s:%d logged in as %s", *address, login)  # never the password
    return True


if __name__ == "__main__":
    run(converse(authenticate))
