"""
Hypothesis properties of the server protocol (a L{ServerProtocol} over a
L{StringTransport}, with synchronous stores): replies do not depend on how
frames are split, and every sequence of client messages, well formed or
not, in every mode, gets exactly the replies the contract prescribes
(L{tests.contract_model}) and never an internal error.

Examples per property are set by C{ECHOLAB_EXAMPLES_SCALE} (default 1;
C{benchmarks/reliability.py} runs them at a larger scale).
"""

import json
import os
import unicodedata
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from echotwist.flow import TRICKLE_PAUSE
from echotwist.wire import frame, header
from tests import contract_model as model
from tests.helpers import (
    HYPOTHESIS,
    Conversation,
    empty_database,
    make_database,
    make_factory,
)

SCALE = float(os.environ.get("ECHOLAB_EXAMPLES_SCALE", "1"))


def examples(n):
    return max(1, int(n * SCALE))


# What the properties saw, for benchmarks/reliability.py's report:
# examples run, payloads sent, and (mode, state, message kind) visited.
STATS = Counter()


class InstantClock(Clock):
    """
    A L{Clock} that can run its short pauses (the protocol's pacing of
    trickled frames) at once, without time passing, so a split stream
    meets exactly the same clock as the whole one (throttling blocks and
    token expiry depend on the time).
    """

    def run_short_pauses(self):
        for _ in range(1_000_000):
            due = [
                c for c in self.calls if c.getTime() - self.rightNow <= TRICKLE_PAUSE
            ]
            if not due:
                return
            call = due[0]
            self.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)


# Values the client may send. Pools hold the interesting cases of the
# contract's section 6; random text and JSON do the rest.

LOGINS = [
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "a.b-c_d",
    "x" * 32,
    "x" * 33,
    "a b",
    "",
    "é",
    "bob\n",
    " bob",
    "longlogin1",
    "LongLogin1",
]
NAMES = [
    "Bob",
    "  Bob  ",
    "",
    "   ",
    "x" * 64,
    "x" * 65,
    " " + "y" * 64 + " ",
    "Кирилл",
    "🙂",
    "a\u200db",
    "\u202eabc",
    "a\tb",
    "\x00",
    "\u3000name\u3000",
]
PASSWORDS = [
    "correct horse battery",
    "\u00c5str\u00f6m-pass1",
    "A\u030astro\u0308m-pass1",
    "password",
    "PASSWORD1",
    "LONGLOGIN1",
    "longlogin1",
    "1234567",
    "12345678",
    "y" * 1024,
    "y" * 1025,
    "\ufb01fteen chars ok",
    "seven77",
]
SPECIAL_TEXTS = [
    "",
    " ",
    "привет",
    "🙂",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\u202e",
    "a" * 300,
    '"quoted" \\ back',
    "\u2028",
]


def weighted(*choices):
    """
    A strategy drawing from one of C{(weight, strategy)} C{choices},
    in proportion to the weights.
    """
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


texts = weighted(
    (3, st.text(max_size=12)),
    (1, st.sampled_from(SPECIAL_TEXTS)),
)
big_ints = st.sampled_from(
    [0, 1, 2, 100, 101, -1, 2**31, 2**63, 2**64, -(2**64), 10**30]
)
repeats = st.one_of(st.integers(-2, 102), big_ints)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = ["name", "login", "password", "new_password", "", "zzz", "LOGIN"]
fields = weighted((4, st.just("<pending>")), (1, st.sampled_from(FIELDS)))
values = weighted(
    # A value that fits the pending question (a login, a name, the right
    # or a wrong password, a new password), from the pools above.
    (4, st.tuples(st.just("fit"), st.integers(0, 1000))),
    (1, st.tuples(st.just("text"), texts)),
)
token_choices = st.one_of(
    st.tuples(st.just("issued"), st.integers(0, 5)),
    st.tuples(st.just("text"), texts),
)
says = st.tuples(st.just("say"), texts, st.none() | repeats)
answers = st.tuples(st.just("answer"), fields, values)
bases = weighted(
    (3, says),
    (6, answers),
    (2, st.tuples(st.just("token"), token_choices)),
    (1, st.tuples(st.just("logout"))),
    (1, st.tuples(st.just("quit"))),
)
member_names = st.sampled_from(
    ["type", "text", "repeat", "field", "value", "token", "extra"]
)
# Changes to a message's members: a member set to any JSON value (a wrong
# type, null), removed, added unknown, or given an earlier duplicate.
mangles = st.lists(
    st.one_of(
        st.tuples(st.just("set"), member_names, json_values),
        st.tuples(st.just("del"), member_names),
        st.tuples(st.just("extra"), texts, json_values),
        st.tuples(st.just("dup"), member_names, json_values),
        st.tuples(
            st.just("type"), st.sampled_from(["Say", "QUIT", "hello", "answer", "say"])
        ),
    ),
    min_size=1,
    max_size=2,
)
styles = st.tuples(st.booleans(), st.booleans(), st.randoms(use_true_random=False))
well_formed = st.tuples(st.just("msg"), bases, st.just([]), styles)
actions = weighted(
    (24, well_formed),
    (4, st.tuples(st.just("msg"), bases, mangles, styles)),
    (
        1,
        st.tuples(
            st.just("badutf8"),
            bases,
            st.sampled_from(
                [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
            ),
        ),
    ),
    (1, st.tuples(st.just("truncated"), bases, st.integers(0, 40))),
    (1, st.tuples(st.just("json"), json_values)),
    (1, st.tuples(st.just("raw"), st.binary(max_size=40))),
    (
        1,
        st.tuples(
            st.just("oversize"),
            st.sampled_from([1, 2, 2**31 - 65536, 2**32 - 1 - 65536]),
            st.binary(max_size=20),
        ),
    ),
    (2, st.tuples(st.just("reconnect"), st.integers(0, 2))),
)
ADDRESSES = ["10.0.0.7", "10.0.0.8", "192.0.2.1"]
# Register "alice", then come back: programs that start here reach the
# password question and the token login more often.
SEED_USER = [
    ("msg", ("answer", "login", ("text", "alice")), [], (True, False, None)),
    (
        "msg",
        ("answer", "new_password", ("text", "correct horse battery")),
        [],
        (True, False, None),
    ),
    ("reconnect", 0),
]


def fitting(conn, field, i):
    """
    The C{i}th value of the pool for C{field}; for C{password}, mostly the
    right one (sometimes in NFD form, which NFKC makes the same).
    """
    if field == "name":
        return NAMES[i % len(NAMES)]
    if field == "login":
        users = sorted(login for login, _ in conn.server.users.values())
        if users and i % 2:  # a registered login, in some case
            login = users[i // 2 % len(users)]
            return login.swapcase() if i % 4 == 3 else login
        return LOGINS[i % len(LOGINS)]
    if field == "password" and i % 3:
        user = conn.server.users.get((conn.login or "").lower())
        if user is not None:
            return unicodedata.normalize("NFD", user[1]) if i % 2 else user[1]
    return PASSWORDS[i % len(PASSWORDS)]


def resolve(base, conn):
    """
    The members of a well-formed message for C{base}, as (name, value)
    pairs, given what the connection model knows (the pending question,
    the right password, the tokens issued).
    """
    kind = base[0]
    pairs = [("type", kind)]
    if kind == "say":
        pairs.append(("text", base[1]))
        if base[2] is not None:
            pairs.append(("repeat", base[2]))
    elif kind == "answer":
        field = base[1]
        if field == "<pending>":
            field = conn.pending or "name"
        how, value = base[2]
        if how == "fit":
            value = fitting(conn, field, value)
        pairs += [("field", field), ("value", value)]
    elif kind == "token":
        how, choice = base[1]
        valid = conn.server.valid_tokens()
        everyone = list(conn.server.tokens)
        if how == "issued" and everyone:
            # Mostly a valid token; sometimes a revoked one.
            pool = valid if valid and choice % 3 else everyone
            choice = pool[choice % len(pool)]
        elif how == "issued":
            choice = "no token issued yet"
        pairs.append(("token", choice))
    return pairs


def encode(pairs, ascii_only=True, spaced=False):
    """
    A JSON object from (name, value) pairs, duplicates kept. Lone
    surrogates are always escaped (raw ones would not be UTF-8; that case
    is the C{badutf8} action's).
    """
    separators = (", ", ": ") if spaced else (",", ":")

    def dump(value):
        return json.dumps(value, ensure_ascii=ascii_only, separators=separators)

    body = separators[0].join(dump(k) + separators[1] + dump(v) for k, v in pairs)
    return ("{" + body + "}").encode("utf-8", "backslashreplace")


def materialize(action, conn):
    """
    The payload an action sends on a connection whose model is C{conn}.
    """
    kind = action[0]
    if kind == "raw":
        return action[1]
    if kind == "json":
        return json.dumps(action[1]).encode("utf-8", "backslashreplace")
    pairs = resolve(action[1], conn)
    if kind == "truncated":
        whole = encode(pairs)
        return whole[: action[2] % len(whole)]
    if kind == "badutf8":
        # Invalid UTF-8 inside the value of a member the message type knows
        # (inside unknown members: test_reliability.FoundBugTests).
        name, value = pairs[-1]
        bad = action[2]
        if isinstance(value, str):
            return encode(pairs[:-1] + [(name, "@@")]).replace(
                b'"@@"', b'"a' + bad + b'"'
            )
        return encode(pairs).replace(b'"type":"', b'"type":"' + bad)
    _, _, mangle, (ascii_only, spaced, rnd) = action
    for op in mangle:
        if op[0] == "set":
            pairs = [(k, v) for k, v in pairs if k != op[1]] + [(op[1], op[2])]
        elif op[0] == "del":
            pairs = [(k, v) for k, v in pairs if k != op[1]]
        elif op[0] == "extra":
            pairs.append(("x-" + op[1], op[2]))
        elif op[0] == "dup":
            pairs.insert(0, (op[1], op[2]))
        elif op[0] == "type":
            pairs = [(k, op[1] if k == "type" else v) for k, v in pairs]
    if rnd is not None:
        rnd.shuffle(pairs)
    return encode(_same_typed_duplicates(pairs), ascii_only, spaced)


def _json_type(value):
    return type(value)  # bool, int, float, str, list, dict and NoneType differ


def _same_typed_duplicates(pairs):
    """
    Give an earlier duplicate of a member that the message type knows the
    JSON type of the last one, which counts (docs/protocol.md). (Each
    occurrence must be well typed, which the model does not follow; see
    test_reliability.FoundBugTests.test_duplicate_member_wrong_type_first.)
    """
    kind = dict(pairs).get("type")
    known = (
        {name for name, _, _ in model.SCHEMAS.get(kind, [])}
        if type(kind) is str
        else set()
    )
    last = dict(pairs)
    return [
        (k, last[k] if k in known and _json_type(v) is not _json_type(last[k]) else v)
        for k, v in pairs
    ]


def state_of(conn):
    if conn.closed:
        return "closed"
    if conn.ready:
        return "ready"
    return "asked " + str(conn.pending)


def payload_kind(payload):
    try:
        return model.parse(payload)["type"]
    except model.Malformed:
        return "bad_message"


class Harness:
    """
    Runs a server factory and the contract model side by side.
    """

    def __init__(self, testcase, mode):
        self.testcase = testcase
        self.mode = mode
        self.database = (
            make_database(testcase, in_memory=True) if mode != "echo" else None
        )

    def factory(self, **settings):
        if self.database is not None:
            empty_database(self.database)
        self.clock = InstantClock()
        return make_factory(
            self.testcase,
            self.mode,
            clock=self.clock,
            database=self.database,
            **settings,
        )


def harness(testcase, mode):
    """
    The test's L{Harness} for C{mode}, made once for all its examples.
    """
    cache = testcase.__dict__.setdefault("_harnesses", {})
    if mode not in cache:
        cache[mode] = Harness(testcase, mode)
    return cache[mode]


def replies(conversation):
    return [model.normalize(m) for m in conversation.replies()]


def check_program(testcase, mode, program, max_bad_messages, count=True):
    """
    Run C{program} (a list of actions) against a new server and the
    contract model side by side, failing C{testcase} at the first reply
    that differs, at a connection closed (or not) against the model, or on
    any logged error.
    """
    factory = harness(testcase, mode).factory(max_bad_messages=max_bad_messages)
    server = model.ServerModel(mode, max_bad_messages=max_bad_messages)
    opened = []

    def connect(address):
        conversation = Conversation(factory, host=address)
        opened.append(conversation)
        conn = server.connect(address)
        testcase.assertEqual(replies(conversation), conn.replies)
        return conversation, conn

    conversation, conn = connect(ADDRESSES[0])
    address = ADDRESSES[0]
    try:
        for action in program:
            if action[0] == "reconnect" or (conn.closed and conn.sent_after_close):
                # A client whose connection was closed comes back.
                if action[0] == "reconnect":
                    address = ADDRESSES[action[1]]
                conversation.lose()
                conversation, conn = connect(address)
                if action[0] == "reconnect":
                    continue
            if conn.closed:
                conn.sent_after_close = True
            STATS["payloads"] += 1
            if action[0] == "oversize":
                length = factory.settings.max_message + action[1]
                STATS[mode, state_of(conn), "oversize"] += 1
                expected = conn.frame(length)
                conversation.send_bytes(header(length) + action[2])
            else:
                payload = materialize(action, conn)
                STATS[mode, state_of(conn), payload_kind(payload)] += 1
                expected = conn.receive(payload)
                conversation.send_bytes(frame(payload))
            actual = conversation.replies()
            testcase.assertEqual([model.normalize(m) for m in actual], expected, action)
            conn.bind(actual)
            testcase.assertEqual(conversation.closing, conn.closed)
    finally:
        for c in opened:
            c.lose()
    testcase.assertEqual(testcase.flushLoggedErrors(), [])
    STATS["examples"] += count


class TotalityTests(SynchronousTestCase):
    """
    Any sequence of client messages, in any mode, gets exactly the replies
    the contract prescribes, and never an internal error.
    """

    def check(self, mode, program, max_bad_messages):
        check_program(self, mode, program, max_bad_messages)

    programs = st.lists(actions, max_size=10)
    bad_budgets = st.sampled_from([100, 100, 100, 2, 5])

    @settings(HYPOTHESIS, max_examples=examples(400))
    @given(programs, bad_budgets)
    def test_echo(self, program, budget):
        """
        Echo mode answers any sequence of messages as the contract says.
        """
        self.check("echo", program, budget)

    @settings(HYPOTHESIS, max_examples=examples(500))
    @given(programs, bad_budgets)
    def test_ident(self, program, budget):
        """
        Ident mode answers any sequence of messages, over reconnections from
        several addresses, as the contract says.
        """
        self.check("ident", program, budget)

    @settings(HYPOTHESIS, max_examples=examples(900))
    @given(programs, bad_budgets, st.booleans())
    def test_auth(self, program, budget, seeded):
        """
        Auth mode answers any sequence of messages (registrations, password
        and token logins, logouts, over reconnections) as the contract says.
        """
        self.check("auth", (SEED_USER if seeded else []) + program, budget)


class SplitTests(SynchronousTestCase):
    """
    Frames split at any byte, or coalesced, give the same replies.
    """

    def run_stream(self, runner, pieces):
        factory = runner.factory()
        conversation = Conversation(factory)
        for piece in pieces:
            conversation.send_bytes(piece)
            runner.clock.run_short_pauses()
        result = (replies(conversation), conversation.closing)
        conversation.lose()
        self.assertEqual(self.flushLoggedErrors(), [])
        return result

    def check(self, mode, program, tail, cuts):
        runner = harness(self, mode)
        server = model.ServerModel(mode)
        conn = server.connect(ADDRESSES[0])
        stream = b""
        for action in program:
            if action[0] in ("reconnect", "oversize"):
                continue
            payload = materialize(action, conn)
            conn.receive(payload)
            stream += frame(payload)
        stream += tail
        whole = self.run_stream(runner, [stream])
        pieces = []
        offset = 0
        i = 0
        while offset < len(stream):
            size = cuts[i % len(cuts)]
            pieces.append(stream[offset : offset + size])
            offset += size
            i += 1
        split = self.run_stream(runner, pieces)
        self.assertEqual(split, whole)
        STATS["split examples"] += 1
        STATS["split pieces"] += len(pieces)

    tails = st.one_of(
        st.just(b""),
        st.binary(max_size=6),  # a frame left unfinished
        st.sampled_from([header(65537) + b"junk", header(2**32 - 1)]),
    )
    cuts = st.lists(st.integers(1, 64), min_size=1, max_size=20) | st.just([1])

    def script(self, mode):
        """
        A program that reaches the states after identification or
        registration, for the split streams to start with.
        """
        if mode == "ident":
            return [
                ("msg", ("answer", "name", ("text", "Bob")), [], (True, False, None))
            ]
        if mode == "auth":
            return SEED_USER[:2]
        return []

    @settings(HYPOTHESIS, max_examples=examples(150))
    @given(st.lists(actions, max_size=10), tails, cuts, st.booleans())
    def test_echo(self, program, tail, cuts, scripted):
        """
        In echo mode any split of a stream of frames gives the same replies
        as the whole stream.
        """
        self.check("echo", program, tail, cuts)

    @settings(HYPOTHESIS, max_examples=examples(150))
    @given(st.lists(actions, max_size=10), tails, cuts, st.booleans())
    def test_ident(self, program, tail, cuts, scripted):
        """
        In ident mode any split of a stream of frames gives the same replies
        as the whole stream.
        """
        self.check(
            "ident", (self.script("ident") if scripted else []) + program, tail, cuts
        )

    @settings(HYPOTHESIS, max_examples=examples(150))
    @given(st.lists(actions, max_size=10), tails, cuts, st.booleans())
    def test_auth(self, program, tail, cuts, scripted):
        """
        In auth mode any split of a stream of frames gives the same replies
        as the whole stream.
        """
        self.check(
            "auth", (self.script("auth") if scripted else []) + program, tail, cuts
        )


# Every state of every mode, and how to get there from a new connection
# (after "alice" registered with the password below, in auth mode).
ALICE = "correct horse battery"


def _answer(field, value):
    return ("msg", ("answer", field, ("text", value)), [], (True, False, None))


STATES = {
    "echo": {"ready": []},
    "ident": {
        "asked name": [],
        "ready (new)": [_answer("name", "Bob")],
        "ready (known)": [_answer("name", "Bob"), ("reconnect", 0)],
    },
    "auth": {
        "asked login": [],
        "asked new_password": [_answer("login", "newcomer")],
        "asked password": [_answer("login", "ALICE")],
        "asked password, 2 wrong": [_answer("login", "alice")]
        + [_answer("password", "wrong one!")] * 2,
        "ready (register)": [
            _answer("login", "newcomer"),
            _answer("new_password", ALICE),
        ],
        "ready (password)": [_answer("login", "alice"), _answer("password", ALICE)],
        "ready (token)": [("msg", ("token", ("issued", 1)), [], (True, False, None))],
    },
}
MESSAGES = {
    "say": ("msg", ("say", "hi", None), [], (True, False, None)),
    "say repeat 3": ("msg", ("say", "hi", 3), [], (True, False, None)),
    "say repeat 100": ("msg", ("say", "hi", 100), [], (True, False, None)),
    "say repeat 101": ("msg", ("say", "hi", 101), [], (True, False, None)),
    "token (valid)": ("msg", ("token", ("issued", 1)), [], (True, False, None)),
    "token (unknown)": ("msg", ("token", ("text", "nope")), [], (True, False, None)),
    "logout": ("msg", ("logout",), [], (True, False, None)),
    "quit": ("msg", ("quit",), [], (True, False, None)),
    "bad_message": ("raw", b"{"),
    "oversize": ("oversize", 1, b""),
}
for _field, _values in {
    "name": ["Ann", " "],
    "login": ["bob", "a b"],
    "password": [ALICE, "wrong one!"],
    "new_password": ["a fine new one", "password"],
}.items():
    for _value in _values:
        MESSAGES[f"answer {_field} {_value!r}"] = _answer(_field, _value)


class StateTableTests(SynchronousTestCase):
    def test_every_state_every_message(self):
        """
        In every state of every mode, every kind of message (a good
        and a bad answer per field, says, tokens, logout, quit, bad
        and oversized frames) gets the replies the contract
        prescribes.
        """
        cases = 0
        for mode, states in STATES.items():
            for state, path in states.items():
                for name, message in MESSAGES.items():
                    prefix = SEED_USER if mode == "auth" else []
                    try:
                        check_program(
                            self, mode, prefix + path + [message], 100, count=False
                        )
                    except AssertionError as e:
                        self.fail(f"{mode}, {state}, {name}: {e}")
                    cases += 1
        STATS["state table cases"] += cases
        self.assertEqual(cases, sum(len(s) for s in STATES.values()) * len(MESSAGES))
