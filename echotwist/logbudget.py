# -*- test-case-name: tests.test_logbudget -*-
"""
A log budget per client, so that one client cannot flood the log.

Every connection and every failed login writes a line. One client probing
logins in a loop would otherwise write enough to rotate the whole retained
log away within minutes, audit lines of everyone else included. Each
client may have a few lines written in each window; what it causes beyond
that is counted and said in one summary line when the window ends.
"""

from twisted.logger import ILogObserver, Logger, LogLevel
from zope.interface import implementer

WINDOW = 60.0
"""
Seconds of each window. A minute is short enough that a summary follows
its lines closely, and long enough for a client's bursts to be counted as
one.
"""

ALLOWANCE = 30
"""
Lines written about one client in each window. An honest client's
connection writes a few (connected, logged in, disconnected), so this lets
it connect every few seconds with every line written.
"""

MAX_CLIENTS = 4096
"""
Clients counted one by one in each window; any further ones share one
allowance and one summary, so memory stays bounded whatever the number of
addresses sending.
"""

MAX_KINDS = 16
"""
Kinds counted one by one for a client in each window; further kinds are
counted together. Kinds are formats from the code, so a few are enough.
"""

LISTED_KINDS = 4
"""
Kinds named in a summary line, the most frequent first: enough to say what
a client did, short enough to keep the line short.
"""

FORMAT_CHARS = 60
"""
Characters of a kind's format quoted in a summary, so that one line stays
short whatever the formats.
"""

CLIENT_CHARS = 64
"""
Characters of a client's text in a summary (an IPv6 address takes at most
45).
"""


_OTHERS = object()  # the key of the clients that found the table full
_OTHER_KINDS = "(other kinds)"
_UNLIMITED = float("inf")
_ALWAYS_WRITTEN = frozenset({LogLevel.error, LogLevel.critical})


@implementer(ILogObserver)
class ClientLogBudget:
    """
    An observer in front of another, as Twisted's C{FilteringLogObserver},
    which forwards at most C{allowance} events about each client in each
    window of C{window} seconds.

    An event is about a client when it has a C{client} field (the client's
    address as text); other events pass untouched. Errors and failures pass
    whatever the budget. The rest is counted by client and C{log_format},
    and said as one line per client when the window ends, timed by
    C{clock}: that way a client that goes quiet still has its summary.

    Windows run between L{start} and L{stop}; until started (and once
    stopped) every event passes, so that nothing is held back without a
    timer to say so.

    It runs on every event, so its common path is one dictionary lookup,
    one comparison and one store.

    @ivar allowance: events forwarded about one client in each window (a
        change counts from the next window).
    @ivar window: seconds of each window.
    @ivar max_clients: clients counted one by one; the rest share one
        allowance (the table then holds one more entry).
    """

    def __init__(
        self,
        observer,
        clock,
        allowance=ALLOWANCE,
        window=WINDOW,
        max_clients=MAX_CLIENTS,
    ):
        self._observer = observer
        self._clock = clock
        self.allowance = allowance
        self.window = window
        self.max_clients = max_clients
        self._allowed = _UNLIMITED
        self._counts = {}  # client -> events forwarded in this window
        self._excess = {}  # client -> {kind: events held back in this window}
        self._log = Logger(
            namespace=f"{__name__}.{type(self).__name__}", observer=observer
        )
        self._started_at = None
        self._call = None

    @property
    def clients(self):
        """
        The entries of this window's table: clients counted one by one, and
        the other clients' shared entry. (Not C{__len__}: an observer must
        not be false when its table is empty.)
        """
        return len(self._counts)

    def __call__(self, event):
        client = event.get("client")
        if client is None:
            self._observer(event)
            return
        if event.get("log_level") is LogLevel.warn:
            # Warnings (failed and throttled logins) have an allowance of
            # their own, so a client's connection lines cannot crowd out
            # the lines that say which login it attacked.
            client = f"{client} (warnings)"
        counts = self._counts
        count = counts.get(client)
        if count is None:
            if len(counts) >= self.max_clients:
                client = _OTHERS
                count = counts.get(client, 0)
            else:
                count = 0
        if count < self._allowed:
            counts[client] = count + 1
            self._observer(event)
        else:
            self._hold_back(client, event)

    def _hold_back(self, client, event):
        """
        Count an event over the client's allowance by its kind, unless it
        reports an error: those are what the log is most needed for, and
        are rare, so they are written whatever the budget.
        """
        if (
            event.get("log_level") in _ALWAYS_WRITTEN
            or event.get("log_failure") is not None
        ):
            self._observer(event)
            return
        kinds = self._excess.get(client)
        if kinds is None:
            kinds = self._excess[client] = {}
        kind = event.get("log_format")
        if type(kind) is not str or len(kind) > FORMAT_CHARS:
            # (a format made at run time could be long, and each one is kept)
            kind = "(no format)" if kind is None else str(kind)[:FORMAT_CHARS]
        count = kinds.get(kind)
        if count is None:
            if len(kinds) >= MAX_KINDS:
                kind = _OTHER_KINDS
                count = kinds.get(kind, 0)
            else:
                count = 0
        kinds[kind] = count + 1

    def start(self):
        """
        Start the first window.
        """
        if self._call is None:
            self._allowed = self.allowance
            self._started_at = self._clock.seconds()
            self._call = self._clock.callLater(self.window, self._next_window)

    def stop(self):
        """
        End the current window now, with its summaries, and let every event
        pass from now on.
        """
        if self._call is not None:
            call, self._call = self._call, None
            if call.active():
                call.cancel()
            self._allowed = _UNLIMITED
            self._end_window()

    def _next_window(self):
        # The next window is set first, so that a failure to write this
        # one's summaries cannot leave every client held back for good.
        self._call = self._clock.callLater(self.window, self._next_window)
        self._allowed = self.allowance
        self._end_window()

    def _end_window(self):
        """
        Write one summary line for each client that went over its allowance
        in the window that ends, and start the counts again.
        """
        now = self._clock.seconds()
        seconds, self._started_at = now - self._started_at, now
        excess, self._excess = self._excess, {}
        self._counts = {}
        for client, kinds in excess.items():
            self._summarise(client, kinds, seconds)

    def _summarise(self, client, kinds, seconds):
        """
        Write one client's summary, straight to the observer. (Its field is
        C{about}, not C{client}: it is not itself a line about the client,
        to be counted against it by a budget further on.)
        """
        if client is _OTHERS:
            about = f"other clients (over {self.max_clients:,})"
        else:
            about = str(client)[:CLIENT_CHARS]
        count = sum(kinds.values())
        self._log.warn(
            "{count:,} more {lines} about {about} not written in the last "
            "{seconds:.0f} s: {kinds}",
            count=count,
            lines="line" if count == 1 else "lines",
            about=about,
            seconds=seconds,
            kinds=describe_kinds(kinds),
        )


def describe_kinds(kinds):
    """
    What a client's held-back events were, most frequent first, as C{600 x
    'connection from {peer}', ...}: bounded in length by L{LISTED_KINDS} and
    L{FORMAT_CHARS}, and on one line (C{repr} escapes line breaks).

    @param kinds: a mapping of format to count.
    """
    ranked = sorted(kinds.items(), key=lambda item: item[1], reverse=True)
    parts = [f"{count:,} x {_quote(kind)}" for kind, count in ranked[:LISTED_KINDS]]
    rest = ranked[LISTED_KINDS:]
    if rest:
        parts.append(f"{sum(count for _, count in rest):,} of {len(rest)} other kinds")
    return ", ".join(parts)


def _quote(kind):
    text = repr(kind)
    if len(text) > FORMAT_CHARS + 2:
        text = text[: FORMAT_CHARS - 1] + "...'"
    return text
