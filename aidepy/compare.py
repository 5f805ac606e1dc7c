"""Compare two `Entry` streams (old baseline, new scan or database) into added/removed/changed.

Both streams arrive in `aidepy.entry.sort_key` order and are merged in one pass; unchanged
entries are never held in memory. The rules are AIDE 0.18's:

* an attribute is compared only if both the old and the new entry carry it (the old entry's
  attributes come from the rule that recorded the baseline, the new one's from today's rule);
* `growing` on the old entry ignores growth of size, blocks and times; when a growing file's
  hashes changed, `check` rehashes the new file's first *old size* bytes (through the `rehash`
  callback) and keeps the hashes unchanged if that prefix still matches; `S` flags a shrinking size;
* `I` (check inode) on an old entry: a removed entry and an added entry in the same directory
  with the same inode, the same attribute set and no changes besides ctime are a rename, and
  neither is reported;
* `ANF` on a new entry hides its addition, `ARF` on an old entry hides its removal;
* `report_ignore_changed_attrs` decides which changes make an entry count as changed, and
  `report_ignore_e2fsattrs` which e2fs flags (`lsattr` letters) may change unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from aidepy import content
from aidepy.attributes import BY_NAME, SECOND, TIMES, AttrSet, Kind, ordered
from aidepy.entry import Entry, sort_key
from aidepy.errors import ExitCode

Rehash = Callable[[Entry, int, AttrSet], Mapping[str, bytes] | None]
"""`rehash(new_entry, old_size, hash_names)`: digests of the new file's first `old_size` bytes,
or None when the file cannot be read. Only `check` (a live file system) can offer it."""

FLAGS: AttrSet = frozenset(a.name for a in BY_NAME.values() if a.kind is Kind.FLAG)
GROWING_FIELDS: AttrSet = frozenset({"s", "b", "a", "m", "c"})
# Attribute-set differences that do not prevent a rename match (AIDE's move_ignored_attr).
_MOVE_IGNORED: AttrSet = frozenset({"ANF", "ARF", "I", "growing", "compressed"})


class ChangeKind(Enum):
    """What happened to a path between the old and the new stream."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    ATTRIBUTES = "attributes"  # same values, but the entries record different attribute sets


@dataclass(frozen=True)
class Change:
    """One path that differs. `changed`: the changed attributes that count (catalogue order);
    `ignored`: changed attributes that `report_ignore_changed_attrs` tells the report to ignore."""

    path: bytes
    ftype: str
    old: Entry | None
    new: Entry | None
    changed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def kind(self) -> ChangeKind:
        if self.old is None:
            return ChangeKind.ADDED
        if self.new is None:
            return ChangeKind.REMOVED
        return ChangeKind.CHANGED if self.changed else ChangeKind.ATTRIBUTES


@dataclass
class Summary:
    """Totals of a comparison: `total` counts the new side's entries, like AIDE."""

    total: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0

    @property
    def differences(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def exit_code(self) -> int:
        """AIDE's check exit code: bit 1 added, bit 2 removed, bit 4 changed."""
        return (
            (ExitCode.ADDED if self.added else 0)
            | (ExitCode.REMOVED if self.removed else 0)
            | (ExitCode.CHANGED if self.changed else 0)
        )


def changed_attributes(old: Entry, new: Entry, rehash: Rehash | None = None) -> AttrSet:
    """The attributes whose values differ, comparing only attributes both entries carry."""
    both = (old.attrs & new.attrs) - FLAGS
    growing = "growing" in old.attrs
    ov, nv = old.values, new.values
    changed: set[str] = set()
    if "S" in old.attrs and "S" in new.attrs:
        osize, nsize = ov.get("s"), nv.get("s")
        if isinstance(osize, int) and isinstance(nsize, int) and osize > nsize:
            changed.add("S")
    hashes: set[str] = set()
    for name in both:
        kind = BY_NAME[name].kind
        if kind is Kind.FTYPE:
            if old.ftype != new.ftype:
                changed.add(name)
            continue
        a, b = ov.get(name), nv.get(name)
        if name in TIMES and isinstance(a, int) and isinstance(b, int):
            a, b = a // SECOND, b // SECOND  # to the second, also against a baseline that has ns
        if growing and name in GROWING_FIELDS and isinstance(a, int) and isinstance(b, int):
            if a > b:
                changed.add(name)
        elif a != b and not (kind is Kind.CONTENT and content.same(a, b)):
            (hashes if kind is Kind.HASH else changed).add(name)
    if hashes and growing and not _grown_prefix_differs(old, new, frozenset(hashes), rehash):
        hashes.clear()
    return frozenset(changed | hashes)


def _grown_prefix_differs(old: Entry, new: Entry, hashes: AttrSet, rehash: Rehash | None) -> bool:
    """For a growing file whose hashes changed: does the new file's old-size prefix differ?"""
    osize, nsize = old.values.get("s"), new.values.get("s")
    if rehash is None or not isinstance(osize, int) or not isinstance(nsize, int) or osize >= nsize:
        return True
    if osize == 0:
        return False
    prefix = rehash(new, osize, hashes)
    return prefix is None or any(prefix.get(h) != old.values.get(h) for h in hashes)


def _e2fs_flags_changed(old: Entry, new: Entry) -> frozenset[str]:
    """The `lsattr` letters set on one side only (values are strings like `----i---e---`)."""
    a, b = old.values.get("e2fsattrs"), new.values.get("e2fsattrs")
    if not isinstance(a, bytes) or not isinstance(b, bytes) or len(a) != len(b):
        return frozenset("?")  # not comparable flag by flag: never ignored
    return frozenset(chr(x if x != ord("-") else y) for x, y in zip(a, b, strict=True) if x != y)


def parent(path: bytes) -> bytes:
    """The directory that holds `path` (`/` for `/etc`)."""
    head = path.rsplit(b"/", 1)[0]
    return head or b"/"


def within(path: bytes, directory: bytes) -> bool:
    """Whether `path` lies below `directory`."""
    return path.startswith(directory if directory.endswith(b"/") else directory + b"/")


class Comparison(Iterator[Change]):
    """Iterate to get the reportable changes in canonical order; `summary` is final once exhausted.

    Added and removed entries, and changed ones whose inode changed, are held back until their
    directory's subtree has been merged (a later entry may pair them as a rename under `I`);
    unchanged entries are never held.
    """

    def __init__(
        self, old: Iterable[Entry], new: Iterable[Entry], *,
        ignore_changed: AttrSet = frozenset(), ignore_e2fsattrs: str = "", rehash: Rehash | None = None,
    ) -> None:
        self.summary = Summary()
        self._ignore_changed = ignore_changed
        self._ignore_e2fsattrs = frozenset(ignore_e2fsattrs)
        self._rehash = rehash
        self._changes = self._run(iter(old), iter(new))

    def __next__(self) -> Change:
        return next(self._changes)

    def _run(self, old: Iterator[Entry], new: Iterator[Entry]) -> Iterator[Change]:
        pending: list[Change | None] = []  # changes not yet emitted, in order
        held: dict[bytes, list[int]] = {}  # directory -> indices of its added/removed in `pending`
        for o, n in _merge(old, new):
            path = n.path if n is not None else o.path if o is not None else b""
            for directory in [d for d in held if not within(path, d)]:
                self._resolve(pending, held.pop(directory))
            if n is not None:
                self.summary.total += 1
            change = self._classify(o, n)
            if change is None:
                continue
            if change.old is None or change.new is None or "i" in change.changed:
                # an added or re-inoded entry may be a rename target, a removed one its source
                held.setdefault(parent(path), []).append(len(pending))
            pending.append(change)
            if not held:
                yield from self._emit(pending)
                pending.clear()
        for indices in held.values():
            self._resolve(pending, indices)
        yield from self._emit(pending)

    def _emit(self, changes: list[Change | None]) -> Iterator[Change]:
        for change in changes:
            if change is None:
                continue
            kind = change.kind
            if kind is ChangeKind.ADDED:
                if change.new is not None and "ANF" in change.new.attrs:
                    continue
                self.summary.added += 1
            elif kind is ChangeKind.REMOVED:
                if change.old is not None and "ARF" in change.old.attrs:
                    continue
                self.summary.removed += 1
            elif kind is ChangeKind.CHANGED:
                self.summary.changed += 1
            yield change

    def _classify(self, old: Entry | None, new: Entry | None) -> Change | None:
        if old is None:
            assert new is not None
            return Change(new.path, new.ftype, None, new)
        if new is None:
            return Change(old.path, old.ftype, old, None)
        return _counted(old, new, changed_attributes(old, new, self._rehash),
                        self._ignore_changed, self._ignore_e2fsattrs)

    def _resolve(self, pending: list[Change | None], indices: list[int]) -> None:
        """Pair renames within one directory (rule flag I), as AIDE does: a removed entry whose
        inode now sits under another name, with the same attribute set and nothing changed but
        ctime, was moved there. Neither is reported; if the target name existed before, its old
        entry is reported as removed (it was overwritten)."""
        sources: dict[int, int] = {}  # inode -> index of a removed entry with I
        for i in indices:
            c = pending[i]
            if c is not None and c.new is None and c.old is not None and "I" in c.old.attrs:
                inode = c.old.values.get("i")
                if isinstance(inode, int):
                    sources.setdefault(inode, i)
        for i in indices:
            target = pending[i]
            inode = target.new.values.get("i") if target is not None and target.new is not None else None
            if target is None or target.new is None or not isinstance(inode, int) or inode not in sources:
                continue
            source_change = pending[sources[inode]]
            source = source_change.old if source_change is not None else None
            if source is None or (source.attrs ^ target.new.attrs) - _MOVE_IGNORED:
                continue
            if changed_attributes(source, target.new, self._rehash) - {"c"}:
                continue
            pending[sources.pop(inode)] = None
            old = target.old
            pending[i] = None if old is None else Change(old.path, old.ftype, old, None)


def _counted(old: Entry, new: Entry, changed: AttrSet, ignore_changed: AttrSet,
             ignore_e2fsattrs: frozenset[str]) -> Change | None:
    """The change of a path whose attributes `changed`, split into those that count and those
    the report options ignore; None when nothing counts and both record the same attributes."""
    counted = changed - ignore_changed
    if "e2fsattrs" in counted and _e2fs_flags_changed(old, new) <= ignore_e2fsattrs:
        counted -= {"e2fsattrs"}
    if not counted and old.attrs == new.attrs:
        return None
    return Change(new.path, new.ftype, old, new, tuple(ordered(counted)), tuple(ordered(changed - counted)))


def refilter(changes: Iterable[Change], summary: Summary, *, ignore_changed: AttrSet,
             ignore_e2fsattrs: str) -> tuple[list[Change], Summary]:
    """The changes and totals one report shows when it ignores more than the comparison did (a
    report_url with its own report_ignore_changed_attrs or report_ignore_e2fsattrs)."""
    out: list[Change] = []
    counted = Summary(summary.total, summary.added, summary.removed)
    for change in changes:
        if change.old is not None and change.new is not None:
            kept = _counted(change.old, change.new, frozenset(change.changed + change.ignored),
                            ignore_changed, frozenset(ignore_e2fsattrs))
            if kept is None:
                continue
            change = kept
        if change.kind is ChangeKind.CHANGED:
            counted.changed += 1
        out.append(change)
    return out, counted


def compare(
    old: Iterable[Entry], new: Iterable[Entry], *,
    ignore_changed: AttrSet = frozenset(), ignore_e2fsattrs: str = "", rehash: Rehash | None = None,
) -> Comparison:
    """Merge two canonical-order entry streams into the changes a report shows."""
    return Comparison(old, new, ignore_changed=ignore_changed, ignore_e2fsattrs=ignore_e2fsattrs,
                      rehash=rehash)


def _merge(old: Iterator[Entry], new: Iterator[Entry]) -> Iterator[tuple[Entry | None, Entry | None]]:
    """Pairs (old, new) by path; one side is None where the path exists only on the other."""
    o = next(old, None)
    n = next(new, None)
    ok = sort_key(o.path) if o is not None else None
    nk = sort_key(n.path) if n is not None else None
    while o is not None or n is not None:
        if n is None or (o is not None and ok < nk):  # type: ignore[operator]
            yield o, None
            o = next(old, None)
            ok = sort_key(o.path) if o is not None else None
        elif o is None or nk < ok:  # type: ignore[operator]
            yield None, n
            n = next(new, None)
            nk = sort_key(n.path) if n is not None else None
        else:
            yield o, n
            o, n = next(old, None), next(new, None)
            ok = sort_key(o.path) if o is not None else None
            nk = sort_key(n.path) if n is not None else None
