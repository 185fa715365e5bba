# -*- test-case-name: tests.test_check -*-
"""
Lab task 7: frames with a fixed-length header, and text <-> bytes. The
frame however the network cuts it, its limits, and what makes a payload
a bad message (contract sections 1 and 5), judged in the contract's
order: well formed, then allowed now, then its values.
"""

from echotwist.check.connection import CheckFailed, Skip, describe, header_of
from echotwist.check.runner import check
from echotwist.check.steps import refused_when_ready, stays_open
from echotwist.wire import MAX_PAYLOAD, encode_message, frame

LARGEST_TESTED_MESSAGE = 1024 * 1024
"""A bigger max_message is not sent whole (it would load the server)."""


def _say(text, **more):
    return {"type": "say", "text": text, **more}


@check(
    "framing.split",
    7,
    [1],
    "a frame split into pieces",
    "one echo for a say whose frame arrives in 5 pieces (header 1 + 1 + 2 "
    "bytes, then the payload in two)",
    "recv() may return less than asked: read the 4-byte header fully, then "
    "read until the whole payload is in.",
)
def split(context):
    connection = context.ready()
    data = frame(encode_message(_say("split in pieces")))
    pieces = [data[:1], data[1:2], data[2:4], data[4:12], data[12:]]
    connection.send_pieces(
        pieces, 0.05, '{"type":"say","text":"split in pieces"} in 5 pieces, 50 ms apart'
    )
    probe = connection.send_probe()
    connection.expect("echo", text="split in pieces")
    stays_open(context, connection, probe)


@check(
    "framing.coalesced",
    7,
    [1],
    "several frames in one packet",
    "three echoes, in order, for three says sent in one write",
    "One recv() may hold several frames: after a frame, keep parsing the "
    "bytes left in the buffer before reading again.",
)
def coalesced(context):
    connection = context.ready()
    texts = ["one", "two", "three"]
    connection.send_raw(
        b"".join(frame(encode_message(_say(t))) for t in texts),
        "three says (one, two, three) in one write",
    )
    probe = connection.send_probe()
    for text in texts:
        connection.expect("echo", text=text)
    stays_open(context, connection, probe)


@check(
    "framing.straddling",
    7,
    [1],
    "a packet ending inside the next frame's header",
    "three echoes, in order, for three says sent in two writes cut inside "
    "the second frame's header",
    "Keep an incomplete header in the buffer and finish it with the next "
    "read; never assume a read starts at a frame boundary.",
)
def straddling(context):
    connection = context.ready()
    texts = ["first", "second", "third"]
    frames = [frame(encode_message(_say(t))) for t in texts]
    data = b"".join(frames)
    cut = len(frames[0]) + 2
    connection.send_pieces(
        [data[:cut], data[cut:]],
        0.05,
        "three says (first, second, third) in two writes, cut 2 bytes into "
        "the second header",
    )
    probe = connection.send_probe()
    for text in texts:
        connection.expect("echo", text=text)
    stays_open(context, connection, probe)


@check(
    "framing.zero-length",
    7,
    [1, 5],
    "a zero-length frame is a bad message",
    "error bad_message; the connection stays open",
    "A length of 0 is a frame with an empty payload: answer bad_message and "
    "keep reading (do not treat it as the end of the connection).",
)
def zero_length(context):
    refused_when_ready(context, [b""], "bad_message")


def _too_large(context, length):
    connection = context.ready()
    connection.send_raw(
        header_of(length), f"a header declaring {length} bytes (and no payload)"
    )
    connection.expect_error("too_large")
    connection.expect_closed()


@check(
    "framing.too-large",
    7,
    [1, 5],
    "a frame over max_message",
    "error too_large right after the header, then the connection closes "
    "(no bye, nothing more)",
    "Compare the declared length with max_message as soon as the 4 header "
    "bytes are in; then send too_large and close, without reading the rest.",
)
def too_large(context):
    if context.max_message >= MAX_PAYLOAD:
        raise Skip(f"max_message {context.max_message} leaves no length over it")
    _too_large(context, context.max_message + 1)


@check(
    "framing.huge-length",
    7,
    [1, 5],
    "a length of 2^31 or more",
    "error too_large, then the connection closes (no bye)",
    "Read the header as unsigned (struct '!I'); a huge length is just over "
    "the limit: never allocate or wait for it.",
)
def huge_length(context):
    _too_large(context, MAX_PAYLOAD)


@check(
    "framing.max-message",
    7,
    [1, 6],
    "a frame of exactly max_message bytes",
    "the say whose payload is exactly max_message bytes is echoed whole",
    "The limit is inclusive: a payload of max_message bytes is allowed. "
    "Read it fully, even when it takes many recv() calls.",
    limit=10.0,
)
def max_message(context):
    limit = context.max_message
    if limit > LARGEST_TESTED_MESSAGE:
        raise Skip(
            f"max_message {limit} is over the {LARGEST_TESTED_MESSAGE} bytes the checker sends"
        )
    connection = context.ready()
    filler = limit - len(encode_message(_say("")))
    if filler < 1:
        raise Skip(f"max_message {limit} is too small for a say")
    text = "m" * filler
    connection.send(_say(text))
    probe = connection.send_probe()
    connection.expect("echo", text=text)
    stays_open(context, connection, probe)


@check(
    "framing.utf8-unescaped",
    7,
    [1],
    "text as UTF-8, both ways",
    "the echo of a Cyrillic and emoji say carries the same UTF-8 bytes, "
    r"with no \u escapes",
    "Encode replies as UTF-8 JSON with non-ASCII left as is "
    "(json.dumps(..., ensure_ascii=False).encode('utf-8')).",
)
def utf8_unescaped(context):
    connection = context.ready()
    text = "привет, мир 🙂"
    connection.send(_say(text))
    probe = connection.send_probe()
    message, payload = connection.receive("echo")
    if message["type"] != "echo" or message.get("text") != text:
        raise CheckFailed(f"echo (text: {text})", describe(message))
    if text.encode("utf-8") not in payload or b"\\u" in payload:
        raise CheckFailed(
            r"the text as UTF-8 bytes, without \u escapes", repr(payload[:80])
        )
    stays_open(context, connection, probe)


@check(
    "framing.unknown-members",
    7,
    [1],
    "members a receiver does not know are ignored",
    "an echo for a say carrying extra members",
    "Read the members you need and ignore the others; do not reject a "
    "message for having more.",
)
def unknown_members(context):
    connection = context.ready()
    connection.send(_say("extra members", colour="blue", nested={"list": [1, None]}))
    probe = connection.send_probe()
    connection.expect("echo", text="extra members")
    stays_open(context, connection, probe)


def _bad_message(id, title, payloads, hint):
    """
    Register a check: each payload gets error bad_message, and the
    connection stays open.
    """

    @check(
        id,
        7,
        [1, 5],
        title,
        "error bad_message for each; the connection stays open",
        hint,
    )
    def bad_message(context):
        refused_when_ready(context, payloads, "bad_message")


_bad_message(
    "bad-message.not-utf8",
    "a payload that is not UTF-8",
    [b'{"type":"say","text":"\xff\xfe"}'],
    "Decode the payload as UTF-8 inside a try: a UnicodeDecodeError is a "
    "bad_message, not a crash.",
)
_bad_message(
    "bad-message.not-json",
    "a payload that is not JSON",
    [b"hello, world!"],
    "Parse JSON inside a try: invalid JSON is a bad_message; keep the connection.",
)
_bad_message(
    "bad-message.not-object",
    "JSON that is not an object",
    [b'["say", "hi"]', b'"say"', b"42"],
    "Check that the JSON is an object (a dict) before reading its members.",
)
_bad_message(
    "bad-message.no-type",
    "no string member type",
    [b'{"text":"hi"}', b'{"type":5,"text":"hi"}', b'{"type":null}'],
    "Every message needs a string member 'type'; without one it is a bad_message.",
)
_bad_message(
    "bad-message.unknown-type",
    "an unknown type",
    [b'{"type":"shout","text":"hi"}'],
    "Answer a type you do not know with bad_message and keep the connection.",
)
_bad_message(
    "bad-message.missing-member",
    "a required member missing",
    [b'{"type":"say"}'],
    "say needs text: check required members before using them.",
)
_bad_message(
    "bad-message.wrong-member-type",
    "a member of the wrong JSON type, null included",
    [
        b'{"type":"say","text":5}',
        b'{"type":"say","text":null}',
        b'{"type":"say","text":["hi"]}',
    ],
    "Check each member's JSON type: text must be a string; null is not a string.",
)
_bad_message(
    "bad-message.not-an-integer",
    'repeat written as 3.0, 3e0, true or "3"',
    [
        b'{"type":"say","text":"hi","repeat":3.0}',
        b'{"type":"say","text":"hi","repeat":3e0}',
        b'{"type":"say","text":"hi","repeat":true}',
        b'{"type":"say","text":"hi","repeat":"3"}',
    ],
    "An integer is a JSON number without fraction or exponent; in Python "
    "check type(x) is int (True is an int there, and 3.0 == 3).",
)


@check(
    "order.bad-message-first",
    7,
    [1, 4],
    "a malformed message is bad_message even when out of turn",
    "error bad_message (not bad_state) for an answer with a numeric field, "
    "sent when no question is pending",
    "Judge in the contract's order: first whether the message is well "
    "formed, then whether it is allowed now, then its values.",
)
def bad_message_first(context):
    refused_when_ready(
        context, [{"type": "answer", "field": 5, "value": "x"}], "bad_message"
    )


@check(
    "order.bad-state-before-bad-value",
    7,
    [1, 4],
    "an out-of-turn message is bad_state even with a bad value",
    "error bad_state (not bad_value) for an answer with an empty name, sent "
    "when no question is pending",
    "Check whether a message is allowed now before checking its values.",
)
def bad_state_first(context):
    refused_when_ready(
        context, [{"type": "answer", "field": "name", "value": ""}], "bad_state"
    )
