# -*- test-case-name: tests.test_metrics -*-
"""
Metered connections, for C{--metrics}: subclasses of the server's
connection and output classes that count connections, refusals, frames,
bytes and errors, made per server by L{metered_classes}, so that a server
without metrics builds and runs the plain classes, unchanged.

They count per read rather than per message where they can: bytes in per
read, and the frames and bytes out per write (a read's replies are
gathered into one write). Only messages in are counted one by one, by
the session, in a small integer that the connection adds to the tally
after each read (L{metered_session}). The counts are plain integers in a L{Tally}, which the
reactor's thread adds to and a scrape reads (L{echotwist.metrics}).
"""

from echotwist import messages as m
from echotwist.flow import BUSY
from echotwist.output import Output
from echotwist.protocol import ServerProtocol
from echotwist.wire import HEADER_SIZE

ERROR_CODES = (
    m.BAD_MESSAGE,
    m.BAD_STATE,
    m.BAD_VALUE,
    m.BAD_TOKEN,
    m.BAD_PASSWORD,
    m.WEAK_PASSWORD,
    m.TOO_MANY_ATTEMPTS,
    m.RATE_LIMITED,
    m.TOO_LARGE,
    m.TIMEOUT,
    m.BUSY,
    m.SERVER_ERROR,
)

WHOLE_BELOW = 2048
"""
L{Output} gathers a payload under this size joined to its header (a whole
frame in one piece), and a larger one as two pieces. So gathered pieces
that add up to less than this are whole frames, one each.
"""


class Tally:
    """
    Counts kept as plain integers by the reactor's thread (an addition is
    all a count costs it), read when scraped on prometheus_client's thread.
    """

    __slots__ = (
        "connections",
        "refused",
        "bytes_in",
        "bytes_out",
        "messages_in",
        "messages_out",
        "errors",
    )

    def __init__(self):
        self.connections = self.refused = 0
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self.errors = dict.fromkeys(ERROR_CODES, 0)


class CountedEchoes:
    """
    The echoes of a C{say} with C{repeat}, counted as they are written.
    """

    __slots__ = ("_echoes", "_tally")

    def __init__(self, echoes, tally):
        self._echoes = echoes
        self._tally = tally

    def __iter__(self):
        return self

    def __next__(self):
        payload = next(self._echoes)
        self._tally.messages_out += 1
        self._tally.bytes_out += HEADER_SIZE + len(payload)
        return payload


class MeteredOutput(Output):
    """
    An L{Output} counting the frames and bytes it writes, and the errors
    it sends by code. A read's replies are gathered and written at once
    (L{flush}): they are counted there, per read. (C{send_echoes} with one
    echo, the hot path, always gathers: a C{say} is only handled inside a
    read.)
    """

    __slots__ = ()
    tally = None  # set per server (metered_classes)

    def send(self, message):
        if message["type"] == "error":
            errors, code = self.tally.errors, message["code"]
            errors[code] = errors.get(code, 0) + 1
        Output.send(self, message)

    def send_payload(self, payload):
        if self.gathered is None and not self._flow.holds & BUSY:  # written now
            self.tally.messages_out += 1
            self.tally.bytes_out += HEADER_SIZE + len(payload)
        Output.send_payload(self, payload)

    def flush(self):
        out = self.gathered
        if out:
            tally = self.tally
            if len(out) == 1:  # one whole frame
                tally.messages_out += 1
                tally.bytes_out += len(out[0])
            elif len(out[0]) != HEADER_SIZE and len(out[-1]) < WHOLE_BELOW:
                # Small replies, the usual batch: joined (one piece for the
                # socket) and measured whole, rather than piece by piece.
                joined = b"".join(out)
                tally.bytes_out += len(joined)
                tally.messages_out += (
                    len(out) if len(joined) < WHOLE_BELOW else _frames(out)
                )
                self.gathered = [joined]
            else:
                tally.bytes_out += sum(map(len, out))
                tally.messages_out += _frames(out)
        Output.flush(self)

    def _write_echoes(self):
        if type(self._echoes) is not CountedEchoes:
            self._echoes = CountedEchoes(self._echoes, self.tally)
        Output._write_echoes(self)


def _frames(pieces):
    """
    How many frames gathered C{pieces} hold: each is a whole frame, or
    the header or the payload of a large one (L{WHOLE_BELOW}).
    """
    return len(pieces) - list(map(len, pieces)).count(HEADER_SIZE)


class MeteredProtocol(ServerProtocol):
    """
    A L{ServerProtocol} counting connections, refusals and bytes in.
    """

    tally = None  # set per server (metered_classes)

    def connectionMade(self):
        self.tally.connections += 1
        ServerProtocol.connectionMade(self)
        if not self.counted:  # refused: too many connections
            self.tally.refused += 1

    def dataReceived(self, data):
        self.tally.bytes_in += len(data)
        ServerProtocol.dataReceived(self, data)
        self._count_messages(self.session)

    def connectionLost(self, reason):
        session = self.session
        ServerProtocol.connectionLost(self, reason)
        self._count_messages(session)

    def _count_messages(self, session):
        """
        Add the messages C{session} was given since the last time (during
        this read) to the tally (L{metered_session}).
        """
        if session is not None and session.messages:
            self.tally.messages_in += session.messages
            session.messages = 0


def metered_classes(tally):
    """
    The connection class of a server whose counts go to C{tally}.
    """
    output = type("MeteredOutput", (MeteredOutput,), {"__slots__": (), "tally": tally})
    return _like(ServerProtocol, MeteredProtocol, tally=tally, output_class=output)


def metered_session(session_class):
    """
    A session class like C{session_class} that counts the messages it is
    given in its C{messages}: each is handled (L{Session.handle}), or
    refused as C{bad_message} when it could not be decoded. The connection
    (L{MeteredProtocol}) adds them to the tally after each read.

    Why so: C{handle} is called for each message anyway, and this one does
    what the plain one does (one line) besides counting, instead of
    calling it; and a count that stays small costs no allocation (CPython
    keeps its small integers), where adding 1 to a large total makes a new
    integer every time.
    """

    def __init__(self, peer, server):
        session_class.__init__(self, peer, server)
        self.messages = 0  # (an attribute of its own from the start: faster)

    def handle(self, message):
        self.messages += 1
        return self._handlers[type(message)](self, message)

    def refuse(self, code, text):
        if code == m.BAD_MESSAGE:  # (never handled: it could not be decoded)
            self.messages += 1
        return session_class.refuse(self, code, text)

    return _like(
        session_class, session_class, __init__=__init__, handle=handle, refuse=refuse
    )


def _like(plain, base, **members):
    """
    A subclass of C{base} with C{members}, named as the C{plain} class, in
    its module: the log lines of the plain class's instances (whose
    namespace is their class's) are the same with metrics or without.
    """
    members.update(
        __module__=plain.__module__, __qualname__=f"metered {plain.__name__}"
    )
    return type(plain.__name__, (base,), members)
