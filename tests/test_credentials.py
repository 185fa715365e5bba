"""
Tests for L{echotwist.credentials}: logins, hashes and tokens, their
caches, and what other processes change. The cases are a mixin over
tests.test_store's hooks, to run against any database.
"""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from echotwist import credentials
from echotwist.credentials import AccountChanged, CredentialStore, LoginTaken
from tests.test_store import DatabaseCases, SQLiteDatabaseCases


class CredentialStoreCases(DatabaseCases):
    def setUp(self):
        super().setUp()
        self.store = CredentialStore(self.db, self.clock)

    async def test_add_user(self):
        """
        A user is found by any case of its login, with its spelling kept.
        """
        await self.store.add_user("Alice", "$argon2id$x", b"d" * 32, 2000)
        self.assertEqual(await self.store.user("ALICE"), ("Alice", "$argon2id$x"))
        self.assertIsNone(await self.store.user("bob"))

    async def test_login_taken(self):
        """
        Registering a login again, in any case, fails and adds no token.
        """
        await self.store.add_user("alice", "h1", b"1" * 32, 2000)
        with self.assertRaises(LoginTaken):
            await self.store.add_user("ALICE", "h2", b"2" * 32, 2000)
        self.assertEqual((await self.store.user("alice"))[1], "h1")
        self.assertIsNone(await self.store.token_login(b"2" * 32))

    async def test_tokens(self):
        """
        A token is valid until it expires or is revoked.
        """
        await self.store.add_user("alice", "h", b"1" * 32, 2000)
        await self.store.add_token("alice", b"2" * 32, 1500)
        self.assertEqual(await self.store.token_login(b"1" * 32), "alice")
        self.assertEqual(await self.store.token_login(b"2" * 32), "alice")
        await self.store.revoke(b"1" * 32)
        self.assertIsNone(await self.store.token_login(b"1" * 32))
        self.clock.advance(500)
        self.assertIsNone(await self.store.token_login(b"2" * 32))
        self.assertIsNone(await self.store.token_login(b"3" * 32))

    async def test_cache_and_database_agree(self):
        """
        Tokens are found the same from the cache (this store issued them)
        and from the database (a store opened after a restart), and a
        revoked token is refused by both.
        """
        await self.store.add_user("Alice", "h", b"1" * 32, 2000)
        await self.store.add_token("Alice", b"2" * 32, 2000)
        fresh = CredentialStore(self.db, self.clock)
        for store in (self.store, fresh):
            self.assertEqual(await store.token_login(b"1" * 32), "Alice")
            self.assertEqual(await store.token_login(b"2" * 32), "Alice")
        await self.store.revoke(b"1" * 32)
        self.assertIsNone(await self.store.token_login(b"1" * 32))
        self.assertIsNone(
            await CredentialStore(self.db, self.clock).token_login(b"1" * 32)
        )
        self.clock.advance(1000)
        for store in (self.store, fresh):
            self.assertIsNone(await store.token_login(b"2" * 32))

    async def test_cache_bounded(self):
        """
        The token cache keeps at most its size; older tokens are then looked
        up in the database, still valid.
        """
        store = CredentialStore(self.db, self.clock, cache_size=3)
        await store.add_user("alice", "h", b"\x00" * 32, 2000)
        for i in range(1, 10):
            await store.add_token("alice", bytes([i]) * 32, 2000)
        self.assertEqual(len(store._tokens), 3)
        for i in range(10):
            self.assertEqual(await store.token_login(bytes([i]) * 32), "alice")

    async def test_user_cache(self):
        """
        Users are found the same from the cache and from the database; an
        upgraded hash is read back, not the cached old one.
        """
        await self.store.add_user("Alice", "old", b"1" * 32, 2000)
        fresh = CredentialStore(self.db, self.clock)
        for store in (self.store, fresh):
            self.assertEqual(await store.user("ALICE"), ("Alice", "old"))
        await self.store.replace_hash("Alice", "old", "new")
        self.assertEqual(await self.store.user("alice"), ("Alice", "new"))

    async def test_forget_expired(self):
        """
        Expired tokens are deleted by the periodic clean-up.
        """
        await self.store.add_user("alice", "h", b"1" * 32, 1100)
        await self.store.add_token("alice", b"2" * 32, 5000)
        self.clock.advance(200)
        await self.store.forget_expired()
        rows = await self.db.read_all("SELECT digest FROM tokens")
        self.assertEqual([bytes(row[0]) for row in rows], [b"2" * 32])

    async def test_replace_hash(self):
        """
        An upgraded hash replaces the stored one only if that is unchanged.
        """
        await self.store.add_user("alice", "old", b"1" * 32, 2000)
        await self.store.replace_hash("alice", "stale", "new")
        self.assertEqual((await self.store.user("alice"))[1], "old")
        await self.store.replace_hash("alice", "old", "new")
        self.assertEqual((await self.store.user("alice"))[1], "new")

    async def revoke_elsewhere(self, where="", args=()):
        """
        Revoke tokens as another process would: in the database only.
        """
        await self.db.write(("UPDATE tokens SET revoked = 1" + where, args))

    async def test_forget_login(self):
        """
        Once told that another process changed a login, the store reads
        its tokens and hash from the database again; other logins' cached
        tokens stay valid.
        """
        await self.store.add_user("Alice", "h", b"1" * 32, 2000)
        await self.store.add_user("bob", "h", b"2" * 32, 2000)
        await self.revoke_elsewhere()
        await self.db.write(("UPDATE users SET hash = 'new'", ()))
        self.assertEqual(await self.store.token_login(b"1" * 32), "Alice")  # cached
        self.store.forget_login("alice")
        self.assertIsNone(await self.store.token_login(b"1" * 32))
        self.assertEqual((await self.store.user("alice"))[1], "new")
        self.assertEqual(await self.store.token_login(b"2" * 32), "bob")

    async def test_forget_all_tokens(self):
        """
        Once told that every token was revoked elsewhere, none is accepted.
        """
        await self.store.add_user("alice", "h", b"1" * 32, 2000)
        await self.store.add_user("bob", "h", b"2" * 32, 2000)
        await self.revoke_elsewhere()
        self.store.forget_all_tokens()
        self.assertIsNone(await self.store.token_login(b"1" * 32))
        self.assertIsNone(await self.store.token_login(b"2" * 32))

    async def test_read_before_change_not_cached(self):
        """
        A token read from the database before a change elsewhere, but
        answered after the store was told of the change, is not cached: its
        next use reads the database again.
        """
        await self.store.add_user("alice", "h", b"1" * 32, 2000)
        store = CredentialStore(self.db, self.clock)  # nothing cached
        read, gate, real_read = defer.Deferred(), defer.Deferred(), self.db.read

        def held_read(*args):
            def hold(row):
                read.callback(None)
                return gate.addCallback(lambda _: row)

            return real_read(*args).addCallback(hold)

        self.db.read = held_read
        answer = store.token_login(b"1" * 32)
        self.db.read = real_read
        await read  # the row is read, valid, but not yet answered
        await self.revoke_elsewhere()
        store.forget_login("alice")
        gate.callback(None)
        self.assertEqual(await answer, "alice")
        self.assertIsNone(await store.token_login(b"1" * 32))

    async def test_last_logins(self):
        """
        Logins noted are written later in one go, never moving a last-login
        time backwards; a registration is the first login.
        """
        await self.store.add_user("Alice", "h", b"1" * 32, 2000)
        self.assertEqual((await self.db.read("SELECT last_login FROM users"))[0], 1000)
        self.clock.advance(50)
        last_logins = self.store.last_logins
        last_logins.seen("ALICE")
        last_logins.seen("nobody")
        await last_logins.write()
        self.assertEqual(last_logins.pending, {})
        row = await self.db.read("SELECT last_login FROM users")
        self.assertEqual(row[0], 1050)
        last_logins.pending["alice"] = 1010
        await last_logins.write()
        self.assertEqual((await self.db.read("SELECT last_login FROM users"))[0], 1050)

    def test_last_logins_bounded(self):
        """
        At most the cache size of logins wait to be written.
        """
        store = CredentialStore(self.db, self.clock, cache_size=2)
        for login in ("a", "b", "c", "a"):
            store.last_logins.seen(login)
        self.assertEqual(sorted(store.last_logins.pending), ["a", "b"])

    def test_last_logins_without_cache(self):
        """
        A store without caches (one shared by several processes) still
        notes, and writes, its users' logins.
        """
        store = CredentialStore(self.db, self.clock, cache_size=0)
        store.last_logins.seen("a")
        self.assertEqual(sorted(store.last_logins.pending), ["a"])

    async def test_no_token_after_reset(self):
        """
        No token is issued for a password checked against a hash that is no
        longer the stored one, nor for a login that no longer exists.
        """
        await self.store.add_user("alice", "old", b"1" * 32, 5000)
        await self.db.write(("UPDATE users SET hash = 'new'", ()))
        with self.assertRaises(AccountChanged):
            await self.store.add_token("alice", b"2" * 32, 5000, "old")
        self.assertIsNone(await self.store.token_login(b"2" * 32))
        await self.store.add_token("alice", b"3" * 32, 5000, "new")
        self.assertEqual(await self.store.token_login(b"3" * 32), "alice")
        with self.assertRaises(AccountChanged):
            await self.store.add_token("bob", b"4" * 32, 5000)

    async def test_forgotten_logins_bounded(self):
        """
        Past a bound of logins forgotten, the whole token cache is dropped:
        no cached token of a forgotten login is accepted either way.
        """
        self.patch(credentials, "MAX_FORGOTTEN", 2)
        await self.store.add_user("alice", "h", b"1" * 32, 2000)
        await self.revoke_elsewhere()
        for login in ("x", "y", "alice", "z"):
            self.store.forget_login(login)
        self.assertLessEqual(len(self.store._forgotten), 2)
        self.assertIsNone(await self.store.token_login(b"1" * 32))


class SQLiteCredentialStoreTests(SQLiteDatabaseCases, CredentialStoreCases, TestCase):
    pass
