"""aidepy's NDJSON report, for log pipelines: one JSON object a line, one line per change, then
one summary line. The key "kind" tells them apart:

    {"kind": "added"|"removed"|"changed", "path", "type", ("summary",) "attributes": {name:
     {"old", "new"}}, ("explanation")}
    {"kind": "summary", "summary": {"total", ...}, "mode", "outline", "notices", "warnings",
     "database", ...}

A change line is the JSON report's entry for that change (`aidepy.report.json_report`), with
the attributes of added and removed entries too (their new or old values only); the summary
line is the JSON document without its lists of changes. Paths as in the JSON report.
"""

from __future__ import annotations

import json
from typing import Any

from aidepy.report.json_report import CHANGE_LISTS, change_item, document, reported_changes
from aidepy.report.model import Report


def render_ndjson(report: Report) -> str:
    """One line per change in the JSON report's order (added, removed, changed), then the summary."""
    changes = reported_changes(report)
    lines: list[dict[str, Any]] = [
        {"kind": kind.value, **change_item(report, c, with_attributes=True)}
        for kind in CHANGE_LISTS for c in changes if c.kind is kind
    ]
    lists = {kind.value for kind in CHANGE_LISTS}
    lines.append({"kind": "summary", **{k: v for k, v in document(report).items() if k not in lists}})
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
