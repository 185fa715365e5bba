"""
Tests for L{echotwist.admin_store}: the administrators' operations, each
recorded in the C{changes} table in its own transaction, and nothing
changed for a login or an address that does not exist. The cases are a
mixin over tests.test_store's hooks, to run against any database.
"""

import os
import sqlite3

from twisted.trial.unittest import TestCase

from echotwist import changes
from echotwist.admin_store import AdminStore, Identity, User
from echotwist.credentials import CredentialStore
from echotwist.store import SCHEMA_VERSION, IdentityStore, StoreError
from tests.test_store import DatabaseCases, SQLiteDatabaseCases


class AdminStoreCases(DatabaseCases):
    def setUp(self):
        super().setUp()
        self.admin = AdminStore(self.db, self.clock)
        self.credentials = CredentialStore(self.db, self.clock)

    async def register(self, login, *digests, expires=5000):
        await self.credentials.add_user(login, "hash-" + login, digests[0], expires)
        for digest in digests[1:]:
            await self.credentials.add_token(login, digest, expires)

    async def changes(self):
        return await self.db.read_all(
            "SELECT kind, subject FROM changes ORDER BY id LIMIT 100"
        )

    async def table(self, sql):
        return [tuple(row) for row in await self.db.read_all(sql + " LIMIT 100")]

    async def test_users(self):
        """
        The list gives each user's login as registered, its creation and
        last login, and its valid tokens only, by login in any case.
        """
        await self.register("bob", b"1" * 32)
        self.clock.advance(10)
        await self.register("Alice", b"2" * 32, b"3" * 32, b"4" * 32)
        await self.credentials.revoke(b"3" * 32)
        await self.credentials.add_token("Alice", b"5" * 32, 1005)
        self.clock.advance(10)
        self.assertEqual(
            await self.admin.users(),
            [User("Alice", 1010, 1010, 2), User("bob", 1000, 1000, 1)],
        )
        self.assertEqual(
            await self.admin.users(limit=1), [User("Alice", 1010, 1010, 2)]
        )

    async def test_user(self):
        """
        One user in detail: valid, revoked and expired tokens, and when the
        last valid one expires; L{None} for an unknown login.
        """
        await self.register("Alice", b"2" * 32, b"3" * 32, b"4" * 32)
        await self.credentials.revoke(b"3" * 32)
        await self.credentials.add_token("Alice", b"5" * 32, 1005)
        await self.credentials.add_token("Alice", b"6" * 32, 7000)
        self.clock.advance(10)
        self.assertEqual(
            await self.admin.user("ALICE"), User("Alice", 1000, 1000, 3, 1, 1, 7000)
        )
        self.assertIsNone(await self.admin.user("bob"))

    async def test_user_without_tokens(self):
        """
        A user whose tokens are all gone has zero of each.
        """
        await self.register("alice", b"1" * 32)
        await self.db.write(("DELETE FROM tokens", ()))
        self.assertEqual(
            await self.admin.user("alice"), User("alice", 1000, 1000, 0, 0, 0, None)
        )

    async def test_delete_user(self):
        """
        Deleting a user removes it and its tokens, and records the change;
        an unknown login changes nothing.
        """
        await self.register("Alice", b"1" * 32)
        await self.register("bob", b"2" * 32)
        self.assertTrue(await self.admin.delete_user("alice"))
        self.assertEqual(await self.table("SELECT login FROM users"), [("bob",)])
        self.assertEqual(await self.table("SELECT login_key FROM tokens"), [("bob",)])
        self.assertFalse(await self.admin.delete_user("alice"))
        self.assertFalse(await self.admin.delete_user("carol"))
        self.assertEqual(await self.changes(), [(changes.USER_DELETED, "alice")])

    async def test_set_password(self):
        """
        A new password replaces the hash and revokes every token.
        """
        await self.register("Alice", b"1" * 32, b"2" * 32)
        self.assertTrue(await self.admin.set_password("ALICE", "new-hash"))
        self.assertEqual(await self.table("SELECT hash FROM users"), [("new-hash",)])
        self.assertIsNone(
            await CredentialStore(self.db, self.clock).token_login(b"1" * 32)
        )
        self.assertEqual((await self.admin.user("alice")).active_tokens, 0)
        self.assertFalse(await self.admin.set_password("bob", "h"))
        self.assertEqual(await self.changes(), [(changes.PASSWORD_RESET, "alice")])

    async def test_revoke_tokens(self):
        """
        Revoking one user's tokens leaves the others'; the count is of the
        tokens that were valid; an unknown login gives L{None}.
        """
        await self.register("Alice", b"1" * 32, b"2" * 32)
        await self.register("bob", b"3" * 32)
        self.assertEqual(await self.admin.revoke_tokens("alice"), 2)
        self.assertEqual(await self.admin.revoke_tokens("alice"), 0)
        self.assertIsNone(await self.admin.revoke_tokens("carol"))
        fresh = CredentialStore(self.db, self.clock)
        self.assertIsNone(await fresh.token_login(b"1" * 32))
        self.assertEqual(await fresh.token_login(b"3" * 32), "bob")
        self.assertEqual(
            await self.changes(),
            [(changes.TOKENS_REVOKED, "alice"), (changes.TOKENS_REVOKED, "alice")],
        )

    async def test_revoke_all_tokens(self):
        """
        Revoking everyone's tokens leaves none valid, recorded as one change.
        """
        await self.register("alice", b"1" * 32, b"2" * 32)
        await self.register("bob", b"3" * 32)
        self.assertEqual(await self.admin.revoke_all_tokens(), 3)
        self.assertEqual([u.active_tokens for u in await self.admin.users()], [0, 0])
        self.assertEqual(
            await self.changes(), [(changes.TOKENS_REVOKED, changes.EVERYONE)]
        )

    async def test_identities(self):
        """
        Identities are listed by address, renamed and deleted; an unknown
        address changes nothing.
        """
        identities = IdentityStore(self.db, self.clock)
        await identities.remember("10.0.0.2", "Bob")
        await identities.remember("10.0.0.1", "Ann")
        self.assertEqual(
            await self.admin.identities(),
            [Identity("10.0.0.1", "Ann", 1000), Identity("10.0.0.2", "Bob", 1000)],
        )
        self.clock.advance(5)
        self.assertTrue(await self.admin.rename_identity("10.0.0.1", "Анна"))
        self.assertEqual(await identities.name_for("10.0.0.1"), "Анна")
        self.assertFalse(await self.admin.rename_identity("10.0.0.3", "X"))
        self.assertTrue(await self.admin.delete_identity("10.0.0.2"))
        self.assertFalse(await self.admin.delete_identity("10.0.0.2"))
        self.assertEqual(
            await self.admin.identities(), [Identity("10.0.0.1", "Анна", 1005)]
        )
        self.assertEqual(
            await self.changes(),
            [
                (changes.IDENTITY_RENAMED, "10.0.0.1"),
                (changes.IDENTITY_DELETED, "10.0.0.2"),
            ],
        )

    async def test_old_changes_forgotten(self):
        """
        A change older than the retention is forgotten when the next one is
        recorded: the table stays small.
        """
        await self.register("alice", b"1" * 32)
        await self.admin.revoke_tokens("alice")
        self.clock.advance(changes.RETENTION + 1)
        await self.admin.revoke_all_tokens()
        self.assertEqual(
            await self.changes(), [(changes.TOKENS_REVOKED, changes.EVERYONE)]
        )


class SQLiteAdminStoreTests(SQLiteDatabaseCases, AdminStoreCases, TestCase):
    pass


class SQLiteOnlyTests(SQLiteDatabaseCases, TestCase):
    """
    What only the SQLite database does for the admin tool: online backup,
    restore, integrity check.
    """

    async def test_backup_and_restore(self):
        """
        A backup is a whole database file of its own (no write-ahead log),
        mode 0600; restoring it brings back what it held and drops what came
        after.
        """
        identities = IdentityStore(self.db, self.clock)
        await identities.remember("10.0.0.1", "Ann")
        copy = os.path.join(self.dir, "copy.db")
        await self.db.backup_to(copy)
        self.assertEqual(os.stat(copy).st_mode & 0o777, 0o600)
        leftovers = [f for f in os.listdir(self.dir) if f.startswith("copy")]
        self.assertEqual(leftovers, ["copy.db"])
        await identities.remember("10.0.0.2", "Bob")
        await self.db.restore_from(copy)
        self.assertEqual(await identities.name_for("10.0.0.2"), None)
        self.assertEqual(await identities.name_for("10.0.0.1"), "Ann")
        again = IdentityStore(self.reopenDatabase(), self.clock)
        self.assertEqual(await again.name_for("10.0.0.1"), "Ann")

    async def test_restore_refuses_junk(self):
        """
        A file that is not an echolab database is refused, and the database
        is left as it was.
        """
        await IdentityStore(self.db, self.clock).remember("10.0.0.1", "Ann")
        junk = os.path.join(self.dir, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"not a database" * 1000)
        newer = os.path.join(self.dir, "newer.db")
        db = sqlite3.connect(newer)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
        for path in (junk, newer, os.path.join(self.dir, "missing.db")):
            with self.assertRaises(StoreError):
                await self.db.restore_from(path)
        self.assertEqual(
            await IdentityStore(self.db, self.clock).name_for("10.0.0.1"), "Ann"
        )

    async def test_integrity(self):
        """
        A sound database has no problems; a token whose user is gone is one.
        """
        self.assertEqual(await self.db.integrity_problems(), [])
        await self.db.run(self.db._db.execute, "PRAGMA foreign_keys=OFF")
        await self.db.write(("INSERT INTO tokens VALUES (x'01', 'ghost', 9, 0)", ()))
        [problem] = await self.db.integrity_problems()
        self.assertIn("tokens", problem)
