"""aidepy's JSON report: the same `Report` as the text layout, as one JSON document.

    {"summary": {"total", "added", "removed", "changed", "exit_code"},
     "added": [{"path", "type"}], "removed": [...],
     (with explanations: every entry's "explanation", and summary "explained", "unexplained")
     "changed": [{"path", "type", "summary", "attributes": {name: {"old", "new"}},
                  "diff": [unified diff lines, when the content attribute changed]}],
     "database": {"path", "sha256", "signature", "key_fingerprint", "created", "generation"}, ...}

Attribute names are config names (`p`, `m`, `sha256`); integers stay integers (times in
nanoseconds since the epoch, whole seconds; `p` the whole st_mode), digests are hex, other
bytes are text like paths.

Paths in JSON reports are lossless: a name that is valid UTF-8 appears as itself (JSON escapes
control characters, `"a\\nb"`); each byte that is not part of valid UTF-8 appears as the lone
surrogate U+DC80..U+DCFF (`"\\udcff"` for byte 0xff), Python's `surrogateescape` convention:
`json.loads(text)["path"].encode("utf-8", "surrogateescape")` gives the raw bytes back.
"""

from __future__ import annotations

import json
from typing import Any

from aidepy import content
from aidepy.attributes import BY_NAME, Kind
from aidepy.compare import Change, ChangeKind
from aidepy.entry import Entry, Value
from aidepy.report import (
    DatabaseSummary,
    Mode,
    Report,
    different_attributes,
    explanation_counts,
    format_time,
    listed_changes,
    outline,
    report_attributes,
    shown,
    summary_string,
)


def json_path(path: bytes) -> str:
    """A path for a JSON report, lossless (see the module docstring)."""
    return path.decode("utf-8", "surrogateescape")


def json_value(name: str, entry: Entry) -> Value | str:
    """An attribute value for JSON: ints as numbers (times in ns), digests in hex, text as text."""
    if name == "ftype":
        return entry.ftype
    value = entry.values.get("s" if name == "S" else name)
    if value is None or isinstance(value, int):
        return value
    if BY_NAME[name].kind is Kind.HASH:
        return value.hex()
    if BY_NAME[name].kind is Kind.CONTENT:
        return content.describe(value)
    return json_path(value)


def render_json(report: Report) -> str:
    """aidepy's JSON report (see the module docstring for how paths are written)."""
    r, o = report, report.options
    listed = listed_changes(r)

    def entry(change: Change) -> dict[str, Any]:
        item: dict[str, Any] = {"path": json_path(change.path), "type": change.ftype}
        if r.explained is not None:
            item["explanation"] = r.explained.of(change.path).as_json()
        if "content" in change.changed and (lines := content.diff(change.old, change.new)):
            item["diff"] = lines
        return item

    def attributes(change: Change) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in report_attributes(change, o):
            pair: dict[str, Any] = {}
            if change.old is not None and name in shown(change.old):
                pair["old"] = json_value(name, change.old)
            if change.new is not None and name in shown(change.new):
                pair["new"] = json_value(name, change.new)
            out[name] = pair
        return out

    doc: dict[str, Any] = {
        "aidepy_version": r.version,
        "mode": r.mode.value,
        "notices": list(r.notices),
        "start_time": format_time(r.start_time),
        "end_time": format_time(r.end_time),
        "outline": outline(r),
        "summary": {
            "total": r.summary.total, "added": r.summary.added, "removed": r.summary.removed,
            "changed": r.summary.changed, "exit_code": r.summary.exit_code,
        },
        "added": [entry(c) for c in listed if c.kind is ChangeKind.ADDED],
        "removed": [entry(c) for c in listed if c.kind is ChangeKind.REMOVED],
        "changed": [
            {**entry(c), "summary": summary_string(c, o), "attributes": attributes(c)}
            for c in listed if c.kind is ChangeKind.CHANGED
        ],
        "different_attributes": {
            json_path(c.path): d for c in r.changes if (d := different_attributes(c, o))
        },
        "warnings": list(r.warnings),
        "databases": [_json_database(db) for db in r.databases],
    }
    if r.explained is not None:
        unexplained, explained, _ = explanation_counts(r)
        doc["summary"].update(explained=explained, unexplained=unexplained)
    if r.mode is Mode.INIT and not o.detailed_init:
        doc["added"] = []
    if r.new_database is not None:
        doc["new_database"] = r.new_database
    if r.databases:
        doc["database"] = doc["databases"][0]
    return json.dumps(doc, indent=2) + "\n"


def _json_database(db: DatabaseSummary) -> dict[str, Any]:
    return {
        "path": db.path,
        "sha256": db.sha256.hex(),
        "signature": "verified" if db.authenticated else "signed" if db.signed else "unsigned",
        "key_fingerprint": db.key_fingerprint,
        "created": format_time(db.created) if db.created is not None else None,
        "generation": db.generation,
        "entries": db.entries,
    }
