# -*- test-case-name: tests.test_check_command -*-
"""
The run's results as files for CI: JSON (every check, with what was sent
and what came back) and JUnit XML (a test suite per lab task, a test case
per check), the form Jenkins, GitLab and GitHub report readers take.
"""

import json
import xml.etree.ElementTree as ElementTree

from echotwist.check.runner import TASKS


def as_dicts(results):
    return [
        {
            "id": r.check.id,
            "task": r.check.task,
            "sections": list(r.check.sections),
            "title": r.check.title,
            "status": r.status,
            "sent": r.sent,
            "expected": r.expected,
            "got": r.got,
            "reason": r.reason,
            "hint": r.check.hint,
            "seconds": round(r.seconds, 3),
        }
        for r in results
    ]


def write_json(path, found, where):
    """
    @param found: a L{echotwist.check.runner.Run}.
    """
    results = found.results
    counts = {
        s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")
    }
    document = {
        "server": where,
        "mode": found.mode,
        "seconds": round(found.seconds, 3),
        "connections": found.connections,
        "summary": counts,
        "checks": as_dicts(results),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_junit(path, found, where):
    """
    @param found: a L{echotwist.check.runner.Run}.
    """
    results = found.results
    root = ElementTree.Element("testsuites", name=f"echolab-check {where}")
    _count(root, results, found.seconds)
    for task in sorted({r.check.task for r in results}):
        in_task = [r for r in results if r.check.task == task]
        suite = ElementTree.SubElement(
            root, "testsuite", name=f"task {task}: {TASKS[task]}"
        )
        _count(suite, in_task, sum(r.seconds for r in in_task))
        for result in in_task:
            _case(suite, result, task)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _count(element, results, seconds):
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(r.status == "failed" for r in results)))
    element.set("errors", "0")
    element.set("skipped", str(sum(r.status == "skipped" for r in results)))
    element.set("time", f"{seconds:.3f}")


def _case(suite, result, task):
    case = ElementTree.SubElement(
        suite,
        "testcase",
        classname=f"echolab-check.task{task}",
        name=result.check.id,
        time=f"{result.seconds:.3f}",
    )
    if result.status == "failed":
        failure = ElementTree.SubElement(
            case, "failure", message=f"expected {result.expected}; got {result.reason}"
        )
        failure.text = "\n".join(
            [f"contract: {result.check.section}"]
            + [f"sent: {s}" for s in result.sent]
            + [f"got: {g}" for g in result.got]
            + [f"hint: {result.check.hint}"]
        )
    elif result.status == "skipped":
        ElementTree.SubElement(case, "skipped", message=result.reason)
