"""
Tests for L{echotwist.explain}: protocol mistakes said for a person, in
the error texts the server sends.
"""

from twisted.trial.unittest import SynchronousTestCase

from echotwist import messages as m
from echotwist.explain import expected, headerless, too_large
from echotwist.wire import HEADER
from tests.helpers import Conversation, make_factory


def refusal(payload):
    """The text of the bad_message C{payload} gets."""
    try:
        m.decode_client_message(payload)
    except m.BadMessage as e:
        return str(e)
    raise AssertionError(f"{payload!r} was accepted")


class HeaderlessTests(SynchronousTestCase):
    def test_text_without_header(self):
        """
        Text sent without a header is recognized in the length it makes.
        """
        self.assertEqual(
            headerless(HEADER.unpack(b"hell")[0]),
            "the first 4 bytes 'hell' read as a length of 1,751,477,356: "
            "did you forget the 4-byte header?",
        )

    def test_binary_length(self):
        """
        A length whose bytes are not text is just a length over the limit.
        """
        self.assertIsNone(headerless(70000))
        self.assertEqual(
            too_large(70000, 65536),
            "a message may have at most 65536 bytes, not 70,000",
        )

    def test_server_says_it(self):
        """
        The server's too_large (with or without --trace) explains it.
        """
        c = Conversation(make_factory(self, "echo"))
        c.replies()
        c.send_bytes(b"hello, world!")
        [error] = c.replies()
        self.assertEqual(error["code"], "too_large")
        self.assertIn("did you forget the 4-byte header?", error["text"])


class BadMessageTests(SynchronousTestCase):
    def test_syntax_position(self):
        """
        A JSON syntax error says where, by character (and line, if the
        payload has several), never quoting the payload.
        """
        self.assertEqual(
            refusal(b'{"type":"say" "text":"a"}'),
            "JSON syntax error at character 15: Expecting ',' delimiter",
        )
        self.assertEqual(
            refusal(b'{"type":\n"say" "text":"s3cret"}'),
            "JSON syntax error at line 2 column 7 (character 16): "
            "Expecting ',' delimiter",
        )

    def test_missing_member(self):
        self.assertEqual(
            refusal(b'{"type":"say"}'),
            "a 'say' message needs the member 'text' (a string)",
        )
        self.assertEqual(
            refusal(b'{"type":"answer","field":"name"}'),
            "an 'answer' message needs the member 'value' (a string)",
        )
        self.assertEqual(
            refusal(b'{"text":"a"}'),
            "no member 'type': every message needs one, a string",
        )

    def test_mistyped_member(self):
        """
        A member of the wrong JSON type is named, with what it should be
        and what it was; an integer written 3.0 or true is not one.
        """
        for payload, got in [
            (b'{"type":"say","text":"a","repeat":3.0}', "the number 3.0"),
            (b'{"type":"say","text":"a","repeat":true}', "true"),
            (b'{"type":"say","text":"a","repeat":"3"}', "a string"),
        ]:
            self.assertEqual(
                refusal(payload),
                "in a 'say' message, 'repeat' must be an integer (written "
                f"without fraction or exponent), not {got}",
            )
        self.assertEqual(
            refusal(b'{"type":"token","token":null}'),
            "in a 'token' message, 'token' must be a string, not null",
        )

    def test_unknown_type_and_others(self):
        self.assertEqual(
            refusal(b'{"type":"hello"}'),
            "unknown type 'hello': a client sends answer, token, say, logout, quit",
        )
        self.assertEqual(refusal(b"[1]"), "an array where a JSON object is expected")
        self.assertEqual(refusal(b"\xff"), "not UTF-8 text: byte 1 is 0xff")
        self.assertEqual(refusal(b""), "empty frame")

    def test_hostile_falls_back(self):
        """
        What the explainer cannot take (nesting too deep, an integer over
        Python's 4,300 digits) gets the decoder's own reason.
        """
        self.assertEqual(refusal(b"[" * 100_000), "Expected `object`, got `array`")
        huge = b'{"type":"say","text":"a","repeat":' + b"9" * 5000 + b"}"
        self.assertIn("repeat", refusal(huge))

    def test_large_payloads_not_parsed_twice(self):
        """
        Over 64 KiB (--max-message allows more), the decoder's reason is
        kept rather than parsing the payload a second time.
        """
        large = b'{"type":"say","text":"' + b"a" * 70000 + b'"'
        self.assertEqual(refusal(large), "not a JSON object: Input data was truncated")

    def test_sent_to_the_client(self):
        """
        The server's bad_message carries the explanation.
        """
        c = Conversation(make_factory(self, "echo"))
        c.replies()
        c.send({"type": "say", "text": 3})
        [error] = c.replies()
        self.assertEqual(error["code"], "bad_message")
        self.assertEqual(
            error["text"], "in a 'say' message, 'text' must be a string, not an integer"
        )


class ExpectedTests(SynchronousTestCase):
    def session(self, mode, *messages):
        c = Conversation(make_factory(self, mode))
        c.send(*messages)
        return c.protocol.session

    def test_by_state(self):
        """
        What a session accepts now, as said after a bad_state.
        """
        self.assertEqual(expected(self.session("echo")), "say or quit")
        self.assertEqual(
            expected(self.session("ident")),
            "an answer with field 'name', or quit",
        )
        self.assertEqual(
            expected(self.session("auth")),
            "an answer with field 'login', or a token, or quit",
        )
        logged_in = self.session(
            "auth",
            {"type": "answer", "field": "login", "value": "zoe"},
            {"type": "answer", "field": "new_password", "value": "a fine passphrase"},
        )
        self.assertEqual(expected(logged_in), "say or quit, or logout")

    def test_sent_to_the_client(self):
        """
        The server's bad_state says what it expects instead, trace or not.
        """
        c = Conversation(make_factory(self, "auth"))
        c.replies()
        c.send({"type": "say", "text": "too early"})
        error, ask = c.replies()
        self.assertEqual(
            error["text"],
            "log in first: answer the pending question; expected now: an "
            "answer with field 'login', or a token, or quit",
        )
        self.assertEqual(ask["field"], "login")
