"""
Tests for L{echotwist.messages}: what makes a client message well formed,
the limits on values, and the server's echo frames.
"""

from twisted.trial.unittest import SynchronousTestCase

from echotwist import messages as m
from echotwist.wire import decode_message


class DecodeTests(SynchronousTestCase):
    def assertBad(self, payload):
        self.assertRaises(m.BadMessage, m.decode_client_message, payload)

    def test_each_type(self):
        """
        Every client message type decodes, optional members defaulted.
        """
        decode = m.decode_client_message
        self.assertEqual(decode(b'{"type":"say","text":"hi"}'), m.Say("hi", 1))
        self.assertEqual(
            decode(b'{"type":"say","text":"hi","repeat":3}'), m.Say("hi", 3)
        )
        self.assertEqual(
            decode(b'{"type":"answer","field":"name","value":"Ann"}'),
            m.Answer("name", "Ann"),
        )
        self.assertEqual(decode(b'{"type":"token","token":"t"}'), m.Token("t"))
        self.assertEqual(decode(b'{"type":"logout"}'), m.Logout())
        self.assertEqual(decode(b'{"type":"quit"}'), m.Quit())

    def test_unknown_members_ignored(self):
        """
        Members a receiver does not know are ignored, whatever their type.
        """
        self.assertEqual(
            m.decode_client_message(b'{"x":[1,{"y":null}],"type":"quit","z":1.5}'),
            m.Quit(),
        )

    def test_not_json_object(self):
        """
        Empty frames, invalid UTF-8, invalid JSON, non-objects, trailing data.
        """
        for payload in [
            b"",
            b"\xff\xfe",
            b'{"type":"say","text":"\xc3"}',
            b"not json",
            b'{"type":"quit"',
            b"[]",
            b'"quit"',
            b"42",
            b"null",
            b'{"type":"quit"} {}',
            b'{"type":"say","text":"a","n":NaN}',
            b'{"type":"say","text":"a","n":Infinity}',
        ]:
            self.assertBad(payload)

    def test_type_member(self):
        """
        A missing, non-string or unknown C{type} is a bad message.
        """
        for payload in [
            b"{}",
            b'{"text":"hi"}',
            b'{"type":null}',
            b'{"type":5}',
            b'{"type":["say"]}',
            b'{"type":"shout","text":"hi"}',
            b'{"type":"SAY","text":"hi"}',
        ]:
            self.assertBad(payload)

    def test_member_types(self):
        """
        Missing required members and members of the wrong JSON type (null
        included) are bad messages.
        """
        for payload in [
            b'{"type":"say"}',
            b'{"type":"say","text":null}',
            b'{"type":"say","text":5}',
            b'{"type":"answer","field":"name"}',
            b'{"type":"answer","field":"name","value":7}',
            b'{"type":"answer","field":null,"value":"x"}',
            b'{"type":"token"}',
            b'{"type":"token","token":{"a":1}}',
        ]:
            self.assertBad(payload)

    def test_integers(self):
        """
        An integer is a number written without fraction or exponent.
        """
        for repeat in [b"3.0", b"3e0", b"1E2", b"true", b'"3"', b"null", b"[3]"]:
            self.assertBad(b'{"type":"say","text":"a","repeat":' + repeat + b"}")
        for repeat in [b"0", b"-1", b"101", b"-0"]:
            message = m.decode_client_message(
                b'{"type":"say","text":"a","repeat":' + repeat + b"}"
            )
            self.assertEqual(message.repeat, int(repeat))

    def test_hostile(self):
        """
        Deep nesting, huge numbers and lone surrogates are bad messages,
        never an exception of another kind.
        """
        self.assertBad(b'{"type":"quit","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        self.assertBad(b'{"type":"quit","x":' + b"[" * 100_000)
        self.assertBad(b'{"type":"say","text":"a","repeat":' + b"9" * 5000 + b"}")
        self.assertBad(b'{"type":"say","text":"\\ud800"}')
        self.assertBad(b'{"type":"say","text":"\\udc00x"}')
        self.assertBad(b'{"type":"say","text":"\xed\xa0\x80"}')

    def test_escapes(self):
        """
        Escaped characters, surrogate pairs included, decode to their text.
        """
        message = m.decode_client_message(
            b'{"type":"say","text":"\\u043f\\u0440\\ud83c\\udf0d\\n"}'
        )
        self.assertEqual(message.text, "пр🌍\n")


class LimitTests(SynchronousTestCase):
    def test_names(self):
        """
        Names are 1 to 64 printable code points; Cyrillic and emoji welcome.
        """
        for good in ["Ann", "Иван Петров", "🦊", "x" * 64, "🦊" * 64]:
            self.assertIsNone(m.check_name(good), good)
        for bad in ["", "x" * 65, "a\tb", "a\nb", "bell\x07", "\u202eevil", "a\x00"]:
            self.assertIsNotNone(m.check_name(bad), bad)

    def test_logins(self):
        """
        Logins are 1 to 32 of A-Z a-z 0-9 . _ -
        """
        for good in ["a", "Ann.Lee_2-x", "x" * 32]:
            self.assertIsNone(m.check_login(good), good)
        for bad in ["", "x" * 33, "a b", "ann@host", "Иван", "a\n", "ä"]:
            self.assertIsNotNone(m.check_login(bad), bad)

    def test_repeat(self):
        """
        C{repeat} is 1 to 100.
        """
        self.assertIsNone(m.check_repeat(1))
        self.assertIsNone(m.check_repeat(100))
        for bad in [0, -1, 101, 2**64]:
            self.assertIsNotNone(m.check_repeat(bad))


class ServerMessageTests(SynchronousTestCase):
    def test_echo_single(self):
        """
        A C{say} without C{repeat} gets one C{echo} without C{n} and C{of}.
        """
        payloads = list(m.echo_payloads("hi", 1))
        self.assertEqual(
            [decode_message(p) for p in payloads], [{"type": "echo", "text": "hi"}]
        )

    def test_echo_numbered(self):
        """
        C{repeat} N gives N echoes numbered 1..N of N, the text unescaped.
        """
        text = 'привет "🌍"\\'
        payloads = list(m.echo_payloads(text, 4))
        self.assertEqual(
            [decode_message(p) for p in payloads],
            [{"type": "echo", "text": text, "n": n, "of": 4} for n in range(1, 5)],
        )
        self.assertIn("привет".encode(), payloads[0])

    def test_ask(self):
        """
        Password questions are secret; the others are not.
        """
        self.assertTrue(m.ask("password")["secret"])
        self.assertTrue(m.ask("new_password")["secret"])
        self.assertFalse(m.ask("login")["secret"])
        self.assertFalse(m.ask("name")["secret"])
