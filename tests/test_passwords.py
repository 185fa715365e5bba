"""
Tests for L{echotwist.passwords}: hashes are slow, salted argon2id at
OWASP's parameters or better, and weak new passwords are refused.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from echotwist import passwords
from echotwist.passwords import make_context, normalize, weakness


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
        self.assertIsNone(weakness("ann", "🦊" * 8))
        self.assertIsNone(weakness("ann", "q" * 1024))
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
