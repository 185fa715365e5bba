# -*- test-case-name: tests.test_admin_cli -*-
"""
What C{echolab-admin} prints: aligned tables for people, JSON for scripts
(C{--json}), in one place so every command prints the same way.
"""

import dataclasses
import json
import time


def when(seconds):
    """
    Unix seconds as local time to the minute, for people; "-" for none.
    """
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def table(headings, rows):
    """
    Lines of C{rows} (tuples of text) under C{headings}, in columns.
    """
    rows = [tuple(headings)] + [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headings))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def as_json(value):
    """
    C{value} (dataclasses, lists, dicts, plain values) as one line of JSON.
    """

    def plain(item):
        if dataclasses.is_dataclass(item):
            return dataclasses.asdict(item)
        raise TypeError(f"cannot write {type(item).__name__} as JSON")

    return json.dumps(value, default=plain, ensure_ascii=False, sort_keys=True)
