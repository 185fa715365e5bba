# -*- test-case-name: tests.test_check -*-
"""
The checks' registry and the run: each check in order, within its own
time limit and the run's budget, its result recorded with what was sent
and what came back.

The first thing read from any server is its C{welcome}: when that is
missing or wrong nothing else can be judged, so every other check is
skipped rather than failed (a server that forgot the 4-byte header fails
one check, with the hint that says so, not fifty).
"""

import time
from dataclasses import dataclass, field

from echotwist.check.connection import CheckFailed, Skip
from echotwist.check.context import Context
from echotwist.messages import MODES

SECTIONS = {
    1: "§1 Framing",
    2: "§2 Messages, server to client",
    3: "§3 Messages, client to server",
    4: "§4 Sessions",
    5: "§5 Error codes",
    6: "§6 Limits",
}

TASKS = {
    1: "keep listening after a client leaves; reconnects",
    5: "identification by IP address",
    6: "authentication; safe passwords; tokens like cookies",
    7: "send/receive helpers with a fixed-length header",
    8: "many messages both ways; several replies to one",
}

DEFAULT_LIMIT = 5.0
"""Seconds a check may take, unless it declares more."""

BUDGET = 60.0
"""The longest a whole run may take, in seconds."""

_RESERVE = 0.2
"""A check is not started with less of the budget left than this."""


@dataclass(frozen=True)
class Check:
    """
    One check of the contract.

    @ivar id: stable, for C{--only} and CI history.
    @ivar task: the lab task (L{TASKS}) it grades.
    @ivar sections: the contract sections (L{SECTIONS}) it checks.
    @ivar expected: what a conforming server does, in words.
    @ivar hint: what to look at when it fails, in plain words.
    """

    id: str
    task: int
    sections: tuple
    title: str
    expected: str
    hint: str
    modes: tuple
    run: object
    limit: float = DEFAULT_LIMIT

    @property
    def section(self):
        """The sections in full: C{§1 Framing, §5 Error codes}."""
        return ", ".join(SECTIONS[s] for s in self.sections)

    @property
    def section_refs(self):
        """The sections in short: C{§1 §5}."""
        return " ".join(f"§{s}" for s in self.sections)


REGISTRY = []


def check(id, task, sections, title, expected, hint, modes=MODES, limit=DEFAULT_LIMIT):
    """
    Register the decorated function, C{function(context)}, as a check.
    """

    def register(function):
        REGISTRY.append(
            Check(
                id,
                task,
                tuple(sections),
                title,
                expected,
                hint,
                tuple(modes),
                function,
                limit,
            )
        )
        return function

    return register


@dataclass
class Result:
    check: Check
    status: str
    """C{"passed"}, C{"failed"} or C{"skipped"}."""
    sent: list = field(default_factory=list)
    got: list = field(default_factory=list)
    expected: str = ""
    reason: str = ""
    """Why it failed (what came back) or was skipped."""
    seconds: float = 0.0


def all_checks():
    """
    Every registered check, in the order they run (task by task).
    """
    from echotwist.check import (  # noqa: F401  (registering is importing)
        task1_sessions,
        task5_ident,
        task6_auth,
        task6_tokens,
        task7_framing,
        task8_echo,
    )

    return sorted(REGISTRY, key=lambda c: c.task)


def applicable(checks, mode):
    """
    The checks for a server in C{mode} (L{None} when unknown: only the
    checks every mode shares).
    """
    if mode is None:
        return [c for c in checks if set(c.modes) == set(MODES)]
    return [c for c in checks if mode in c.modes]


@dataclass
class Run:
    """
    What a run found.

    @ivar mode: the server's mode (L{None} when unknown).
    @ivar connections: how many connections the run opened.
    """

    results: list
    mode: str
    connections: int
    seconds: float


def run(
    target, checks, mode=None, budget=BUDGET, server_timeout=None, clock=time.monotonic
):
    """
    Run C{checks} against C{target}. The welcome is always checked first;
    when it fails it is reported whether selected or not.

    @param mode: the mode the server must be in; L{None} takes the one
        its welcome names.
    @param server_timeout: the server's login/idle timeout in seconds,
        when it is short enough to be observed; L{None} skips that check.
    @rtype: L{Run}
    """
    start = clock()
    end = start + budget
    context = Context(target, mode, server_timeout, clock)
    welcome_check = next(c for c in all_checks() if c.id == "welcome")
    welcome = _run_one(welcome_check, context, end, clock)
    welcomed = welcome.status == "passed"
    results = [welcome] if welcome_check in checks or not welcomed else []
    mode = context.mode if welcomed else mode
    for each in applicable(checks, mode):
        if each is welcome_check:
            continue
        if not welcomed:
            reason = (
                "the server's welcome was missing or wrong (see the check "
                "'welcome'), so nothing else could be checked"
            )
        elif end - clock() < _RESERVE:
            reason = f"the run's {budget:g} s budget was spent"
        else:
            results.append(_run_one(each, context, end, clock))
            continue
        results.append(Result(each, "skipped", reason=reason))
    context.close()
    return Run(results, mode, context.connections, clock() - start)


def _run_one(each, context, end, clock):
    start = clock()
    transcript = context.begin(min(start + each.limit, end))
    result = Result(each, "passed", transcript.sent, transcript.got, each.expected)
    try:
        each.run(context)
    except CheckFailed as e:
        result.status, result.expected, result.reason = "failed", e.expected, e.got
    except Skip as e:
        result.status, result.reason = "skipped", str(e)
    except Exception as e:  # a bug of the checker's: the run goes on
        result.status, result.expected = "failed", each.expected
        result.reason = f"the checker itself failed ({e!r}); please report it"
    finally:
        context.end()
    result.seconds = clock() - start
    return result


def summary(results):
    """
    C{N passed, M failed, K skipped}.
    """
    counts = {
        s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")
    }
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
