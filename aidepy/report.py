"""Render the changes of one run as AIDE 0.18's plain-text report (JSON: `aidepy.report_json`).

Pure: a `Report` value in, a `str` out. The text layout is AIDE 0.18.3's (start line, outline,
summary with totals, "Added/Removed/Changed entries" with the per-entry summary string such as
`f = ... mc..H.. . `, "Detailed information about changes" in old | new columns, the database
attributes, end line) and keeps AIDE's sentences ("AIDE found differences between database and
filesystem!!") so tools that read AIDE reports keep working. aidepy adds the baseline's
signature status as the first line, and warnings about files it could not read.

Paths in text reports: bytes 0x01-0x1f and 0x7f are written as a backslash and three octal
digits (`\\012` for a newline), as AIDE does (AIDE leaves 0x1f alone; aidepy escapes it too);
other bytes are written unchanged, also when they are not UTF-8.
"""

from __future__ import annotations

import base64
import functools
import grp
import pwd
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from aidepy import __version__
from aidepy.attributes import (
    BY_NAME,
    E2FS_FLAGS,
    HASHES,
    OPTIONAL,
    ORDER,
    SECOND,
    TIMES,
    AttrSet,
    Kind,
    format_attrs,
)
from aidepy.compare import Change, ChangeKind, Summary
from aidepy.entry import TYPE_NAMES, Entry
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


# The column of the per-entry summary string each attribute group occupies, and its letter.
SUMMARY_COLUMNS: tuple[tuple[str, AttrSet], ...] = (
    ("l", frozenset({"l"})), (">", frozenset({"s", "S"})), ("b", frozenset({"b"})),
    ("p", frozenset({"p"})), ("u", frozenset({"u"})), ("g", frozenset({"g"})),
    ("a", frozenset({"a"})), ("m", frozenset({"m"})), ("c", frozenset({"c"})),
    ("i", frozenset({"i"})), ("n", frozenset({"n"})), ("H", HASHES),
    ("A", frozenset({"acl"})), ("X", frozenset({"xattrs"})), ("S", frozenset({"selinux"})),
    ("E", frozenset({"e2fsattrs"})), ("C", frozenset({"caps"})),
)

# Order of attributes in details (AIDE's report order; hashes in AIDE's hash order, ours after).
_HASH_ORDER = (
    "md5", "sha1", "sha256", "sha512", "rmd160", "tiger", "crc32", "crc32b", "haval",
    "whirlpool", "gost", "stribog256", "stribog512",
)
DETAIL_ORDER: tuple[str, ...] = (
    "ftype", "l", "s", "S", "b", "p", "u", "g", "a", "m", "c", "i", "n",
    *_HASH_ORDER, *sorted(HASHES - set(_HASH_ORDER), key=ORDER.__getitem__),
    "acl", "xattrs", "selinux", "e2fsattrs", "caps",
)

_RULE = "---------------------------------------------------"
_NAME_WIDTH = 10  # AIDE's widest detail label ("Size (>)", "Linkcount", "WHIRLPOOL")
_COLUMN = 33  # (80 - (4 + _NAME_WIDTH)) // 2
_CHUNK = _COLUMN - 1


def escape_path(path: bytes) -> str:
    """A path for a text report: control characters as `\\ooo` octal bytes, everything else
    unchanged. Like AIDE for C0 controls and DEL; unlike AIDE, C1 controls are escaped too
    (U+0080-U+009F, and bytes 0x80-0x9f outside valid UTF-8), because some terminals act on
    them (0x9b starts an escape sequence)."""
    out = []
    for char in path.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("".join(f"\\{b:03o}" for b in char.encode("utf-8")))
        elif 0xDC80 <= code <= 0xDC9F:  # a lone byte 0x80-0x9f (surrogateescape)
            out.append(f"\\{code - 0xDC00:03o}")
        else:
            out.append(char)
    return "".join(out)


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
    """The per-entry string of the entry lists: `f = ... mc..H.. . `, `f+++++++++++++++++`."""
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


def value_lines(name: str, entry: Entry | None, base16: bool = False,
                ignore_e2fsattrs: str = "") -> list[str]:
    """An attribute's value as report lines (several for ACLs and xattrs); [] if the entry lacks it."""
    if name not in shown(entry):
        return []
    assert entry is not None
    if name == "ftype":
        return [TYPE_NAMES.get(entry.ftype, "Unknown file type")]
    value = entry.values.get("s" if name == "S" else name)
    if value is None:
        return ["(not collected)"]
    kind = BY_NAME[name].kind
    if isinstance(value, int):
        if name == "p":
            return [stat.filemode(value)]
        if name in TIMES:
            return [format_time(value // SECOND)]
        return [str(value)]
    if kind is Kind.HASH:
        return [value.hex() if base16 else base64.b64encode(value).decode("ascii")]
    if kind is Kind.LINKNAME:
        return [escape_path(value)]
    if name == "e2fsattrs" and ignore_e2fsattrs and len(value) == len(E2FS_FLAGS):
        return ["".join(":" if letter in ignore_e2fsattrs else chr(c)
                        for c, (_, letter) in zip(value, E2FS_FLAGS, strict=True))]
    lines = _meta_lines(value)
    if name == "acl":
        return [_acl_line(line) for line in lines]
    if name == "xattrs":
        return [f"num={len(lines)}", *(f"[{i}] {line}" for i, line in enumerate(lines, 1))]
    return lines or [""]


def _meta_lines(value: bytes) -> list[str]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return [base64.b64encode(value).decode("ascii")]
    return [escape_path(line.encode()) for line in text.split("\n") if line]


def _acl_line(line: str) -> str:
    """`default:user:65534:r-x` as AIDE prints it: `D: user:nobody:r-x` (`A:` for the access
    ACL), ids named as this host names them (numbers where it has no name)."""
    default = line.startswith("default:")
    tag, sep, rest = line.removeprefix("default:").partition(":")
    ident, sep2, perm = rest.partition(":")
    if sep and sep2 and ident.isdigit() and tag in ("user", "group"):
        ident = _id_name(tag, int(ident))
        line = f"{tag}:{ident}:{perm}"
    else:
        line = line.removeprefix("default:")
    return ("D: " if default else "A: ") + line


@functools.cache
def _id_name(tag: str, ident: int) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if tag == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def _chunks(text: str) -> list[str]:
    return [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]


def detail_lines(label: str, old: list[str], new: list[str], *, two_columns: bool = True) -> Iterator[str]:
    """AIDE's old | new columns: values wrapped at 32 characters, the label on the first line."""
    first = True
    for i in range(max(len(old), len(new))):
        ochunks = _chunks(old[i]) if i < len(old) else []
        nchunks = _chunks(new[i]) if i < len(new) else []
        for k in range(max(len(ochunks), len(nchunks))):
            head = f" {(label if first else ''):<{_NAME_WIDTH}}{':' if first else ' '} "
            first = False
            ov = ochunks[k] if k < len(ochunks) else ""
            nv = nchunks[k] if k < len(nchunks) else ""
            if not old:
                yield f"{head}{'':<{_COLUMN}}  {nv}" if two_columns else f"{head}{nv}"
            elif not new:
                yield f"{head}{ov}"
            else:
                yield f"{head}{ov:<{_COLUMN}}| {nv}"


def report_attributes(change: Change, options: ReportOptions) -> list[str]:
    """The attributes the details section shows for one change, in report order."""
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


def _headline(title: str) -> str:
    return f"\n\n{_RULE}\n{title}:\n{_RULE}\n"


def listed_changes(report: Report) -> list[Change]:
    """The changes the entry lists show (not the 'different attributes' notes)."""
    return [c for c in report.changes if c.kind is not ChangeKind.ATTRIBUTES]


def _list_title(s: Summary) -> str:
    parts = [n for n, v in (("added", s.added), ("removed", s.removed), ("changed", s.changed)) if v]
    if len(parts) == 3:
        return "Added, removed and changed entries"
    return " and ".join(parts).capitalize() + " entries"


def _entry_line(change: Change, options: ReportOptions) -> str:
    path = escape_path(change.path)
    if options.summarize_changes:
        return f"\n{summary_string(change, options)}: {path}"
    return f"\n{change.kind.value}: {path}"


def _details_block(change: Change, options: ReportOptions) -> str:
    names = report_attributes(change, options)
    if not names:
        return ""
    lines = [f"\n{TYPE_NAMES.get(change.ftype, 'Unknown file type')}: {escape_path(change.path)}"]
    for name in names:
        label = "Size (>)" if name == "S" else BY_NAME[name].label
        ignore = options.ignore_e2fsattrs
        old = value_lines(name, change.old, options.base16, ignore_e2fsattrs=ignore)
        new = value_lines(name, change.new, options.base16, ignore_e2fsattrs=ignore)
        if name in change.changed:  # a capability added or removed: old | new all the same
            old, new = old or [""], new or [""]
        lines.extend(detail_lines(label, old, new))
    return "\n".join(lines) + "\n"


def _database_block(db: DatabaseSummary) -> str:
    rows: list[tuple[str, str]] = []
    if db.signed:
        rows.append(("Signed", f"yes, key {db.key_fingerprint}" + (", verified" if db.authenticated else "")))
    else:
        rows.append(("Signed", "NO"))
    if db.created is not None:
        rows.append(("Created", format_time(db.created)))
    if db.generation is not None:
        rows.append(("Generation", str(db.generation)))
    if db.entries is not None:
        rows.append(("Entries", str(db.entries)))
    lines = [f"\n{db.path}"]
    lines.extend(detail_lines("SHA256", [base64.b64encode(db.sha256).decode("ascii")], [], two_columns=False))
    # never wrapped: the key's fingerprint is compared whole
    lines.extend(f" {label:<{_NAME_WIDTH}}: {value}" for label, value in rows)
    return "\n".join(lines) + "\n"


def render_text(report: Report) -> str:
    """The AIDE 0.18 plain-text report."""
    r, o, s = report, report.options, report.summary
    out: list[str] = [f"{line}\n" for line in r.notices]
    if o.level >= Level.LIST_ENTRIES:
        for change in r.changes:
            diff = different_attributes(change, o)
            if diff:
                path = escape_path(change.path)
                out.append(f"Entry {path} in databases has different attributes: {diff}\n")
    if o.level >= Level.SUMMARY:
        out.append(f"Start timestamp: {format_time(r.start_time)} (aidepy {r.version})\n")
    out.append(outline(r) + "\n")
    if o.level >= Level.SUMMARY:
        if r.new_database is not None:
            out.append(f"New AIDE database written to {r.new_database}\n")
        options = _config_options(r)
        if options:
            out.append(" | ".join(f"{k}: {v}" for k, v in options) + "\n")
    if o.level >= Level.LIST_ENTRIES:
        out.extend(f"{k}: {v}\n" for k, v in _report_options(o))
    if o.level >= Level.SUMMARY:
        if r.mode is not Mode.INIT and s.differences:
            out.append(
                f"\nSummary:\n  Total number of entries:\t{s.total}\n  Added entries:\t\t{s.added}\n"
                f"  Removed entries:\t\t{s.removed}\n  Changed entries:\t\t{s.changed}"
            )
        else:
            out.append(f"\nNumber of entries:\t{s.total}")
    listed = listed_changes(r)
    if r.new is not None and o.level >= Level.LIST_ENTRIES:
        out.extend(new_section(r))
    if r.explained is not None and o.level >= Level.LIST_ENTRIES:
        out.extend(explanation_sections(r))
        listed = [c for c in listed if not r.explained.of(c.path).explained]
    if r.mode is not Mode.INIT or o.detailed_init:
        if o.level >= Level.LIST_ENTRIES and listed:
            if o.grouped:
                for kind in (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED):
                    title = f"{kind.value.capitalize()} entries"
                    group = [c for c in listed if c.kind is kind]
                    if group:
                        out.append(_headline(title))
                        out.extend(_entry_line(c, o) for c in group)
            else:
                out.append(_headline(_list_title(s)))
                out.extend(_entry_line(c, o) for c in listed)
        added_or_removed = any(c.kind is not ChangeKind.CHANGED for c in listed)  # also init's
        if ((s.changed and o.level >= Level.CHANGED_ATTRIBUTES)
                or (added_or_removed and o.level >= Level.ADDED_REMOVED_ENTRIES)):
            out.append(_headline("Detailed information about changes"))
            for change in listed:
                if change.kind is ChangeKind.CHANGED or o.level >= Level.ADDED_REMOVED_ENTRIES:
                    out.append(_details_block(change, o))
    if r.warnings and o.level >= Level.SUMMARY:
        out.append(_headline("Warnings"))
        out.extend(f"\n{w}" for w in r.warnings)
        out.append("\n")
    if o.level >= Level.DATABASE_ATTRIBUTES and r.databases:
        out.append(_headline("The attributes of the (uncompressed) database(s)"))
        out.extend(_database_block(db) for db in r.databases)
    if o.level >= Level.SUMMARY:
        run = int(r.end_time - r.start_time)
        out.append(f"\n\nEnd timestamp: {format_time(r.end_time)} (run time: {run // 60}m {run % 60}s)\n")
    return "".join(out)


def new_section(r: Report) -> Iterator[str]:
    """The changes not in the previous report (the daily report's `new`), before everything else;
    the full lists follow, so nothing pending is ever left out."""
    assert r.new is not None
    listed = listed_changes(r)
    fresh = [c for c in listed if c.path in r.new]
    yield f"\n\nNew since the last report: {len(fresh)} new, {len(listed)} pending"
    if fresh:
        yield _headline("New since the last report")
        yield from (f"\n{summary_string(c, r.options)}: {escape_path(c.path)}" for c in fresh)
        yield "\n"


def explanation_counts(r: Report) -> tuple[int, int, int]:
    """(unexplained, explained, packages) among the listed changes of a report with explanations."""
    assert r.explained is not None
    found = [r.explained.of(c.path) for c in listed_changes(r)]
    packages = {e.package for e in found if e.kind is ExplanationKind.PACKAGE}
    explained = sum(e.explained for e in found)
    return len(found) - explained, explained, len(packages)


def explanation_sections(r: Report) -> Iterator[str]:
    """The unexplained changes with the reason, then the explained ones grouped by package
    version (`openssl 3.0.15-1 → 3.0.17-1: 14 entries (evidence archive)`) or generator."""
    assert r.explained is not None
    unexplained, explained, packages = explanation_counts(r)
    yield (f"\n\nExplanations: {unexplained} unexplained, {explained} explained ({packages} "
           f"package{'' if packages == 1 else 's'})")
    listed = listed_changes(r)
    rest = [(c, r.explained.of(c.path)) for c in listed]
    if unexplained:
        yield _headline("Unexplained changes")
        for c, e in rest:
            if e.explained:
                continue
            why = e.reason or "no package or generator accounts for it"
            owner = f"{e.package} {e.version}: " if e.package else ""
            yield f"\n{summary_string(c, r.options)}: {escape_path(c.path)}\n    {owner}{why}"
    groups: dict[tuple[str, str], list[Change]] = {}
    for c, e in rest:
        if e.kind is ExplanationKind.PACKAGE:
            version = f"{e.previous} → {e.version}" if e.previous and e.previous != e.version else e.version
            how = "; ".join(filter(None, (f"evidence {e.evidence.value}" if e.evidence else "", e.reason)))
            groups.setdefault((f"{e.package} {version}", how), []).append(c)
        elif e.kind is ExplanationKind.GENERATED:
            groups.setdefault((f"generated by {e.by}", "recomputed"), []).append(c)
    if groups:
        yield _headline("Explained by package updates")
        for (title, how), changes in groups.items():
            yield f"\n{title}: {len(changes)} {'entry' if len(changes) == 1 else 'entries'} ({how})"
            yield from (f"\n  {summary_string(c, r.options)}: {escape_path(c.path)}" for c in changes)
    yield "\n"


def _config_options(r: Report) -> list[tuple[str, str]]:
    options = []
    if r.limit is not None:
        options.append(("Limit", r.limit))
    if r.mode in (Mode.INIT, Mode.CHECK) and r.root_prefix:
        options.append(("Root prefix", escape_path(r.root_prefix)))
    if r.options.level != Level.CHANGED_ATTRIBUTES:
        options.append(("Report level", r.options.level.name.lower()))
    return options


def _report_options(o: ReportOptions) -> Iterable[tuple[str, str]]:
    for label, attrs in (("Ignored added attributes", o.ignore_added),
                         ("Ignored removed attributes", o.ignore_removed),
                         ("Ignored changed attributes", o.ignore_changed)):
        if attrs:
            yield label, format_attrs(attrs)
    if o.force and o.level >= Level.CHANGED_ATTRIBUTES:
        yield "Forced attributes", format_attrs(o.force)
    if o.ignore_e2fsattrs:
        yield "Ignored e2fs attributes", "".join(c for _, c in E2FS_FLAGS if c in o.ignore_e2fsattrs)
