"""
Deliberately broken servers for testing echolab-check: each makes one
mistake a student's server could make, and must fail exactly the checks
that mistake breaks.

Most are echolab itself behind a small proxy that injects the mistake
into the conversation (L{Mistake} subclasses): everything else about them
is a conforming server. The proxy connects to echolab from the client's
own address (any 127/8 address works on Linux loopback), so ident mode
still knows clients by address. The others are tiny servers that never
answer, or say welcome and then nothing.
"""

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from echotwist.framing import FrameReceiver
from echotwist.wire import (
    DEFAULT_MAX_MESSAGE,
    HEADER,
    HEADER_SIZE,
    decode_message,
    encode_message,
    frame,
)


class Mistake:
    """
    A faithful proxy: every byte passes unchanged. Subclasses change one
    thing.
    """

    def from_client(self, proxy, data):
        proxy.to_server(data)

    def from_server(self, proxy, message, payload):
        proxy.to_client(frame(payload))


class ForgetsHeader(Mistake):
    """
    Writes its messages without the 4-byte length header (as the lab's
    first plain-socket server does).
    """

    def from_server(self, proxy, message, payload):
        proxy.to_client(payload)


class IgnoresRepeat(Mistake):
    """
    Answers every say with one plain echo, whatever its repeat.
    """

    def from_server(self, proxy, message, payload):
        if message["type"] == "echo" and "n" in message:
            if message["n"] == 1:
                proxy.to_client(
                    frame(encode_message({"type": "echo", "text": message["text"]}))
                )
            return
        super().from_server(proxy, message, payload)


class ClosesOnBadMessage(Mistake):
    """
    Sends bad_message, then hangs up (the contract keeps the connection).
    """

    def from_server(self, proxy, message, payload):
        super().from_server(proxy, message, payload)
        if message["type"] == "error" and message["code"] == "bad_message":
            proxy.transport.loseConnection()


class NeverResends(Mistake):
    """
    Never sends the pending question again after an error.
    """

    def from_server(self, proxy, message, payload):
        after_error = proxy.last_from_server == "error"
        proxy.last_from_server = message["type"]
        if message["type"] == "ask" and after_error:
            return
        super().from_server(proxy, message, payload)


class TokenSurvivesLogout(Mistake):
    """
    Answers logout with bye but never revokes the token.
    """

    def from_client(self, proxy, data):
        proxy.pending += data
        while len(proxy.pending) >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(proxy.pending)
            if length > DEFAULT_MAX_MESSAGE:  # echolab answers too_large
                break
            if len(proxy.pending) < HEADER_SIZE + length:
                return
            whole = bytes(proxy.pending[: HEADER_SIZE + length])
            del proxy.pending[: HEADER_SIZE + length]
            if proxy.authenticated and whole[HEADER_SIZE:] == b'{"type":"logout"}':
                proxy.to_client(frame(encode_message({"type": "bye", "text": "Bye."})))
                proxy.transport.loseConnection()
                return
            proxy.to_server(whole)
        proxy.to_server(bytes(proxy.pending))
        proxy.pending.clear()

    def from_server(self, proxy, message, payload):
        if message["type"] == "auth_ok":
            proxy.authenticated = True
        super().from_server(proxy, message, payload)


class _Backend(FrameReceiver):
    """
    The proxy's connection to echolab.
    """

    MAX_LENGTH = 2**31

    def __init__(self, proxy):
        self.proxy = proxy

    def stringReceived(self, payload):
        self.proxy.mistake.from_server(self.proxy, decode_message(payload), payload)

    def connectionLost(self, reason):
        self.proxy.transport.loseConnection()


class _Proxy(Protocol):
    """
    One client's connection, relayed to echolab through the mistake.
    """

    backend = None
    authenticated = False
    last_from_server = None

    def __init__(self, mistake, port):
        self.mistake = mistake
        self.port = port
        self.pending = bytearray()
        self.early = []

    def connectionMade(self):
        source = (self.transport.getPeer().host, 0)
        endpoint = TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.port, bindAddress=source
        )
        connecting = connectProtocol(endpoint, _Backend(self))
        connecting.addCallbacks(
            self._connected, lambda _: self.transport.loseConnection()
        )

    def _connected(self, backend):
        self.backend = backend
        if self.transport.disconnected:
            backend.transport.loseConnection()
        for data in self.early:
            backend.transport.write(data)

    def dataReceived(self, data):
        self.mistake.from_client(self, data)

    def to_server(self, data):
        if self.backend is None:
            self.early.append(data)
        else:
            self.backend.transport.write(data)

    def to_client(self, data):
        if not self.transport.disconnecting:  # as a server that hung up
            self.transport.write(data)

    def connectionLost(self, reason):
        if self.backend is not None:
            self.backend.transport.loseConnection()


def listen_broken(mistake, echolab_port):
    """
    Listen on a free loopback port as echolab on C{echolab_port} with
    C{mistake}.

    @return: the listening port (C{getHost().port}, C{stopListening}).
    """
    factory = Factory.forProtocol(lambda: _Proxy(mistake, echolab_port))
    return reactor.listenTCP(0, factory, interface="127.0.0.1")


def _welcome(max_message=65536):
    return frame(
        encode_message(
            {
                "type": "welcome",
                "server": "echolab",
                "version": "0",
                "mode": "echo",
                "max_message": max_message,
            }
        )
    )


class _Silent(Protocol):
    """
    Accepts, reads, and never answers.
    """

    def __init__(self, welcome):
        self.welcome = welcome

    def connectionMade(self):
        if self.welcome:
            self.transport.write(_welcome())


class _Garbage(Protocol):
    """
    Says welcome, claiming a max_message of 2^40, then answers anything
    with a header announcing a 2 GB frame that never comes.
    """

    def connectionMade(self):
        self.transport.write(_welcome(max_message=2**40))

    def dataReceived(self, data):
        self.transport.write(b"\x7f\xff\xff\xffgarbage")


def _listen(protocol):
    return reactor.listenTCP(0, Factory.forProtocol(protocol), interface="127.0.0.1")


def listen_silent(welcome=False):
    """
    A server that never answers (or says welcome, then nothing more).
    """
    return _listen(lambda: _Silent(welcome))


def listen_garbage():
    """
    A server whose every reply is an absurd length header.
    """
    return _listen(_Garbage)
