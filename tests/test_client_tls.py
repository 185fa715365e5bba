"""
Tests for L{echotwist.client.connect}: TLS with a verified certificate and
host name, refusals that never fall back to plain TCP, and which peers are
safe for secrets over plain TCP.

The server is the real echolab server in echo mode, listening with
C{--listen ssl:...} in this process; the last tests run the real client
process against it.
"""

import io
import os

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import connectProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from echotwist import __version__, tap
from echotwist.addresses import is_loopback, peer_host
from echotwist.client import connect
from echotwist.client.protocol import ClientProtocol

from .client_support import TIMEOUT, client_command, client_env, make_certificate


class Collector:
    """
    A conversation stand-in: keeps messages, fires C{echoed} on an echo.
    """

    def __init__(self):
        self.messages = []
        self.echoed = defer.Deferred()
        self.lost = defer.Deferred()

    def message_received(self, message):
        self.messages.append(message)
        if message["type"] == "echo":
            self.echoed.callback(message)

    def connection_lost(self, reason):
        self.lost.callback(None)


class TLSTests(TestCase):
    timeout = TIMEOUT

    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        ca, ca_key, ca_pem, _ = make_certificate("echolab test CA", [])
        _, _, other_pem, _ = make_certificate("some other CA", [])
        _, _, cert_pem, key_pem = make_certificate(
            "localhost", ["localhost"], issuer=(ca, ca_key)
        )
        self.ca_file = os.path.join(directory, "ca.pem")
        self.other_ca_file = os.path.join(directory, "other.pem")
        for path, pem in [(self.ca_file, ca_pem), (self.other_ca_file, other_pem)]:
            with open(path, "wb") as f:
                f.write(pem)
        key_file = os.path.join(directory, "key.pem")
        cert_file = os.path.join(directory, "cert.pem")
        for path, pem in [(key_file, key_pem), (cert_file, cert_pem)]:
            with open(path, "wb") as f:
                f.write(pem)
        options = tap.Options()
        options.parseOptions(
            [
                "--mode",
                "echo",
                "--data-dir",
                os.path.join(directory, "data"),
                "--listen",
                f"ssl:0:interface=127.0.0.1:privateKey={key_file}:certKey={cert_file}",
            ]
        )
        self.service = tap.makeService(options, stdout=io.StringIO())
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.port = list(self.service)[-1].listening.getHost().port

    async def connect_to(self, host, ca_file):
        endpoint = connect.endpoint_for(
            reactor,
            host,
            self.port,
            tls=True,
            trust_root=connect.load_trust_root(ca_file),
            timeout=TIMEOUT,
        )
        protocol = await connectProtocol(endpoint, ClientProtocol())
        return protocol, protocol.when_heard()

    async def test_session(self):
        """
        With the CA that signed the server's certificate, a TLS session to
        the name in it works: welcome, then an echo.
        """
        protocol, heard = await self.connect_to("localhost", self.ca_file)
        await heard
        collector = Collector()
        protocol.attach(collector)
        protocol.send({"type": "say", "text": "over TLS"})
        echo = await collector.echoed
        self.assertEqual(echo, {"type": "echo", "text": "over TLS"})
        self.assertEqual(collector.messages[0]["mode"], "echo")
        protocol.close()
        await collector.lost

    async def test_wrong_ca(self):
        """
        A certificate not signed by the given CA is refused: the connection
        fails with a one-line reason and no message is ever handed on.
        """
        protocol, heard = await self.connect_to("localhost", self.other_ca_file)
        failure = await self.assertFailure(heard, Exception)
        line = connect.describe_failure(Failure(failure), "localhost", self.port)
        self.assertEqual(
            line,
            f"cannot connect to localhost:{self.port} over TLS: the server's "
            "certificate could not be verified (certificate verify failed); "
            "not connecting",
        )
        self.assertEqual([kind for kind, _ in protocol._early], ["connection_lost"])

    async def test_host_mismatch(self):
        """
        A certificate for another name is refused, even when signed by the
        trusted CA (here: issued to localhost, reached as 127.0.0.1).
        """
        protocol, heard = await self.connect_to("127.0.0.1", self.ca_file)
        failure = await self.assertFailure(heard, Exception)
        line = connect.describe_failure(Failure(failure), "127.0.0.1", self.port)
        self.assertEqual(
            line,
            f"cannot connect to 127.0.0.1:{self.port} over TLS: the server's "
            "certificate is not for '127.0.0.1'; not connecting",
        )

    async def run_client(self, *args, script=""):
        """
        Run the real client with a script on standard input.
        """
        command = client_command("--port", str(self.port), *args)
        return await getProcessOutputAndValue(
            command[0],
            command[1:],
            env=client_env(self.mktemp()),
            path=os.getcwd(),
            stdinBytes=script.encode(),
        )

    async def test_client_process(self):
        """
        The real client with --ca (which implies --tls) holds a session.
        """
        out, err, code = await self.run_client(
            "--host", "localhost", "--ca", self.ca_file, script="hello\n"
        )
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(
            out.decode().splitlines(),
            [
                f"Connected to echolab {__version__} at localhost:{self.port} "
                "(echo mode; TLS 1.3, certificate of CN=localhost).",
                "echo: hello",
                "bye: Goodbye.",
            ],
        )

    async def test_client_process_refused(self):
        """
        The real client refuses an unverified server: one line on standard
        error, status 1, nothing sent in clear.
        """
        out, err, code = await self.run_client(
            "--host", "localhost", "--tls", "--ca", self.other_ca_file, script="hello\n"
        )
        self.assertEqual((code, out), (1, b""))
        self.assertEqual(
            err.decode(),
            f"echolab-client: cannot connect to localhost:{self.port} over TLS: "
            "the server's certificate could not be verified (certificate verify "
            "failed); not connecting\n",
        )

    async def test_plain_client_to_tls_server(self):
        """
        Without --tls the client does not speak TLS: a TLS server never
        says welcome, which is one line and status 1.
        """
        out, err, code = await self.run_client(
            "--host", "localhost", "--timeout", "1", script="hello\n"
        )
        self.assertEqual(code, 1)
        self.assertIn(b"did not say welcome within 1 s", err)


class TrustRootTests(SynchronousTestCase):
    def test_bad_ca_files(self):
        """
        A missing CA file or one without a certificate is a one-line error.
        """
        path = self.mktemp()
        with self.assertRaises(connect.CAFileError) as caught:
            connect.load_trust_root(path)
        self.assertIn("cannot read", str(caught.exception))
        with open(path, "w") as f:
            f.write("not a certificate\n")
        with self.assertRaises(connect.CAFileError) as caught:
            connect.load_trust_root(path)
        self.assertIn("holds no PEM certificate", str(caught.exception))


class LoopbackTests(SynchronousTestCase):
    def test_loopback(self):
        """
        127.0.0.0/8, ::1 and IPv4-mapped loopback are this machine.
        """
        for address in [
            IPv4Address("TCP", "127.0.0.1", 1),
            IPv4Address("TCP", "127.9.8.7", 1),
            IPv6Address("TCP", "::1", 1),
            IPv6Address("TCP", "::ffff:127.0.0.1", 1),
        ]:
            self.assertTrue(is_loopback(peer_host(address)), address)

    def test_not_loopback(self):
        """
        Other addresses are not.
        """
        for address in [
            IPv4Address("TCP", "10.1.2.3", 1),
            IPv4Address("TCP", "0.0.0.0", 1),
            IPv6Address("TCP", "::ffff:10.0.0.1", 1),
            IPv6Address("TCP", "fe80::1%eth0", 1),
        ]:
            self.assertFalse(is_loopback(peer_host(address)), address)

    def test_secrets_allowed(self):
        """
        Secrets go over TLS, to loopback, or anywhere with --insecure; not
        in clear text to another host, and the person is told why.
        """
        remote = IPv4Address("TCP", "10.1.2.3", 9090)
        local = IPv6Address("TCP", "::1", 9090)
        self.assertEqual(connect.secrets_allowed(local, False, False), (True, ""))
        self.assertEqual(connect.secrets_allowed(remote, True, False), (True, ""))
        self.assertEqual(connect.secrets_allowed(remote, False, True), (True, ""))
        self.assertEqual(
            connect.secrets_allowed(remote, False, False),
            (False, "10.1.2.3 is not this machine and the connection is not encrypted"),
        )
