# -*- test-case-name: tests.test_check_command -*-
"""
The run's results as text for a person: grouped by lab task, one line per
check, and for each failure what was sent, what was expected, what came
back and a hint; then the summary line.
"""

from echotwist.check.runner import TASKS, summary

_MARK = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}
_SHOWN_SENT = 6
"""The last messages a failure shows (the JSON report has them all)."""


def text_report(found, where):
    """
    @param found: a L{echotwist.check.runner.Run}.
    @return: the report, lines joined, ending with the summary line.
    """
    results = found.results
    lines = [f"echolab-check {where} ({found.mode or 'unknown'} mode)"]
    width = max((len(r.check.id) for r in results), default=0)
    for task in sorted({r.check.task for r in results}):
        lines.append("")
        lines.append(f"Task {task}: {TASKS[task]}")
        for result in (r for r in results if r.check.task == task):
            lines.extend(_lines(result, width))
    lines.append("")
    lines.append(
        f"{_count(len(results), 'check')} in {found.seconds:.1f} s, "
        f"{_count(found.connections, 'connection')}"
    )
    lines.append(summary(results))
    return "\n".join(lines)


def _lines(result, width):
    check = result.check
    head = f"  {_MARK[result.status]}  {check.id:<{width}}  {check.title} ({check.section_refs})"
    if result.status == "passed":
        return [head]
    pad = " " * 8
    if result.status == "skipped":
        return [head, f"{pad}skipped:  {result.reason}"]
    sent = result.sent[-_SHOWN_SENT:]
    if len(result.sent) > len(sent):
        sent = [f"... {len(result.sent) - len(sent)} earlier"] + sent
    lines = [head]
    lines += [f"{pad}{'sent:' if i == 0 else '':<10}{s}" for i, s in enumerate(sent)]
    lines.append(f"{pad}expected: {result.expected}")
    lines.append(f"{pad}got:      {result.reason}")
    lines.append(f"{pad}contract: {check.section}")
    lines.append(f"{pad}hint:     {check.hint}")
    return lines


def _count(n, thing):
    return f"{n} {thing}{'' if n == 1 else 's'}"
