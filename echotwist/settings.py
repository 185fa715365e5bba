# -*- test-case-name: tests.test_tap -*-
"""
The server's settings in one immutable value, so the factory, sessions and
tests share one source of defaults (C{tap.Options} fills it from the
command line).
"""

from dataclasses import dataclass

from echotwist.wire import DEFAULT_MAX_MESSAGE

DAY = 24 * 60 * 60


@dataclass(frozen=True)
class Settings:
    """
    @ivar mode: C{"echo"}, C{"ident"} or C{"auth"}.
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

    mode: str = "auth"
    max_message: int = DEFAULT_MAX_MESSAGE
    max_connections: int = 10_000
    max_per_address: int = 64
    login_timeout: float = 120.0
    idle_timeout: float = 300.0
    frame_timeout: float = 60.0
    stall_timeout: float = 60.0
    max_bad_messages: int = 1000
    token_ttl: int = 30 * DAY
    linger: float = 5.0
