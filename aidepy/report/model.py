"""What one report says, as data: the `Report` value every renderer takes, and the decisions all
formats share (which changes are listed, which attributes each shows, the per-entry summary
string, the verdict sentence, the explanation counts).

Pure: nothing here writes text layouts; `aidepy.report.plain`, `json_report` and `ndjson` do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from aidepy import __version__
from aidepy.attributes import DETAIL_ORDER, OPTIONAL, ORDER, SUMMARY_COLUMNS, AttrSet
from aidepy.compare import Change, ChangeKind, Summary
from aidepy.entry import Entry
from aidepy.explain.model import Explained
from aidepy.explain.model import Kind as ExplanationKind


class Mode(Enum):
    """The command that produced the report (AIDE's action)."""

    INIT = "init"
    CHECK = "check"
    UPDATE = "update"
    COMPARE = "compare"


class Level(IntEnum):
    """AIDE's `report_level` values, least to most verbose."""

    MINIMAL = 1
    SUMMARY = 2
    DATABASE_ATTRIBUTES = 3
    LIST_ENTRIES = 4
    CHANGED_ATTRIBUTES = 5
    ADDED_REMOVED_ATTRIBUTES = 6
    ADDED_REMOVED_ENTRIES = 7

    @classmethod
    def parse(cls, name: str) -> Level:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown report_level '{name}'") from None


@dataclass(frozen=True)
class ReportOptions:
    """The `report_*` settings that shape a report."""

    level: Level = Level.CHANGED_ATTRIBUTES
    ignore_added: AttrSet = frozenset()
    ignore_removed: AttrSet = frozenset()
    ignore_changed: AttrSet = frozenset()
    force: AttrSet = frozenset()
    base16: bool = False
    summarize_changes: bool = True
    grouped: bool = True
    detailed_init: bool = False
    ignore_e2fsattrs: str = ""  # lsattr letters shown as ':' and not counted as changes


@dataclass(frozen=True)
class DatabaseSummary:
    """What the report says about a database it read or wrote."""

    path: str
    sha256: bytes
    signed: bool
    key_fingerprint: str | None = None
    created: int | None = None
    generation: int | None = None
    entries: int | None = None
    authenticated: bool = False  # the signature was checked against the configured public key


@dataclass(frozen=True)
class Report:
    """Everything one report shows."""

    mode: Mode
    changes: Sequence[Change]
    summary: Summary
    start_time: float
    end_time: float
    options: ReportOptions = ReportOptions()
    databases: Sequence[DatabaseSummary] = ()
    new_database: str | None = None
    limit: str | None = None
    root_prefix: bytes = b""
    notices: Sequence[str] = ()  # shown first: the baseline's signature status
    warnings: Sequence[str] = ()  # per-file trouble: unreadable, vanished, changed while read
    version: str = __version__
    explained: Explained | None = None  # why each change happened (None: not asked, or no dpkg)
    new: frozenset[bytes] | None = None  # daily report: paths not in the previous report as they are


def format_time(seconds: float) -> str:
    """AIDE's time format, in local time: `2026-11-25 04:50:03 +0000`."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seconds))


def shown(entry: Entry | None) -> AttrSet:
    """The attributes a report shows for an entry: those it records, less the optional ones the
    file does not have (no capabilities, no SELinux label), which AIDE leaves out of the entry."""
    if entry is None:
        return frozenset()
    attrs = entry.attrs
    if attrs & OPTIONAL:
        attrs = attrs - {n for n in attrs & OPTIONAL if entry.values.get(n) == b""}
    return attrs


def summary_string(change: Change, options: ReportOptions = ReportOptions()) -> str:
    """The per-entry string of the entry lists: `f = ... mc..H.. . `, `f+++++++++++++++++`;
    its columns are the catalogue's summary letters (`attributes.SUMMARY_COLUMNS`)."""
    if change.kind is ChangeKind.ADDED:
        return change.ftype + "+" * len(SUMMARY_COLUMNS)
    if change.kind is ChangeKind.REMOVED:
        return change.ftype + "-" * len(SUMMARY_COLUMNS)
    assert change.old is not None and change.new is not None
    old_attrs, new_attrs = shown(change.old), shown(change.new)
    removed, added, both = old_attrs - new_attrs, new_attrs - old_attrs, old_attrs & new_attrs
    # a capability added to a file is a change aidepy counts, shown as AIDE shows it: '+'
    changed = (frozenset(change.changed) | frozenset(change.ignored)) & both
    o = options
    out = [change.ftype]
    for letter, group in SUMMARY_COLUMNS:
        unchanged = "."
        if letter == ">":
            unchanged = "="
            osize, nsize = change.old.values.get("s"), change.new.values.get("s")
            if (group & changed - o.ignore_removed and isinstance(osize, int)
                    and isinstance(nsize, int) and osize > nsize):
                letter = "<"
        if group & changed & (o.force | (group - o.ignore_changed)):
            out.append(letter)
        elif group & removed & (o.force | (group - o.ignore_removed)):
            out.append("-")
        elif group & added & (o.force | (group - o.ignore_added)):
            out.append("+")
        elif group & ((removed & o.ignore_removed) | (added & o.ignore_added) | (both & o.ignore_changed)):
            out.append(":")
        elif group & both:
            out.append(unchanged)
        else:
            out.append(" ")
    return "".join(out)


def report_attributes(change: Change, options: ReportOptions) -> list[str]:
    """The attributes the details show for one change, in the catalogue's detail order."""
    o = options
    old, new = shown(change.old), shown(change.new)
    if change.kind is ChangeKind.ADDED:
        names = set(new - o.ignore_added)
    elif change.kind is ChangeKind.REMOVED:
        names = set(old - o.ignore_removed)
    else:
        names = set(change.changed)
        if o.level >= Level.ADDED_REMOVED_ATTRIBUTES:
            names |= (new - old) - o.ignore_added
            names |= (old - new) - o.ignore_removed
        if names:
            names |= o.force
    return [n for n in DETAIL_ORDER if n in names]


def different_attributes(change: Change, options: ReportOptions) -> str | None:
    """AIDE's `-x+y` string when the two entries record different attribute sets, else None."""
    if change.old is None or change.new is None:
        return None
    old_attrs, new_attrs = shown(change.old), shown(change.new)
    old = old_attrs - options.ignore_removed
    new = new_attrs - options.ignore_added
    if not ((old ^ new) & (old_attrs ^ new_attrs)):
        return None
    parts = []
    for name in sorted(old ^ new, key=ORDER.__getitem__):
        parts.append(("+" if name in new else "-") + name)
    text = "".join(parts)
    return text if old else text.lstrip("+")


def outline(report: Report) -> str:
    """The verdict sentence, AIDE's wording."""
    if report.mode is Mode.INIT:
        return "AIDE successfully initialized database."
    where = "the two databases" if report.mode is Mode.COMPARE else "database and filesystem"
    if report.summary.differences:
        return f"AIDE found differences between {where}!!"
    return f"AIDE found NO differences between {where}. Looks okay!!"


def listed_changes(report: Report) -> list[Change]:
    """The changes the entry lists show (not the 'different attributes' notes)."""
    return [c for c in report.changes if c.kind is not ChangeKind.ATTRIBUTES]


def new_changes(r: Report) -> tuple[list[Change], int]:
    """The listed changes of a daily report that were not in the previous report (`Report.new`),
    and how many changes are pending in all."""
    assert r.new is not None
    listed = listed_changes(r)
    return [c for c in listed if c.path in r.new], len(listed)


def explanation_counts(r: Report) -> tuple[int, int, int]:
    """(unexplained, explained, packages) among the listed changes of a report with explanations."""
    assert r.explained is not None
    found = [r.explained.of(c.path) for c in listed_changes(r)]
    packages = {e.package for e in found if e.kind is ExplanationKind.PACKAGE}
    explained = sum(e.explained for e in found)
    return len(found) - explained, explained, len(packages)
