"""AIDE 0.18's plain-text layout of a `Report` (`aidepy.report.model`): a `Report` in, a `str` out.

The layout is AIDE 0.18.3's (start line, outline, summary with totals, "Added/Removed/Changed
entries" with the per-entry summary string such as `f = ... mc..H.. . `, "Detailed information
about changes" in old | new columns, the database attributes, end line) and keeps AIDE's
sentences ("AIDE found differences between database and filesystem!!") so tools that read AIDE
reports keep working. aidepy adds the baseline's signature status as the first line, and
warnings about files it could not read. Paths are escaped as `aidepy.report.escape` says.
"""

from __future__ import annotations

import base64
import functools
import grp
import pwd
import stat
from collections.abc import Iterable, Iterator

from aidepy import content
from aidepy.attributes import BY_NAME, E2FS_FLAGS, SECOND, TIMES, Kind, format_attrs
from aidepy.compare import Change, ChangeKind, Summary
from aidepy.entry import TYPE_NAMES, Entry
from aidepy.explain.model import Kind as ExplanationKind
from aidepy.report.escape import escape_path
from aidepy.report.model import (
    DatabaseSummary,
    Level,
    Mode,
    Report,
    ReportOptions,
    different_attributes,
    explanation_counts,
    format_time,
    listed_changes,
    new_changes,
    outline,
    report_attributes,
    shown,
    summary_string,
)

_RULE = "---------------------------------------------------"
_NAME_WIDTH = 10  # AIDE's widest detail label ("Size (>)", "Linkcount", "WHIRLPOOL")
_COLUMN = 33  # (80 - (4 + _NAME_WIDTH)) // 2
_CHUNK = _COLUMN - 1


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
    if kind is Kind.CONTENT:
        return [content.describe(value)]
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


def _headline(title: str) -> str:
    return f"\n\n{_RULE}\n{title}:\n{_RULE}\n"


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
        label = BY_NAME[name].label
        ignore = options.ignore_e2fsattrs
        old = value_lines(name, change.old, options.base16, ignore_e2fsattrs=ignore)
        new = value_lines(name, change.new, options.base16, ignore_e2fsattrs=ignore)
        if name in change.changed:  # a capability added or removed: old | new all the same
            old, new = old or [""], new or [""]
        lines.extend(detail_lines(label, old, new))
        if name == "content":  # the diff under its old | new line
            lines.extend(f"   {escape_path(line.encode())}" for line in content.diff(change.old, change.new))
    return "\n".join(lines) + "\n"


def change_detail(change: Change, options: ReportOptions) -> str:
    """The detail block of one change (promote shows it on request)."""
    return _details_block(change, options)


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
    fresh, pending = new_changes(r)
    yield f"\n\nNew since the last report: {len(fresh)} new, {pending} pending"
    if fresh:
        yield _headline("New since the last report")
        yield from (f"\n{summary_string(c, r.options)}: {escape_path(c.path)}" for c in fresh)
        yield "\n"


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
