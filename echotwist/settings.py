# -*- test-case-name: tests.test_tap -*-
"""
The server's settings in one immutable value, so the factory, sessions and
tests share one source of defaults. Each field declares its command-line
option (L{echotwist.optionspec}).
"""

from dataclasses import dataclass

from echotwist.messages import MODES
from echotwist.optionspec import COUNT, SECONDS, choice, number, setting
from echotwist.wire import DEFAULT_MAX_MESSAGE

DAY = 24 * 60 * 60


@dataclass(frozen=True)
class Settings:
    """
    @ivar mode: C{"echo"}, C{"ident"}, C{"auth"} or C{"raw"}
        (L{echotwist.raw}).
    @ivar max_message: largest accepted payload, in bytes.
    @ivar max_connections: connections served at once, in all.
    @ivar max_per_address: connections served at once from one address
        (loopback clients are not counted against it).
    @ivar login_timeout: seconds a connection may take to become ready
        (identified or authenticated).
    @ivar idle_timeout: seconds without any data from the client.
    @ivar frame_timeout: seconds a frame may stay incomplete.
    @ivar stall_timeout: seconds the server's output may stay blocked by a
        client that does not read.
    @ivar max_bad_messages: refused messages (C{bad_message}, C{bad_state},
        C{bad_value}) a connection may send before it is closed (bounding
        what one connection costs; high, since the contract keeps such
        connections open).
    @ivar token_ttl: seconds a new session token stays valid.
    @ivar linger: seconds a closing connection may take to drain before it
        is aborted.
    """

    mode: str = setting(
        "auth",
        "mode",
        "echo, ident (by IP address), auth (login), or raw (RFC 862: "
        "bytes echoed as they came, no frames).",
        choice(*MODES, "raw"),
        short="m",
    )
    max_message: int = setting(
        DEFAULT_MAX_MESSAGE,
        "max-message",
        "Largest message accepted, in bytes.",
        number(int, 64, 64 * 1024 * 1024),
    )
    max_connections: int = setting(
        10_000, "max-connections", "Connections served at once, in all.", COUNT
    )
    max_per_address: int = setting(
        64,
        "max-per-address",
        "Connections served at once from one non-loopback address.",
        COUNT,
    )
    login_timeout: float = setting(
        120.0,
        "login-timeout",
        "Seconds to identify or log in (from accept, a TLS handshake included).",
        SECONDS,
    )
    idle_timeout: float = setting(
        300.0, "idle-timeout", "Seconds a client may send nothing.", SECONDS
    )
    frame_timeout: float = setting(
        60.0, "frame-timeout", "Seconds a message may stay incomplete.", SECONDS
    )
    stall_timeout: float = setting(
        60.0,
        "stall-timeout",
        "Seconds a client may leave the server's replies unread.",
        SECONDS,
    )
    max_bad_messages: int = setting(
        1000,
        "max-bad-messages",
        "Refused messages before a connection is closed.",
        COUNT,
    )
    token_ttl: int = setting(
        30 * DAY,
        "token-ttl",
        "Seconds a session token stays valid.",
        number(int, 1, 366 * DAY),
    )
    linger: float = setting(
        5.0,
        "linger",
        "Seconds a closing connection may take to drain.",
        number(float, 0),
    )
