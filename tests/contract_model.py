"""
An executable model of the echolab contract (shared protocol.md, sections
1, 4, 5 and 6), with the choices docs/protocol.md makes where the contract
is silent: what the server must answer to any payload, in any state, in any
mode. The property tests (tests/test_properties.py) run the real server
protocol and this model side by side and compare every reply.

The model is written from the documents, not from the server's code: it
parses payloads with the standard library's C{json} (not the server's
msgspec), and keeps its own idea of sessions, stores and throttling. Where
the documents leave a value to the project (the common-password list), it
reads the project's published data.

Replies are compared in a normalized form (L{normalize}): the human
C{text} of C{error}, C{ask}, C{greet} and C{bye} is checked to be a
non-empty string and then dropped, and a token's value (random) is checked
for shape and replaced by L{TOKEN}.
"""

import json
import re
import unicodedata
from collections import Counter
from importlib import metadata, resources

MAX_MESSAGE = 65536
MAX_REPEAT = 100
PASSWORD_TRIES = 3  # the contract's third wrong password closes
TOKEN = "<token>"

_LOGIN = re.compile(r"[A-Za-z0-9._-]{1,32}")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
SECRET = {"password", "new_password"}
VERSION = metadata.version("echolab")


class Malformed(ValueError):
    """
    A payload that is not a well-formed message (C{bad_message}).
    """


def _reject_constant(name):
    raise Malformed(f"{name} is not JSON")


def _strings_encodable(value):
    """
    Raise L{Malformed} if any string or key in C{value} holds a lone
    surrogate (docs/protocol.md: a bad message).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Malformed("lone surrogate") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _Object(dict):
    """
    A decoded JSON object that remembers every value its C{type} member had.
    """

    types = ()


def _pairs(pairs):
    """
    Duplicate members: the last one counts (docs/protocol.md); C{types}
    keeps them all for the check on C{type}.
    """
    for key, value in pairs:  # a discarded duplicate counts too
        _strings_encodable(key)
        _strings_encodable(value)
    obj = _Object(pairs)
    obj.types = [v for k, v in pairs if k == "type"]
    return obj


# Member types by message type: (name, kind, required). An int is a JSON
# number without fraction or exponent: json gives those as int, the rest as
# float; bool is not an int.
SCHEMAS = {
    "answer": [("field", str, True), ("value", str, True)],
    "token": [("token", str, True)],
    "say": [("text", str, True), ("repeat", int, False)],
    "logout": [],
    "quit": [],
}


def parse(payload):
    """
    Judge a payload as the contract's section 1 does.

    @return: the message as a L{dict}.
    @raise Malformed: for a bad message.
    """
    if not payload:
        raise Malformed("empty frame")
    try:
        text = payload.decode("utf-8")  # strict: no surrogates, no overlongs
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    try:
        message = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as e:
        raise Malformed(f"not JSON: {e}") from None
    _strings_encodable(message)
    if not isinstance(message, dict):
        raise Malformed("not an object")
    first = message.types[0] if message.types else None
    if any(t != first or type(t) is not type(first) for t in message.types):
        raise Malformed("two different types")  # docs/protocol.md
    kind = message.get("type")
    if type(kind) is not str or kind not in SCHEMAS:
        raise Malformed("no known string type")
    for name, expected, required in SCHEMAS[kind]:
        if name not in message:
            if required:
                raise Malformed(f"missing {name}")
        elif type(message[name]) is not expected:
            raise Malformed(f"{name} has the wrong type")
    return message


def nfkc(text):
    return unicodedata.normalize("NFKC", text)


def _common_passwords():
    text = resources.files("echotwist").joinpath("data/common-passwords.txt")
    return frozenset(
        line
        for line in text.read_text("utf-8").splitlines()
        if line and not line.startswith("#")
    )


COMMON = _common_passwords()


def name_problem(value):
    name = value.strip()
    return not name or len(name) > 64 or not name.isprintable()


def login_problem(login):
    return not _LOGIN.fullmatch(login)


# docs/protocol.md's trivial passwords: the alphabets and digits in order,
# and the keyboard rows (US QWERTY and Russian ЙЦУКЕН, unshifted and
# shifted, lower-cased), each read forwards and backwards.
_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",  # without ё: code-point order
]
_ROWS = [
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "qwertyuiop{}|",
    "asdfghjkl;'",
    'asdfghjkl:"',
    "zxcvbnm,./",
    "zxcvbnm<>?",
    "ё1234567890-=",
    '!"№;%:?*()_+',
    "йцукенгшщзхъ\\",
    "йцукенгшщзхъ/",
    "фывапролджэ",
    "ячсмитьбю.",
    "ячсмитьбю,",
]
_LINES = [
    {c: i for i, c in enumerate(line)}
    for forwards in _ALPHABETS + _ROWS
    for line in (forwards, forwards[::-1])
]


def _straight(text):
    """
    Whether each character of C{text} follows the one before on one line.
    """
    return any(
        all(
            text[i - 1] in line and line.get(text[i]) == line[text[i - 1]] + 1
            for i in range(1, len(text))
        )
        for line in _LINES
    )


def _root(text):
    """
    The shortest piece that C{text} is two or more copies of (the last
    maybe cut short), or C{text}.
    """
    for size in range(1, len(text) // 2 + 1):
        if all(c == text[i % size] for i, c in enumerate(text)):
            return text[:size]
    return text


def trivial(folded):
    """
    docs/protocol.md: under 4 different characters; a sequence or keyboard
    run, or one repeated; a piece under 8 characters repeated.
    """
    if len(set(folded)) < 4:
        return True
    root = _root(folded)
    return _straight(root) or len(root) < min(8, len(folded))


def weak(login, password):
    """
    Contract: under 8 or over 1024 code points; docs/protocol.md: equal to
    the login in any case, a common password, or a trivial one (after NFKC,
    in any case).
    """
    if not 8 <= len(password) <= 1024:
        return True
    folded = nfkc(password).lower()
    return folded == login.lower() or folded in COMMON or trivial(folded)


class Throttle:
    """
    docs/protocol.md's throttling, on a clock that does not move: after
    C{free} consecutive failures of a key the next failure blocks it
    (for 1 s, which never passes here), and a blocked key's attempts get
    C{rate_limited} without being checked.
    """

    def __init__(self, per_login_address=10, per_login=50, per_address=100, tokens=100):
        self.free = {
            "login_address": per_login_address,
            "login": per_login,
            "address": per_address,
            "token": tokens,
        }
        self.failures = Counter()

    def _blocked(self, table, key):
        return self.failures[table, key] > self.free[table]

    def password_blocked(self, login, address):
        login = login.lower()
        return (
            self._blocked("login_address", (login, address))
            or self._blocked("login", login)
            or self._blocked("address", address)
        )

    def password_failed(self, login, address):
        login = login.lower()
        for key in (
            ("login_address", (login, address)),
            ("login", login),
            ("address", address),
        ):
            self.failures[key] += 1

    def password_succeeded(self, login, address):
        login = login.lower()
        self.failures.pop(("login_address", (login, address)), None)
        self.failures.pop(("address", address), None)

    def token_blocked(self, address):
        return self._blocked("token", address)

    def token_failed(self, address):
        self.failures["token", address] += 1

    def token_succeeded(self, address):
        self.failures.pop(("token", address), None)


class ServerModel:
    """
    The state all connections share: names by address, users, tokens and
    throttling.
    """

    def __init__(
        self,
        mode,
        max_bad_messages=100,
        token_ttl=30 * 86400,
        now=0,
        max_message=MAX_MESSAGE,
        throttle=None,
    ):
        self.mode = mode
        self.max_bad_messages = max_bad_messages
        self.max_message = max_message
        self.expires = int(now) + token_ttl
        self.identities = {}  # address -> name
        self.users = {}  # login.lower() -> [login as registered, password]
        self.tokens = {}  # token -> [login.lower(), revoked]
        self.throttle = throttle or Throttle()

    def connect(self, address):
        return ConnectionModel(self, address)

    def valid_tokens(self):
        return [t for t, (_, revoked) in self.tokens.items() if not revoked]


def error(code):
    return {"type": "error", "code": code}


def ask(field):
    return {"type": "ask", "field": field, "secret": field in SECRET}


def greet(name, known):
    return {"type": "greet", "name": name, "known": known}


BYE = {"type": "bye"}


class ConnectionModel:
    """
    One connection: what it must be answered, message by message.

    @ivar replies: what the connection got when it was accepted.
    @ivar closed: whether the server closes (or began closing) it.
    """

    def __init__(self, server, address):
        self.server = server
        self.address = address
        self.mode = server.mode
        self.closed = False
        self.ready = False
        self.pending = None
        self.strikes = 0
        self.failures = 0
        self.login = None
        self.token = None  # used or issued here: what logout revokes
        self._awaiting_token = None
        self.sent_after_close = False
        welcome = {
            "type": "welcome",
            "server": "echolab",
            "version": VERSION,
            "mode": self.mode,
            "max_message": server.max_message,
        }
        self.replies = [welcome]
        if self.mode == "echo":
            self.ready = True
        elif self.mode == "ident":
            name = server.identities.get(address)
            if name is None:
                self.replies.append(self._ask("name"))
            else:
                self.ready = True
                self.replies.append(greet(name, True))
        else:
            self.replies.append(self._ask("login"))

    # What the client sends.

    def frame(self, length):
        """
        A frame header declaring C{length} bytes arrived.

        @return: the replies, when the length alone decides them (over the
            limit), else L{None}.
        """
        if self.closed:
            return []
        if length > self.server.max_message:
            self.closed = True
            return [error("too_large")]  # and no bye
        return None

    def receive(self, payload):
        """
        @return: the (normalized) replies to one complete frame.
        """
        if self.closed:
            return []
        try:
            message = parse(payload)
        except Malformed:
            return self._refuse("bad_message")
        return getattr(self, "_on_" + message["type"])(message)

    def bind(self, actual):
        """
        Learn the token values the server really issued (the model can only
        say that a token comes).
        """
        for message in actual:
            if message.get("type") == "auth_ok" and "token" in message:
                login_key = self._awaiting_token
                self.server.tokens[message["token"]] = [login_key, False]
                self.token = message["token"]
        self._awaiting_token = None

    # Section 4 and 5.

    def _ask(self, field):
        self.pending = field
        return ask(field)

    def _refuse(self, code):
        replies = [error(code)]
        if code in ("bad_message", "bad_state", "bad_value"):
            self.strikes += 1
            if self.strikes >= self.server.max_bad_messages:
                self.closed = True
                return replies + [error("too_many_attempts"), BYE]
        if self.pending is not None:
            replies.append(ask(self.pending))
        return replies

    def _on_quit(self, message):
        self.closed = True
        return [BYE]

    def _on_say(self, message):
        if not self.ready:
            return self._refuse("bad_state")
        repeat = message.get("repeat", 1)
        if not 1 <= repeat <= MAX_REPEAT:
            return self._refuse("bad_value")
        text = message["text"]
        if repeat == 1:
            return [{"type": "echo", "text": text}]
        return [
            {"type": "echo", "text": text, "n": n, "of": repeat}
            for n in range(1, repeat + 1)
        ]

    def _on_answer(self, message):
        field = message["field"]
        if field != self.pending:
            return self._refuse("bad_state")
        return getattr(self, "_answer_" + field)(message["value"])

    def _on_token(self, message):
        if self.mode != "auth" or self.ready:
            return self._refuse("bad_state")
        server = self.server
        if server.throttle.token_blocked(self.address):
            return self._refuse("rate_limited")
        entry = server.tokens.get(message["token"])
        if entry is None or entry[1]:
            server.throttle.token_failed(self.address)
            return self._refuse("bad_token")
        server.throttle.token_succeeded(self.address)
        self.token = message["token"]
        registered = server.users[entry[0]][0]
        return self._in({"type": "auth_ok", "login": registered, "via": "token"}, True)

    def _on_logout(self, message):
        if self.mode != "auth" or not self.ready:
            return self._refuse("bad_state")
        entry = self.server.tokens.get(self.token)
        if entry is not None:  # (unknown when no real server ran: see bind)
            entry[1] = True
        self.closed = True
        return [BYE]

    def _answer_name(self, value):
        if name_problem(value):
            return self._refuse("bad_value")
        name = value.strip()
        self.server.identities[self.address] = name
        self.ready = True
        self.pending = None
        return [greet(name, False)]

    def _answer_login(self, login):
        if login_problem(login):
            return self._refuse("bad_value")
        self.login = login
        known = login.lower() in self.server.users
        return [self._ask("password" if known else "new_password")]

    def _answer_password(self, password):
        server = self.server
        throttle = server.throttle
        if throttle.password_blocked(self.login, self.address):
            return self._refuse("rate_limited")
        registered, right = server.users[self.login.lower()]
        if 8 <= len(password) <= 1024 and nfkc(password) == nfkc(right):
            throttle.password_succeeded(self.login, self.address)
            return self._issue(registered, "password", True)
        throttle.password_failed(self.login, self.address)
        self.failures += 1
        if self.failures >= PASSWORD_TRIES:
            self.closed = True
            return [error("too_many_attempts"), BYE]
        return self._refuse("bad_password")

    def _answer_new_password(self, password):
        if weak(self.login, password):
            return self._refuse("weak_password")
        self.server.users[self.login.lower()] = [self.login, password]
        return self._issue(self.login, "register", False)

    def _issue(self, login, via, known):
        self._awaiting_token = login.lower()
        auth_ok = {
            "type": "auth_ok",
            "login": login,
            "via": via,
            "token": TOKEN,
            "expires": self.server.expires,
        }
        return self._in(auth_ok, known)

    def _in(self, auth_ok, known):
        self.ready = True
        self.pending = None
        return [auth_ok, greet(auth_ok["login"], known)]


class NotConforming(AssertionError):
    pass


def normalize(message):
    """
    A server message in the form the model predicts: human texts checked
    and dropped, token values checked and replaced by L{TOKEN}.

    @raise NotConforming: if a text or token is missing or malformed.
    """
    message = dict(message)
    kind = message.get("type")
    if kind in ("error", "ask", "greet", "bye"):
        text = message.pop("text", None)
        if not isinstance(text, str) or not text:
            raise NotConforming(f"{kind} without a text: {message}")
    if kind == "auth_ok" and "token" in message:
        if not _TOKEN_SHAPE.fullmatch(str(message["token"])):
            raise NotConforming(f"malformed token in {message}")
        message["token"] = TOKEN
    return message
