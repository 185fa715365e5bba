"""
Tests for L{echotwist.client.profile}: where the token profile lives, how
it is written (atomically, 0600 in a 0700 directory) and when it is
ignored (like libpq's .pgpass, if others may read it).
"""

import json
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from echotwist.client import profile as p

NOW = 1_700_000_000


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class PathTests(SynchronousTestCase):
    def test_xdg(self):
        """
        The profile lives under an absolute C{$XDG_CONFIG_HOME}.
        """
        self.assertEqual(
            p.default_path({"XDG_CONFIG_HOME": "/cfg"}), "/cfg/echolab/profile.json"
        )

    def test_fallback(self):
        """
        Without C{$XDG_CONFIG_HOME}, or with a relative one, it lives under
        C{~/.config}.
        """
        home = os.path.expanduser("~")
        expected = os.path.join(home, ".config", "echolab", "profile.json")
        self.assertEqual(p.default_path({}), expected)
        self.assertEqual(p.default_path({"XDG_CONFIG_HOME": "rel"}), expected)

    def test_server_key(self):
        """
        Servers are keyed C{host:port}, IPv6 addresses in brackets.
        """
        self.assertEqual(p.server_key("LocalHost", 9090), "localhost:9090")
        self.assertEqual(p.server_key("::1", 9090), "[::1]:9090")


class ProfileTests(SynchronousTestCase):
    def setUp(self):
        self.directory = os.path.join(self.mktemp(), "echolab")
        self.path = os.path.join(self.directory, "profile.json")

    def load(self, now=NOW):
        return p.Profile.load(self.path, clock=lambda: now)

    def test_missing(self):
        """
        A missing file is an empty profile, with no warning.
        """
        profile = self.load()
        self.assertEqual((profile.entry("h:1"), profile.warnings), (None, []))
        self.assertTrue(profile.usable)

    def test_save_and_load(self):
        """
        A saved token is there for the next run, per server.
        """
        self.load().save_token("h:1", "alice", "tok", NOW + 60)
        profile = self.load()
        self.assertEqual(
            profile.entry("h:1"),
            {"login": "alice", "token": "tok", "expires": NOW + 60},
        )
        self.assertIsNone(profile.entry("h:2"))

    def test_permissions(self):
        """
        The directory is created 0700 and the file 0600, whatever the umask.
        """
        old = os.umask(0)
        try:
            self.load().save_token("h:1", "alice", "tok", NOW + 60)
        finally:
            os.umask(old)
        self.assertEqual(mode(self.directory), 0o700)
        self.assertEqual(mode(self.path), 0o600)

    def test_atomic(self):
        """
        A write that fails before the rename leaves the old file whole and no
        temporary file behind.
        """
        profile = self.load()
        profile.save_token("h:1", "alice", "old", NOW + 60)
        before = open(self.path, "rb").read()

        def failing_replace(source, target):
            raise OSError(28, "No space left on device")

        self.patch(p.os, "replace", failing_replace)
        self.assertRaises(
            p.ProfileError, profile.save_token, "h:1", "alice", "new", NOW + 60
        )
        self.assertEqual(open(self.path, "rb").read(), before)
        self.assertEqual(os.listdir(self.directory), ["profile.json"])

    def test_writes_synced(self):
        """
        The data and then the directory are synced: the rename is durable.
        """
        synced = []
        real_fsync = os.fsync

        def fsync(fd):
            synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
            real_fsync(fd)

        self.patch(p.os, "fsync", fsync)
        self.load().save_token("h:1", "alice", "tok", NOW + 60)
        self.assertEqual(synced, [False, True])

    def test_group_readable_ignored(self):
        """
        A profile that group or others may read is ignored with a one-line
        warning, and never written over.
        """
        self.load().save_token("h:1", "alice", "tok", NOW + 60)
        os.chmod(self.path, 0o640)
        before = open(self.path, "rb").read()
        profile = self.load()
        self.assertFalse(profile.usable)
        self.assertIsNone(profile.entry("h:1"))
        [warning] = profile.warnings
        self.assertIn("may be read by others (mode 0640)", warning)
        self.assertNotIn("\n", warning)
        profile.save_token("h:1", "bob", "other", NOW + 60)
        self.assertEqual(open(self.path, "rb").read(), before)

    def test_expired(self):
        """
        An expired token is not offered, and is dropped at the next write.
        """
        profile = self.load()
        profile.save_token("h:1", "alice", "tok", NOW + 60)
        later = self.load(now=NOW + 61)
        self.assertIsNone(later.entry("h:1"))
        later.save_token("h:2", "bob", "tok2", NOW + 600)
        self.assertEqual(list(json.load(open(self.path))["servers"]), ["h:2"])

    def test_forget(self):
        """
        Forgetting a server's token removes its entry from the file.
        """
        profile = self.load()
        profile.save_token("h:1", "alice", "tok", NOW + 60)
        profile.save_token("h:2", "bob", "tok2", NOW + 60)
        profile.forget("h:1")
        self.assertIsNone(self.load().entry("h:1"))
        self.assertIsNotNone(self.load().entry("h:2"))

    def test_unreadable(self):
        """
        A file that is not a profile is read as empty, with a warning, and
        replaced at the next save.
        """
        os.makedirs(self.directory, 0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"{not json")
        os.close(fd)
        profile = self.load()
        self.assertTrue(profile.usable)
        self.assertIn("ignoring unreadable profile", profile.warnings[0])
        profile.save_token("h:1", "alice", "tok", NOW + 60)
        self.assertEqual(self.load().entry("h:1")["token"], "tok")

    def test_malformed_entries_skipped(self):
        """
        Entries of the wrong shape are skipped, the others kept.
        """
        os.makedirs(self.directory, 0o700)
        servers = {
            "good:1": {"login": "a", "token": "t", "expires": NOW + 60},
            "bad:1": {"login": "a", "token": 5, "expires": NOW + 60},
            "bad:2": {"login": "a", "token": "t", "expires": "soon"},
            "bad:3": "token",
        }
        p.write_private_file(self.path, json.dumps({"servers": servers}).encode())
        profile = self.load()
        self.assertIsNotNone(profile.entry("good:1"))
        for key in ("bad:1", "bad:2", "bad:3"):
            self.assertIsNone(profile.entry(key))
