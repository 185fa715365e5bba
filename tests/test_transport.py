"""
Tests of the transports under the protocol: TLS, Twisted endpoint strings
(C{--listen}), the PROXY protocol behind a load balancer, IPv6 and UNIX
sockets.
"""

import io
import ipaddress
import os
import socket
import stat
import struct
import sys

from twisted.internet import defer, endpoints, reactor, ssl
from twisted.internet.testing import StringTransport
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from echotwist import certs, tap
from tests.helpers import (
    HalfCloseableTransport,
    MessageClient,
    ServerTestCase,
    connect,
)


def ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class CertificateTests(SynchronousTestCase):
    def test_files(self):
        """
        C{python -m echotwist.certs} writes a certificate and a private key
        readable by its owner only.
        """
        out = self.mktemp()
        os.makedirs(out)
        self.patch(sys, "stdout", io.StringIO())
        certs.main(["--out", out])
        self.assertIn("key.pem (keep it private)", sys.stdout.getvalue())
        key = os.path.join(out, "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        with open(os.path.join(out, "cert.pem"), "rb") as f:
            certificate = ssl.Certificate.loadPEM(f.read())
        self.assertEqual(certificate.getSubject().commonName, b"localhost")

    def certs(self, cwd, *args):
        """
        Run C{python -m echotwist.certs} in C{cwd}, as the README does.
        """
        import subprocess

        return subprocess.run(
            [sys.executable, "-m", "echotwist.certs", *args],
            cwd=cwd,
            capture_output=True,
            timeout=60,
        )

    def test_no_overwrite(self):
        """
        Run twice in one folder, the second run writes nothing: one line on
        standard error and status 1, whichever of the two files exists.
        C{--force} replaces both, the key readable by its owner only.
        """
        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        first = self.certs(out)
        self.assertEqual((first.returncode, first.stderr), (0, b""))
        paths = [os.path.join(out, name) for name in ("cert.pem", "key.pem")]

        def contents():
            result = []
            for path in paths:
                with open(path, "rb") as f:
                    result.append(f.read())
            return result

        before = contents()
        again = self.certs(out)
        self.assertEqual((again.returncode, again.stdout), (1, b""))
        self.assertEqual(
            again.stderr.decode(),
            "echotwist.certs: ./cert.pem and ./key.pem already exist; not "
            "overwriting (--force replaces them, --out writes elsewhere)\n",
        )
        self.assertEqual(contents(), before)
        os.unlink(paths[0])
        alone = self.certs(out)
        self.assertEqual(alone.returncode, 1)
        self.assertIn(b"./key.pem already exists; not overwriting", alone.stderr)
        self.assertFalse(os.path.exists(paths[0]))
        os.chmod(paths[1], 0o644)
        forced = self.certs(out, "--force")
        self.assertEqual((forced.returncode, forced.stderr), (0, b""))
        after = contents()
        self.assertNotEqual(after[0], before[0])
        self.assertNotEqual(after[1], before[1])
        self.assertEqual(stat.S_IMODE(os.stat(paths[1]).st_mode), 0o600)

    def test_ignored_by_git(self):
        """
        The files it writes into the checkout are ignored by git: a private
        key is not committed by accident.
        """
        import fnmatch

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, ".gitignore")) as f:
            patterns = [
                line.strip()
                for line in f
                if line.strip() and not line.startswith(("#", "!"))
            ]
        for name in ("cert.pem", "key.pem"):
            self.assertTrue(
                any(fnmatch.fnmatch(name, p.lstrip("/")) for p in patterns), name
            )


class ListenOptionTests(SynchronousTestCase):
    def test_bad_descriptions(self):
        """
        Unknown endpoint types and missing certificate files are usage
        errors naming the option.
        """
        for description in [
            "nope:9090",
            "ssl:9443:privateKey=/no/such.pem:certKey=/no/such.pem",
        ]:
            options = tap.Options()
            e = self.assertRaises(
                UsageError, options.parseOptions, ["--listen", description]
            )
            self.assertIn("--listen", str(e))

    def test_listen_only(self):
        """
        With C{--listen} and no C{--port}, only the endpoints are used (and
        no port is asked for).
        """
        options = tap.Options()
        options.parseOptions(
            [
                "--listen",
                "tcp:0",
                "--listen",
                "unix:/tmp/x.sock",
                "--data-dir",
                self.mktemp(),
            ]
        )
        self.assertEqual(options["listen"], ["tcp:0", "unix:/tmp/x.sock"])
        self.assertIsNone(options["port"])


def write_certificate(testcase):
    folder = os.path.abspath(testcase.mktemp())
    os.makedirs(folder)
    testcase.patch(sys, "stdout", io.StringIO())
    certs.main(["--out", folder])
    return os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")


class TLSTests(ServerTestCase):
    mode = "auth"

    def setUp(self):
        self.cert, key = write_certificate(self)
        self.args = (
            "--listen",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={self.cert}",
        )
        super().setUp()

    def tls_client(self):
        with open(self.cert, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
        options = ssl.optionsForClientTLS("localhost", trustRoot=trust)
        port = list(self.service)[-1].listening.getHost().port
        endpoint = endpoints.SSL4ClientEndpoint(reactor, "127.0.0.1", port, options)
        return endpoints.connectProtocol(endpoint, MessageClient())

    def test_announce(self):
        """
        Each endpoint gets its listening line, naming its kind.
        """
        lines = self.out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[1], r"^listening on 127\.0\.0\.1:\d+ \(ssl\)$")

    @defer.inlineCallbacks
    def test_auth_session(self):
        """
        A whole auth session over TLS: register, then log in by token.
        """
        c = yield self.tls_client()
        self.addCleanup(self.close, c)
        self.assertEqual((yield c.next())["type"], "welcome")
        yield c.next()
        c.send({"type": "answer", "field": "login", "value": "tls_user"})
        yield c.next()
        c.send({"type": "answer", "field": "new_password", "value": "over tls only"})
        auth_ok = yield c.next_of("auth_ok")
        self.assertIn(
            c.transport.getHandle().get_protocol_version_name(), ("TLSv1.2", "TLSv1.3")
        )
        c.send({"type": "say", "text": "secret echo"})
        self.assertEqual((yield c.next_of("echo"))["text"], "secret echo")
        c.send({"type": "quit"})
        yield c.next_of("bye")
        yield c.lost

        again = yield self.tls_client()
        self.addCleanup(self.close, again)
        again.send({"type": "token", "token": auth_ok["token"]})
        self.assertEqual((yield again.next_of("auth_ok"))["via"], "token")


def proxy_v1(source, port=5555):
    family = "TCP6" if ":" in source else "TCP4"
    destination = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {port} 9090\r\n".encode()


def proxy_v2(source, port=5555):
    address = ipaddress.ip_address(source)
    if address.version == 4:
        family, body = 0x11, address.packed + bytes(4) + struct.pack("!HH", port, 9090)
    else:
        family, body = 0x21, address.packed + bytes(16) + struct.pack("!HH", port, 9090)
    prefix = b"\r\n\r\n\x00\r\nQUIT\n"
    return prefix + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


class ProxyTests(ServerTestCase):
    mode = "ident"
    args = ("--listen", "haproxy:tcp:0:interface=127.0.0.1")

    @defer.inlineCallbacks
    def proxied(self, header):
        """
        A client behind the balancer: the header first, then frames. (A
        header split across reads is tested on a fake transport, in
        L{tests.test_proxy.SplitHeaderTests}: over a socket the kernel may
        join the pieces.)
        """
        port = list(self.service)[-1].listening.getHost().port
        c = yield connect(port)
        self.addCleanup(self.close, c)
        c.transport.write(header)
        return c

    @defer.inlineCallbacks
    def identify(self, header, name):
        c = yield self.proxied(header)
        self.assertEqual((yield c.next())["type"], "welcome")
        ask = yield c.next()
        self.assertEqual(ask["field"], "name")
        c.send({"type": "answer", "field": "name", "value": name})
        greet = yield c.next()
        self.assertFalse(greet["known"])
        yield self.close(c)

    @defer.inlineCallbacks
    def known_as(self, header):
        c = yield self.proxied(header)
        yield c.next()
        greet = yield c.next()
        yield self.close(c)
        return greet.get("name") if greet["type"] == "greet" else None

    @defer.inlineCallbacks
    def test_v1(self):
        """
        Ident mode keys on the address in a PROXY v1 header: a C{haproxy:}
        listener connects the server once the header is read (Twisted's own
        wrapper would show it the balancer's address).
        """
        yield self.identify(proxy_v1("198.51.100.7"), "Vera")
        self.assertEqual((yield self.known_as(proxy_v1("198.51.100.7", 6000))), "Vera")
        self.assertIsNone((yield self.known_as(proxy_v1("198.51.100.8"))))

    @defer.inlineCallbacks
    def test_v2(self):
        """
        PROXY v2 headers work too, for IPv4 and IPv6; IPv4-mapped IPv6
        addresses count as IPv4.
        """
        yield self.identify(proxy_v2("203.0.113.9"), "Viktor")
        yield self.identify(proxy_v2("2001:db8::7"), "Six")
        self.assertEqual((yield self.known_as(proxy_v1("203.0.113.9"))), "Viktor")
        self.assertEqual(
            (yield self.known_as(proxy_v2("::ffff:203.0.113.9"))), "Viktor"
        )
        self.assertEqual((yield self.known_as(proxy_v1("2001:db8:0::7"))), "Six")

    @defer.inlineCallbacks
    def test_no_header(self):
        """
        A connection that does not start with a PROXY header is closed
        without a word.
        """
        c = yield self.proxied(b'\x00\x00\x00\x0f{"type":"quit"}')
        yield c.lost
        self.assertEqual(c.queue.pending, [])

    @defer.inlineCallbacks
    def test_unknown(self):
        """
        A C{PROXY UNKNOWN} header is served under the socket's own address
        (the balancer's), not reset.
        """
        c = yield connect(self.proxy_port(), source="127.0.0.9")
        self.addCleanup(self.close, c)
        c.transport.write(b"PROXY UNKNOWN\r\n")
        self.assertEqual((yield c.next())["type"], "welcome")
        yield c.next()
        c.send({"type": "answer", "field": "name", "value": "Balancer"})
        yield c.next_of("greet")
        name = yield self.service.factory.identities.name_for("127.0.0.9")
        self.assertEqual(name, "Balancer")

    test_unknown.timeout = 15  # (before the fix: a reset, and no welcome)

    def proxy_port(self):
        return list(self.service)[-1].listening.getHost().port


class ProxyLimitTests(ServerTestCase):
    args = (
        "--listen",
        "haproxy:tcp:0:interface=127.0.0.1",
        "--max-connections",
        "2",
    )

    @defer.inlineCallbacks
    def test_waiting_connections_count(self):
        """
        Connections still waiting for their header count toward
        C{--max-connections}: one over the limit is closed at once, and a
        waiting one is served when its header comes.
        """
        port = list(self.service)[-1].listening.getHost().port
        served = yield connect(port)
        self.addCleanup(self.close, served)
        served.transport.write(proxy_v1("198.51.100.7"))
        self.assertEqual((yield served.next())["type"], "welcome")
        waiting = yield connect(port)
        self.addCleanup(self.close, waiting)
        refused = yield connect(port)  # (accepted after waiting: one queue)
        self.addCleanup(self.close, refused)
        yield refused.lost
        self.assertEqual(refused.queue.pending, [])
        waiting.transport.write(proxy_v1("198.51.100.8"))
        self.assertEqual((yield waiting.next())["type"], "welcome")

    test_waiting_connections_count.timeout = 15  # (before the fix: never closed)


class ProxyHalfCloseTests(SynchronousTestCase):
    def test_half_close_only_where_the_transport_can(self):
        """
        Behind the PROXY wrapper, closing for writing half-closes a TCP
        transport, but under C{haproxy:ssl:} (TLS beneath the wrapper, which
        would pass the call to the socket under it) closes plainly.
        """
        from echotwist.proxy import ProxyHeaderProtocol

        from twisted.protocols.tls import TLSMemoryBIOProtocol

        self.assertFalse(hasattr(TLSMemoryBIOProtocol, "loseWriteConnection"))
        for transport, expected in (
            (HalfCloseableTransport(), "write"),
            (StringTransport(), "plain"),  # as TLS: no loseWriteConnection
        ):
            wrapper = ProxyHeaderProtocol.__new__(ProxyHeaderProtocol)
            wrapper.transport = transport
            wrapper.loseWriteConnection()
            if expected == "write":
                self.assertTrue(transport.write_closed)
                self.assertFalse(transport.disconnecting)
            else:
                self.assertTrue(transport.disconnecting)


def deferLater(seconds):
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


class IPv6Tests(ServerTestCase):
    mode = "ident"
    args = ("--interface", "::1")

    def setUp(self):
        if not ipv6_loopback():
            raise SkipTest("no IPv6 loopback here")
        return super().setUp()

    @defer.inlineCallbacks
    def test_session(self):
        """
        C{--interface ::1} listens on IPv6; ident mode stores the address.
        """
        self.assertEqual(self.out.getvalue(), f"listening on [::1]:{self.port}\n")
        c = yield connect(self.port, host="::1")
        self.addCleanup(self.close, c)
        yield c.next()
        yield c.next()
        c.send({"type": "answer", "field": "name", "value": "Six"})
        yield c.next_of("greet")
        name = yield self.service.factory.identities.name_for("::1")
        self.assertEqual(name, "Six")


class UnixSocketTests(ServerTestCase):
    def setUp(self):
        self.path = os.path.abspath(self.mktemp())
        self.args = ("--listen", f"unix:{self.path}")
        return super().setUp()

    @defer.inlineCallbacks
    def test_echo(self):
        """
        C{--listen unix:PATH} serves over a UNIX socket.
        """
        self.assertIn(f"listening on unix:{self.path} (unix)", self.out.getvalue())
        c = yield endpoints.connectProtocol(
            endpoints.UNIXClientEndpoint(reactor, self.path), MessageClient()
        )
        self.addCleanup(self.close, c)
        yield c.next()
        c.send({"type": "say", "text": "local"})
        self.assertEqual((yield c.next())["text"], "local")
