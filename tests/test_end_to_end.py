"""
End-to-end tests over real loopback TCP: the server built by
C{makeService}, on the real reactor, with real clients.
"""

import os
import threading

from twisted.internet import defer, reactor, threads

from echotwist.wire import MessageSocket
from tests.helpers import ServerTestCase, cheap_context


class Gate:
    """
    A passlib context whose hashing waits until the test opens the gate: a
    password hash that takes as long as the test wants.
    """

    def __init__(self, context):
        self._context = context
        self.opened = threading.Event()
        self.waiting = threading.Semaphore(0)

    def _wait(self):
        self.waiting.release()
        self.opened.wait(30)

    def hash(self, password):
        self._wait()
        return self._context.hash(password)

    def verify_and_update(self, password, hash):
        self._wait()
        return self._context.verify_and_update(password, hash)


class EchoEndToEndTests(ServerTestCase):
    def test_listening_line(self):
        """
        The server prints the port it really listens on.
        """
        self.assertEqual(self.out.getvalue(), f"listening on 127.0.0.1:{self.port}\n")

    @defer.inlineCallbacks
    def test_reconnect_loop(self):
        """
        The server keeps listening after clients disconnect: twenty
        connect / talk / disconnect cycles all work (lab task 1).
        """
        for i in range(20):
            c = yield self.client()
            c.send({"type": "say", "text": f"round {i}"})
            echo = yield c.next()
            self.assertEqual(echo["text"], f"round {i}")
            yield self.close(c)

    @defer.inlineCallbacks
    def test_many_messages(self):
        """
        Any number of messages each way, several replies to one (lab task 8).
        """
        c = yield self.client()
        for i in range(50):
            c.send({"type": "say", "text": str(i), "repeat": 3})
        for i in range(50):
            for n in (1, 2, 3):
                echo = yield c.next()
                self.assertEqual((echo["text"], echo["n"]), (str(i), n))

    def test_message_socket(self):
        """
        The plain-socket helpers (lab task 7) talk to the real server, byte
        for byte compatible.
        """

        def blocking_client():
            with MessageSocket.connect_to(("127.0.0.1", self.port), timeout=10) as s:
                welcome = s.recv_message()
                s.send_message({"type": "say", "text": "привет", "repeat": 2})
                first, second = s.recv_message(), s.recv_message()
                s.send_text('{"type":"say","text":"raw"}')
                raw = s.recv_text()
                s.send_message({"type": "quit"})
                bye = s.recv_message()
                try:
                    s.recv_bytes()
                    closed = False
                except EOFError:
                    closed = True
                return welcome, first, second, raw, bye, closed

        d = threads.deferToThread(blocking_client)

        def check(result):
            welcome, first, second, raw, bye, closed = result
            self.assertEqual(welcome["mode"], "echo")
            self.assertEqual(first, {"type": "echo", "text": "привет", "n": 1, "of": 2})
            self.assertEqual(second["n"], 2)
            self.assertEqual(raw, '{"type":"echo","text":"raw"}')
            self.assertEqual(bye["type"], "bye")
            self.assertTrue(closed)

        return d.addCallback(check)

    @defer.inlineCallbacks
    def test_too_large_delivered(self):
        """
        A client that keeps sending after an oversized header still gets
        C{too_large}, then the connection closes.
        """
        c = yield self.client()
        c.transport.write(b"\x00\x01\x00\x01" + b"x" * 200_000)
        error = yield c.next()
        self.assertEqual(error["code"], "too_large")
        yield c.lost

    @defer.inlineCallbacks
    def test_log_file(self):
        """
        The log file records each connection and disconnection with the
        client's address and port (lab tasks 1 and 3).
        """
        yield self.stop_server()
        self.start_server(application=True)
        c = yield self.client()
        local = c.transport.getHost().port
        yield self.close(c)
        yield self.stop_server()
        with open(os.path.join(self.data_dir, "echolab.log")) as f:
            log = f.read()
        self.assertIn(f"connection from 127.0.0.1:{local}", log)
        self.assertIn(f"disconnected 127.0.0.1:{local}", log)

    @defer.inlineCallbacks
    def test_goodbye_on_stop(self):
        """
        Stopping the server sends C{bye} to every client and closes.
        """
        clients = []
        for _ in range(3):
            c = yield self.client()
            clients.append(c)
        yield self.stop_server()
        for c in clients:
            bye = yield c.next()
            self.assertEqual(bye["type"], "bye")
            yield c.lost


class AuthEndToEndTests(ServerTestCase):
    mode = "auth"

    def setUp(self):
        self.gate = Gate(cheap_context())
        self.start_server(hash_context=self.gate)
        self.addCleanup(self.gate.opened.set)
        self.addCleanup(self.stop_server)

    @defer.inlineCallbacks
    def register(self, login, password="quite a good one"):
        c = yield self.client()
        yield c.next()  # ask login
        c.send({"type": "answer", "field": "login", "value": login})
        yield c.next()  # ask new_password
        c.send({"type": "answer", "field": "new_password", "value": password})
        return c

    @defer.inlineCallbacks
    def test_hashing_does_not_block(self):
        """
        While registrations wait on a deliberately slow hash, another
        client logs in by token and gets its echoes: hashing runs off the
        reactor thread.
        """
        self.gate.opened.set()
        first = yield self.register("fast")
        auth_ok = yield first.next_of("auth_ok")
        yield threads.deferToThread(self.gate.waiting.acquire)
        self.gate.opened.clear()
        slow = []
        for i in range(3):
            c = yield self.register(f"slow{i}")
            slow.append(c)
        yield threads.deferToThread(self.gate.waiting.acquire)  # one is hashing
        other = yield self.client()
        other.send({"type": "token", "token": auth_ok["token"]})
        yield other.next_of("greet")
        other.send({"type": "say", "text": "meanwhile", "repeat": 3})
        for n in (1, 2, 3):
            echo = yield other.next()
            self.assertEqual((echo["text"], echo["n"]), ("meanwhile", n))
        self.assertFalse(self.gate.opened.is_set())
        self.gate.opened.set()
        for c in slow:
            auth_ok = yield c.next()
            self.assertEqual(auth_ok["via"], "register")

    @defer.inlineCallbacks
    def test_persistence_across_restart(self):
        """
        Users and tokens survive a restart of the server.
        """
        self.gate.opened.set()
        c = yield self.register("Persist")
        auth_ok = yield c.next_of("auth_ok")
        yield self.close(c)
        yield self.stop_server()
        self.start_server(data_dir=self.data_dir)
        c = yield self.client()
        c.send({"type": "token", "token": auth_ok["token"]})
        again = yield c.next_of("auth_ok")
        self.assertEqual((again["login"], again["via"]), ("Persist", "token"))
        c.send({"type": "logout"})
        yield c.next_of("bye")


class GarbageTests(ServerTestCase):
    @defer.inlineCallbacks
    def test_no_cycles_left(self):
        """
        A connection that comes and goes leaves no server object for the
        garbage collector: with the collector off, its protocol, session and
        transport are already freed (by reference counting) once the server
        has handled its close, and a collection then finds none of them (the
        collector's passes would delay other clients' replies).
        """
        import gc
        import weakref

        from echotwist.protocol import ServerProtocol
        from echotwist.session import Session
        from echotwist.tcp import WriteThroughServer

        factory = self.service.factory
        session_for, release = factory.session_for, factory.release
        served = []  # weak references to each server object
        closed = []  # a Deferred per connection, fired once the server closed

        def recording_session_for(connection):
            session = session_for(connection)
            served.extend(map(weakref.ref, (connection, session, connection.transport)))
            return session

        def recording_release(connection):
            release(connection)  # (the last thing connectionLost does)
            # Fire on the reactor's next turn: by then connectionLost and
            # the reactor's calls that led to it have returned, and hold
            # nothing of the connection.
            reactor.callLater(0, closed.pop(0).callback, None)

        self.patch(factory, "session_for", recording_session_for)
        self.patch(factory, "release", recording_release)

        @defer.inlineCallbacks
        def come_and_go():
            server_closed = defer.Deferred()
            closed.append(server_closed)
            c = yield self.client()
            c.send({"type": "say", "text": "x"})
            self.assertEqual((yield c.next())["type"], "echo")
            yield self.close(c)
            yield server_closed.addTimeout(10, reactor)  # a deadline, not a wait

        yield come_and_go()  # (first-use caches and the like: not per connection)
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.set_debug, 0)
        self.addCleanup(gc.garbage.clear)
        del served[:]
        for _ in range(5):
            yield come_and_go()
        self.assertEqual(len(served), 15)
        self.assertEqual([r() for r in served if r() is not None], [])
        gc.collect()
        kinds = (ServerProtocol, Session, WriteThroughServer)
        self.assertEqual([o for o in gc.garbage if isinstance(o, kinds)], [])
