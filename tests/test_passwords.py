"""
Tests for L{echotwist.passwords}: hashes are slow, salted argon2id at
OWASP's parameters or better, and weak new passwords are refused.
"""

import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from echotwist import password_patterns, passwords
from echotwist.passwords import make_context, normalize, weakness
from tests import contract_model

# 1,024 characters, and not a short piece repeated.
LONGEST = ("correct horse battery staple " * 36)[:1024]


class ContextTests(SynchronousTestCase):
    def test_default_parameters(self):
        """
        The default hash is argon2id, 32 MiB, 2 passes, parallelism 1, in
        PHC format, with a random salt of its own for every hash.
        """
        context = make_context()
        first = context.hash("correct horse battery")
        second = context.hash("correct horse battery")
        self.assertTrue(first.startswith("$argon2id$v=19$m=32768,t=2,p=1$"), first)
        self.assertNotEqual(first.split("$")[4], second.split("$")[4])  # the salts
        self.assertTrue(context.verify("correct horse battery", first))
        self.assertFalse(context.verify("correct horse batterY", first))

    def test_owasp_floor(self):
        """
        Parameters below OWASP's minimum (19 MiB, t=2) are refused.
        """
        self.assertRaises(ValueError, make_context, memory_kib=19455)
        self.assertRaises(ValueError, make_context, time_cost=1)
        make_context(memory_kib=19456, time_cost=2)

    def test_upgrade_old_hashes(self):
        """
        A hash made under older parameters verifies, and a replacement under
        the current ones is offered (only when the password is right).
        """
        old = make_context(memory_kib=19456).hash("correct horse battery")
        current = make_context()
        ok, new = current.verify_and_update("correct horse battery", old)
        self.assertTrue(ok)
        self.assertTrue(new.startswith("$argon2id$v=19$m=32768,t=2,p=1$"))
        self.assertEqual(current.verify_and_update("wrong", old), (False, None))
        self.assertEqual(
            current.verify_and_update("correct horse battery", new), (True, None)
        )

    def test_no_deprecation_warnings(self):
        """
        The hashing stack imports and hashes without deprecation warnings
        (passlib 1.7.4 emitted two; libpass does not).
        """
        code = (
            "import echotwist.auth, echotwist.passwords as p; "
            "p._context(1024, 1).hash('x' * 8)"
        )
        subprocess.run(
            [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
            check=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        )


class WeaknessTests(SynchronousTestCase):
    def test_length(self):
        """
        New passwords have 8 to 1024 characters (code points).
        """
        self.assertIsNotNone(weakness("ann", "7chars!"))
        self.assertIsNone(weakness("ann", "ёжик в тумане"))
        self.assertIsNone(weakness("ann", "🦊🐺🦝🐻🐼🐨🐯🦁"))
        self.assertIsNone(weakness("ann", LONGEST))
        self.assertIsNotNone(weakness("ann", LONGEST + "q"))
        self.assertIsNotNone(weakness("ann", "q" * 1025))

    def test_not_the_login(self):
        """
        A password equal to the login, in any case, is refused.
        """
        self.assertIsNotNone(weakness("Bobby.Tables", "bobby.tables"))
        self.assertIsNone(weakness("Bobby.Tables", "bobby.tables!"))

    def test_common_read_at_start(self):
        """
        Auth mode reads the list as it is set up, not while the reactor
        serves the first registration.
        """
        from tests.helpers import make_factory

        self.patch(passwords, "_common", None)
        make_factory(self, mode="auth")
        self.assertIsNotNone(passwords._common)

    def test_common(self):
        """
        The list holds over 10,000 common passwords, matched in any case.
        """
        self.assertGreater(len(passwords.common_passwords()), 10_000)
        for common in ["password", "PASSWORD1", "iloveyou", "12345678", "qwertyuiop"]:
            self.assertIn("common", weakness("ann", common), common)

    def test_normalize(self):
        """
        Composed and decomposed accents are the same password.
        """
        self.assertEqual(
            normalize("p\u00e5ssw\u00f6rd"), normalize("pa\u030assw\u006f\u0308rd")
        )


class TrivialPatternTests(SynchronousTestCase):
    """
    Trivial passwords (NIST SP 800-63B: "repetitive or sequential
    characters") are refused as a whole; passwords that only contain such
    a pattern are not.
    """

    def assertRefused(self, reason, candidates):
        for password in candidates:
            why = weakness("ann", password)
            self.assertIsNotNone(why, password)
            self.assertIn(reason, why, password)

    def assertAccepted(self, candidates):
        for password in candidates:
            self.assertIsNone(weakness("ann", password), password)

    def test_few_distinct_characters(self):
        """
        Fewer than 4 different characters: one character repeated, or two
        or three taking turns.
        """
        self.assertRefused(
            "at least 4 different characters",
            [
                "aaaaaaaa",
                "00000000",
                "zzzzzzzzzzzzzzzzzzzz",
                "abababab",
                "12121212",
                "abcabcabc",
                "ёёёёёёёё",
                "🦊" * 8,
                "a" * 1024,
                "00000000-0",
            ],
        )
        self.assertAccepted(
            ["mississippi", "1000000 dollars", "aaaaaaa-bee", "zzz... sleepy"]
        )

    def test_repeated_piece(self):
        """
        A piece of under 8 characters, twice or more (the last copy maybe
        cut short), is refused; a longer piece repeated, or a word that
        only ends as it begins, is not.
        """
        self.assertRefused(
            "repeats a short piece",
            [
                "hellohello",
                "Hello-Hello-Hello-",
                "1a2b1a2b",
                "bye-bye-bye",
                "mypwmypwmy",
            ],
        )
        self.assertAccepted(
            [
                "correct horse correct horse",
                "tartar-tart",
                "hello hello",
                "bye-bye-bye!",
                "tiktok-tiktak",
            ]
        )

    def test_sequences(self):
        """
        Straight sequences of letters or digits, forwards or backwards,
        Latin or Russian (with or without ё), alone or repeated.
        """
        self.assertRefused(
            "sequence",
            [
                "abcdefgh",
                "hgfedcba",
                "mnopqrstuvwxyz",
                "87654321",
                "0123456789",
                "абвгдежз",
                "абвгдеёжзийк",
                "зжедгвба",
                "абвгабвгабвг",
                "abcdabcd",
                "4567456745",
                "abcdefghijklmnopqrstuvwxyz" * 2,
            ],
        )
        self.assertAccepted(
            [
                "robot-password-1234",
                "1234 Main Street",
                "my pin is 87654321",
                "abcdefgz",
                "abc-def-ghi",
                "азбука-1234",
                "abcdeabc",
            ]
        )

    def test_keyboard_runs(self):
        """
        Runs along one row of the US QWERTY or Russian ЙЦУКЕН keyboard,
        shifted or not, forwards or backwards, alone or repeated.
        """
        self.assertRefused(
            "keyboard run",
            [
                "zxcvbnm,",
                "1234567890-",
                "0987654321`",
                ";lkjhgfdsa",
                "!@#$%^&*",
                "йцукенгш",
                "фывапрол",
                "лорпавыф",
                "ячсмитьб",
                "ё1234567890-=",
                "qwerqwer",
                "asdfasdfasdf",
                "йцукйцук",
            ],
        )
        # The common-password list has some; they are refused either way.
        for password in ["qwertyui", "asdfghjk", "poiuytrewq", "qwertyuiop"]:
            self.assertIsNotNone(weakness("ann", password), password)
        self.assertAccepted(
            [
                "qwerty is not a password",
                "asdf-jkl;-typing-class",
                "qazwsxedc-rfv",
                "йцукен is a layout",
                "Tr0ub4dor&3",
            ]
        )

    def test_any_case(self):
        """
        The patterns are found after NFKC and lower(): capitals, mixed case
        and full-width forms are no way around them.
        """
        for password in [
            "AAAAAAAA",
            "AaAaAaAa",
            "ABCDEFGH",
            "HgFeDcBa",
            "АБВГДЕЖЗ",
            "ZXCVBNM<",
            "QwErQwEr",
            "ФЫВАПРОЛ",
            "ЙцУкЕнГш",
            "ＡＢＣＤＥＦＧＨ",
            "HelloHELLO",
        ]:
            self.assertIsNotNone(weakness("ann", password), password)

    def test_real_passwords(self):
        """
        Real passwords and passphrases are accepted, in any script.
        """
        self.assertAccepted(
            [
                "correct horse battery",
                "correct-horse-battery-staple",
                "robot-password-1234",
                "Tr0ub4dor&3",
                "пароль-для-лабы-7",
                "ёжик в тумане",
                "a fine new one",
                "was here 1944",
                "Bench-0123456789abcdef",
                "S3cret-Sauce-Value",
                LONGEST,
            ]
        )

    def test_linear_time(self):
        """
        The patterns are looked for in time linear in the length, on the
        reactor thread: a hundred of the longest passwords NFKC can make
        (4,096 characters) take well under a second.
        """
        longest = [
            "a" * 4090 + "bcdefg",
            "abcd" * 1023 + "xyz",
            "\u0635\u0644\u0649\u0639" * 1024,
            "".join(chr(0x4E00 + i) for i in range(4096)),
        ]
        start = time.perf_counter()
        for _ in range(100):
            for folded in longest:
                password_patterns.trivial_pattern(folded)
        self.assertLess(time.perf_counter() - start, 1.0)

    def test_contract_model_agrees(self):
        """
        The contract model (tests/contract_model.py), written from
        docs/protocol.md on its own, judges these passwords as the server.
        """
        every = [
            "aaaaaaaa",
            "abababab",
            "abcabcabc",
            "hellohello",
            "hello hello",
            "abcdefgh",
            "hgfedcba",
            "абвгдежз",
            "абвгдеёж",
            "abcdabcdab",
            "qwerqwer",
            "qwertyqw",
            "zxcvbnm,",
            "zxcvbnm<",
            "1234567890-",
            "фывапрол",
            "ячсмитьб.",
            "ЙЦУКЕНГШ",
            "robot-password-1234",
            "correct horse correct horse",
            "abracadabra",
            "пароль-для-лабы-7",
            "ＡＢＣＤＥＦＧＨ",
            LONGEST,
        ]
        for password in every:
            self.assertEqual(
                contract_model.weak("ann", password),
                weakness("ann", password) is not None,
                password,
            )
