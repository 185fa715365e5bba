"""Auth-mode stand-in, to exercise the auth scenarios without echolab.

Why it exists: the auth scenarios (registrations/s, password and token
logins/s, echo latency under login load) are echolab-only, but the load
generator's flows and run.py's plumbing must be tested before echolab
exists.  This stub follows the contract's auth-mode happy path and a few
refusals; it is NOT a reference for echolab's figures: its users live in
memory (no durable store) and its password hash is hashlib.scrypt
(n=2**14, r=8, p=1, about 16 MiB and some tens of ms) run in the default
thread pool.

    auth_stub.py --port 0 [--interface 127.0.0.1]
"""
import asyncio
import hashlib
import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _echo  # noqa: E402

LOGIN_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
TOKEN_LIFE = 30 * 24 * 3600
USERS = {}      # login.lower() -> (login, salt, hash)
TOKENS = {}     # token -> (login, expires)


def scrypt(password, salt):
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1)


def msg(**members):
    return _echo.frame(_echo.encode(members))


def ask(field):
    secret = field != "login"
    return msg(type="ask", field=field, text=f"{field}?", secret=secret)


async def serve(reader, writer):
    loop = asyncio.get_running_loop()
    welcome = {"type": "welcome", "server": "echolab", "version": "0",
               "mode": "auth", "max_message": _echo.MAX_MESSAGE}
    writer.write(_echo.frame(_echo.encode(welcome)) + ask("login"))
    pending, login, user = "login", None, None
    try:
        while True:
            n = int.from_bytes(await reader.readexactly(4), "big")
            if n > _echo.MAX_MESSAGE:
                writer.write(_echo.frame(_echo.TOO_LARGE))
                break
            payload = await reader.readexactly(n)
            if user is not None:
                frames, close = _echo.replies(payload)
                writer.write(b"".join(_echo.frame(f) for f in frames))
                await writer.drain()
                if close:
                    break
                continue
            try:
                m = _echo.json.loads(payload)
                kind = m["type"]
            except (ValueError, TypeError, KeyError):
                writer.write(_echo.frame(_echo.error("bad_message", "bad message")) + ask(pending))
                continue
            out, via, token = b"", None, None
            if kind == "token" and isinstance(m.get("token"), str):
                entry = TOKENS.get(m["token"])
                if entry and entry[1] > time.time():
                    user, via = entry[0], "token"
                else:
                    out = _echo.frame(_echo.error("bad_token", "bad token")) + ask(pending)
            elif kind == "answer" and m.get("field") == pending and isinstance(m.get("value"), str):
                value = m["value"]
                if pending == "login":
                    if not LOGIN_RE.fullmatch(value):
                        out = _echo.frame(_echo.error("bad_value", "bad login")) + ask("login")
                    else:
                        login = value
                        pending = "password" if value.lower() in USERS else "new_password"
                        out = ask(pending)
                elif pending == "password":
                    name, salt, digest = USERS[login.lower()]
                    got = await loop.run_in_executor(None, scrypt, value, salt)
                    if secrets.compare_digest(got, digest):
                        user, via = name, "password"
                    else:
                        out = _echo.frame(_echo.error("bad_password", "wrong")) + ask(pending)
                else:   # new_password
                    if not 8 <= len(value) <= 1024 or login.lower() in value.lower():
                        out = _echo.frame(_echo.error("weak_password", "weak")) + ask(pending)
                    else:
                        salt = os.urandom(16)
                        digest = await loop.run_in_executor(None, scrypt, value, salt)
                        USERS[login.lower()] = (login, salt, digest)
                        user, via = login, "register"
            else:
                out = _echo.frame(_echo.error("bad_state", "not now")) + ask(pending)
            if user is not None:
                ok = {"type": "auth_ok", "login": user, "via": via}
                if via != "token":
                    token = secrets.token_urlsafe(24)
                    expires = int(time.time()) + TOKEN_LIFE
                    TOKENS[token] = (user, expires)
                    ok.update(token=token, expires=expires)
                out = msg(**ok) + msg(type="greet", name=user, known=via != "register",
                                      text=f"hello {user}")
            writer.write(out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(args):
    server = await asyncio.start_server(serve, args.interface, args.port)
    _echo.announce(args.interface, server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = _echo.parse_args(__doc__)
    _echo.raise_fd_limit()
    asyncio.run(main(args))
