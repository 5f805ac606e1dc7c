"""aidepy's JSON report: the same `Report` as the text layout, as one JSON document.

    {"summary": {"total", "added", "removed", "changed", "exit_code"},
     "added": [{"path", "type"}], "removed": [...],
     (with explanations: every entry's "explanation", and summary "explained", "unexplained";
      the daily report: every entry's "new", true when the previous report did not list it as
      it is now, and summary "new", "pending")
     "changed": [{"path", "type", "summary", "attributes": {name: {"old", "new"}},
                  "diff": [unified diff lines, when the content attribute changed]}],
     "database": {"path", "sha256", "signature", "key_fingerprint", "created", "generation"}, ...}

Attribute names are config names (`p`, `m`, `sha256`); integers stay integers (times in
nanoseconds since the epoch, whole seconds; `p` the whole st_mode), digests are hex, other
bytes are text like paths.

Paths in JSON reports are lossless (`aidepy.report.escape.json_path`): the raw bytes come back
with `json.loads(text)["path"].encode("utf-8", "surrogateescape")`.
"""

from __future__ import annotations

import json
from typing import Any

from aidepy import content
from aidepy.attributes import BY_NAME, Kind
from aidepy.compare import Change, ChangeKind
from aidepy.entry import Entry, Value
from aidepy.report import model
from aidepy.report.escape import json_path
from aidepy.report.model import DatabaseSummary, Report

CHANGE_LISTS = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED)
"""The document's lists of changes, each under its kind's name ("added", ...), in this order."""


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


def reported_changes(report: Report) -> list[Change]:
    """The changes the document lists: the listed ones, but no added entries from an init
    unless report_detailed_init asks for them."""
    listed = model.listed_changes(report)
    if report.mode is model.Mode.INIT and not report.options.detailed_init:
        return [c for c in listed if c.kind is not ChangeKind.ADDED]
    return listed


def change_item(report: Report, change: Change, *, with_attributes: bool) -> dict[str, Any]:
    """One change as the document lists it: path, type, explanation (when the report has them),
    whether it is new (in the daily report); a changed entry also its summary string, and
    (`with_attributes`) its attributes."""
    item: dict[str, Any] = {"path": json_path(change.path), "type": change.ftype}
    if report.explained is not None:
        item["explanation"] = report.explained.of(change.path).as_json()
    if report.new is not None:
        item["new"] = change.path in report.new
    if change.kind is ChangeKind.CHANGED:
        item["summary"] = model.summary_string(change, report.options)
    if "content" in change.changed and (lines := content.diff(change.old, change.new)):
        item["diff"] = lines
    if with_attributes:
        item["attributes"] = attribute_values(change, report)
    return item


def attribute_values(change: Change, report: Report) -> dict[str, dict[str, Value | str]]:
    """The attributes the details show for `change`: `{name: {"old": ..., "new": ...}}`, each
    side present when that entry has the attribute."""
    out: dict[str, dict[str, Value | str]] = {}
    for name in model.report_attributes(change, report.options):
        pair: dict[str, Value | str] = {}
        if change.old is not None and name in model.shown(change.old):
            pair["old"] = json_value(name, change.old)
        if change.new is not None and name in model.shown(change.new):
            pair["new"] = json_value(name, change.new)
        out[name] = pair
    return out


def document(report: Report) -> dict[str, Any]:
    """The JSON report as a dict (see the module docstring)."""
    r, o = report, report.options
    reported = reported_changes(r)
    doc: dict[str, Any] = {
        "aidepy_version": r.version,
        "mode": r.mode.value,
        "notices": list(r.notices),
        "start_time": model.format_time(r.start_time),
        "end_time": model.format_time(r.end_time),
        "outline": model.outline(r),
        "summary": {
            "total": r.summary.total, "added": r.summary.added, "removed": r.summary.removed,
            "changed": r.summary.changed, "exit_code": r.summary.exit_code,
        },
        **{kind.value: [change_item(r, c, with_attributes=kind is ChangeKind.CHANGED)
                        for c in reported if c.kind is kind] for kind in CHANGE_LISTS},
        "different_attributes": {
            json_path(c.path): d for c in r.changes if (d := model.different_attributes(c, o))
        },
        "warnings": list(r.warnings),
        "databases": [_json_database(db) for db in r.databases],
    }
    if r.explained is not None:
        unexplained, explained, _ = model.explanation_counts(r)
        doc["summary"].update(explained=explained, unexplained=unexplained)
    if r.new is not None:
        fresh, pending = model.new_changes(r)
        doc["summary"].update(new=len(fresh), pending=pending)
    if r.new_database is not None:
        doc["new_database"] = r.new_database
    if r.databases:
        doc["database"] = doc["databases"][0]
    return doc


def render_json(report: Report) -> str:
    """aidepy's JSON report, one indented document."""
    return json.dumps(document(report), indent=2) + "\n"


def _json_database(db: DatabaseSummary) -> dict[str, Any]:
    return {
        "path": db.path,
        "sha256": db.sha256.hex(),
        "signature": "verified" if db.authenticated else "signed" if db.signed else "unsigned",
        "key_fingerprint": db.key_fingerprint,
        "created": model.format_time(db.created) if db.created is not None else None,
        "generation": db.generation,
        "entries": db.entries,
    }
