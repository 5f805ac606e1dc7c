"""The scanner: walk the tree the rules imply and yield an `Entry` for every selected path.

Entries come in canonical order (`aidepy.entry.sort_key`: a directory, then its contents,
siblings by name bytes). The unit of work is one directory: list it (one `open` without
following links, an `fstat` to check it is the directory lstat saw, `getdents`, one `lstat`
per name), decide every name with the rules (and the `--limit` regex), collect the attributes
of the selected ones (`aidepy.collect`: open, fstat, hash, flags, xattrs) and name the
subdirectories worth entering: every directory the rules cannot select anything below is
pruned. Symlinks are never followed.

A task goes on into the subdirectories it meets, in place, until it holds `PART_ENTRIES`
entries or `PART_BYTES` to hash; the subdirectories left become tasks of their own, and a
directory larger than that is cut into parts, each a task. With more than one worker, tasks
are done by a pool of forked worker processes (`aidepy.forkpool`; threads would contend for
the GIL: on /usr they gained nothing over one thread). The caller only puts the answers in
order: it sends tasks in canonical order as they become known, keeps a bounded number of them
sent or answered ahead of the one it is emitting (sending the one it needs next first), so
the output is the same whatever the parallelism or the cut, and memory stays flat whatever
the size of the tree. Per-path trouble (vanished
or unreadable files, files changing under the scan, odd names) is reported through
`on_warning` as a `ScanWarning`, in walk order; it never ends the scan.
"""

from __future__ import annotations

import errno
import heapq
import os
import pickle
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Protocol, TypeVar, cast

from aidepy.attributes import AttrSet
from aidepy.collect import BUFFER_SIZE, FTYPE_BY_FMT, Job, Plan, collect, make_plan, open_quietly
from aidepy.entry import Entry, Value, sort_key
from aidepy.forkpool import ForkPool
from aidepy.pcre import Match, Regex
from aidepy.selection import Rule


@dataclass(frozen=True, slots=True)
class ScanWarning:
    """Something about one path the admin should know; the scan went on."""

    path: bytes
    message: str


class Selection(Protocol):
    """What the scanner needs from `aidepy.selection.RuleSet`."""

    def match(self, path: bytes, ftype: str) -> Rule | None: ...
    def should_descend(self, path: bytes) -> bool: ...


AHEAD_PER_WORKER = 32
"""Tasks sent or answered ahead of the one being emitted, per worker: enough to keep every
worker busy past a part full of large files, few enough to keep memory flat."""
MAX_DEPTH_IN_PLACE = 32
"""Directories entered in place one inside the other, at most (the walk recurses)."""
QUEUED_PER_WORKER = 2
"""Tasks in flight per worker: one to work on, one to start at once after it. The others
wait in the caller, for whichever worker is free first."""
PART_ENTRIES = 1024
PART_BYTES = 16 << 20
"""A directory with more entries, or more bytes to hash, is collected in parts of at most this
size, each a task of its own, so that large directories spread over the workers."""

_ODD_NAME = re.compile(rb"[\x00-\x1f\x7f]")
_ODD_OR_NOT_ASCII = re.compile(rb"[\x00-\x1f\x7f-\xff]")
_first = itemgetter(0)
_PICKLE = pickle.HIGHEST_PROTOCOL

_Stat = tuple[float, ...]
_Item = tuple[bytes, str, AttrSet | None, os.stat_result | _Stat, bool] | ScanWarning
"""One name of a directory, decided: path, type, the selecting rule's attributes (None: not
selected), lstat result, whether to enter it; or a warning about it."""
_Identity = tuple[int, int, int]
"""What a directory task needs of its lstat result: inode, device, owner."""
_DirTask = tuple[str, bytes, _Identity]
_PartTask = tuple[str, bytes, list[_Item]]
_Task = _DirTask | _PartTask
"""("dir", path, identity): list and collect a directory; ("part", path of its first item,
items): collect part of a directory already listed."""
_Record = tuple[bytes, str, AttrSet, Mapping[str, Value]] | ScanWarning | int
"""In an answer: an entry's fields, a warning, or the index of a follow-up task (a
subdirectory, or the next part of this directory) whose records come in its place."""
_Answer = tuple[list[_Record], list[_Task]]
_Sealed = tuple[str, bytes, bytes]
"""A task on its way through the caller: kind, path, the task pickled."""
_T = TypeVar("_T")


def default_workers() -> int:
    """Worker processes when none are asked for: one per CPU."""
    return max(1, min(os.cpu_count() or 1, 16))


def scan(ruleset: Selection, *, root_prefix: bytes = b"", limit: Regex | None = None,
         workers: int | None = None, on_warning: Callable[[ScanWarning], None]) -> Iterator[Entry]:
    """Entries for every path `ruleset` selects below `root_prefix` (recorded without it), in
    canonical order. `limit`: only paths it matches in full, as AIDE's `--limit` (anchored at
    the start; directories that match partly are entered). `workers`: collection processes
    (default `default_workers()`; 1 = all in the caller's process)."""
    count = default_workers() if workers is None else max(1, workers)
    walker = _Walker(ruleset, root_prefix.rstrip(b"/"), limit)
    root = walker.root()
    if count == 1 or not root[1]:  # one worker, or nothing below the root to share out
        yield from _emit(root, walker.run, on_warning)
        return
    pool = ForkPool(count, walker.answer)
    finished = False
    try:
        ahead = _Ahead(pool, count * AHEAD_PER_WORKER)
        sealed = _seal(root[1])
        ahead.offer(sealed)
        yield from _emit((root[0], sealed), ahead.take, on_warning)
        finished = True
    finally:
        pool.close(kill=not finished)


def _emit(root: tuple[list[_Record], list[_T]], fetch: Callable[[_T], tuple[list[_Record], list[_T]]],
          on_warning: Callable[[ScanWarning], None]) -> Iterator[Entry]:
    """Entries and warnings of `root` and of every task it leads to, depth first."""
    stack = [(iter(root[0]), root[1])]
    while stack:
        records, tasks = stack[-1]
        for record in records:
            if type(record) is tuple:
                yield Entry(*record)
            elif type(record) is int:
                answer = fetch(tasks[record])
                stack.append((iter(answer[0]), answer[1]))
                break
            else:
                on_warning(record)  # type: ignore[arg-type]
        else:
            stack.pop()


class _Ahead:
    """Tasks for the pool in canonical order, a bounded number ahead of the emitter.

    Every task whose records the emitter has not reached yet is either here (known, waiting),
    sent or answered. The one it needs next comes first in canonical order among them, so when
    it is still waiting it is the head of the heap and is sent at once, whatever the bound.
    Tasks stay pickled here, as the workers made them (`_seal`).
    """

    def __init__(self, pool: ForkPool, ahead: int) -> None:
        self._pool = pool
        self._ahead = ahead
        self._waiting: list[tuple[bytes, int, _Sealed]] = []
        self._offered = 0
        self._sent: dict[int, tuple[str, bytes]] = {}
        self._answered: dict[tuple[str, bytes], tuple[list[_Sealed], bytes]] = {}
        self._pending = 0  # sent or answered, not yet taken

    def offer(self, tasks: list[_Sealed]) -> None:
        for task in tasks:
            heapq.heappush(self._waiting, (sort_key(task[1]), self._offered, task))
            self._offered += 1

    def take(self, wanted: _Sealed) -> tuple[list[_Record], list[_Sealed]]:
        key = (wanted[0], wanted[1])
        self._collect(block=False)
        while key not in self._answered:
            if self._waiting and self._waiting[0][2] is wanted:
                self._send()
            self._collect(block=True)
        tasks, records = self._answered.pop(key)
        self._pending -= 1
        self._top_up()
        return pickle.loads(records), tasks

    def _send(self) -> None:
        kind, path, task = heapq.heappop(self._waiting)[2]
        self._sent[self._pool.send(task)] = (kind, path)
        self._pending += 1

    def _top_up(self) -> None:
        while (self._waiting and self._pending < self._ahead
               and self._pool.least_busy() < QUEUED_PER_WORKER):
            self._send()

    def _collect(self, block: bool) -> None:
        for number, tasks, records in self._pool.receive(block):
            known: list[_Sealed] = pickle.loads(tasks)
            self._answered[self._sent.pop(number)] = (known, records)
            self.offer(known)
        self._top_up()


_HIDDEN_STAT_FIELDS = attrgetter(*os.lstat("/").__reduce__()[1][1])
"""The fields of a stat result past its sequence part (st_atime_ns, st_blocks, ...), in order."""


def _compact(st: os.stat_result) -> _Stat:
    """Every field of `st`, as a tuple `os.stat_result` takes back: it pickles in a quarter of
    the time (a stat result pickles as its sequence plus a dict of the other fields)."""
    return (*st, *_HIDDEN_STAT_FIELDS(st))


class _Walker:
    """The work of one task, the same in the caller and in a worker process."""

    def __init__(self, ruleset: Selection, prefix: bytes, limit: Regex | None) -> None:
        self._ruleset = ruleset
        self._prefix = prefix
        self._limit = limit
        self._plans: dict[tuple[AttrSet, str], Plan] = {}
        self._buffer = memoryview(bytearray(BUFFER_SIZE))

    def root(self) -> _Answer:
        """The records of `/` itself: its entry, then (a task) its contents when it is a directory."""
        root_fs = self._prefix + b"/"
        try:
            st = os.lstat(root_fs)
        except OSError as e:
            return [ScanWarning(b"/", f"cannot lstat {root_fs!r}: {e.strerror or e}")], []
        ftype = FTYPE_BY_FMT.get(stat.S_IFMT(st.st_mode), "f")
        in_limit = self._limit is None or self._limit.match(b"/") is Match.FULL
        rule = self._ruleset.match(b"/", ftype) if in_limit else None
        answer: _Answer = ([], [])
        # the root is always listed, whatever should_descend says
        item: _Item = (b"/", ftype, None if rule is None else rule.attrs, st, ftype == "d")
        self._collect([item], _Budget(0, 0), answer)
        return answer

    def answer(self, task: bytes) -> tuple[bytes, bytes]:
        """A worker's answer to one task: its follow-up tasks (sealed) and its records, pickled."""
        records, tasks = self.run(pickle.loads(task))
        return pickle.dumps(_seal(tasks), _PICKLE), pickle.dumps(records, _PICKLE)

    def run(self, task: _Task) -> _Answer:
        """Records for one task, in canonical order, and the tasks they refer to. Directories
        met on the way are entered in place while the task stays within `PART_ENTRIES` and
        `PART_BYTES`; the others become tasks."""
        answer: _Answer = ([], [])
        budget = _Budget(PART_ENTRIES, PART_BYTES)
        if task[0] == "part":
            self._collect(cast(_PartTask, task)[2], budget, answer)
        else:
            _, path, identity = cast(_DirTask, task)
            self._enter(path, identity, budget, answer)
        return answer

    def _enter(self, path: bytes, identity: _Identity, budget: _Budget, answer: _Answer) -> None:
        """Records for a directory's contents: in place when they fit `budget`, else as parts."""
        listing = _listing(self._prefix + path, path, identity)
        if isinstance(listing, ScanWarning):
            answer[0].append(listing)
            return
        parts = self._decide(path, listing)
        if len(parts) == 1 and budget.fits(parts[0][1], parts[0][2]):
            self._collect(parts[0][0], budget, answer)
            return
        records, tasks = answer
        for items, _, _ in parts:
            if not items:  # nothing selected or to enter: no task
                continue
            records.append(len(tasks))
            tasks.append(("part", _first_path(items), _portable(items)))

    def _decide(self, path: bytes, listing: list[tuple[bytes, os.stat_result | OSError]]
                ) -> list[tuple[list[_Item], int, int]]:
        """A directory's names with the rules' decisions, in parts of at most `PART_ENTRIES`
        items and (but for one file) `PART_BYTES` to hash: (items, entries, bytes)."""
        base = path if path == b"/" else path + b"/"
        limit = self._limit
        match = self._ruleset.match
        parts: list[tuple[list[_Item], int, int]] = []
        items: list[_Item] = []
        volume = 0
        for name, result in listing:
            child = base + name
            if isinstance(result, OSError):
                items.append(ScanWarning(child, "vanished before it could be examined"
                                         if isinstance(result, FileNotFoundError)
                                         else f"cannot lstat: {result.strerror or result}"))
                continue
            if _ODD_OR_NOT_ASCII.search(name):
                items.extend(_name_warnings(child, name))
            ftype = FTYPE_BY_FMT.get(stat.S_IFMT(result.st_mode), "f")
            # AIDE's limit: a full match is in it, a partial one (a directory on the way) is entered
            near = Match.FULL if limit is None else limit.match(child)
            rule = match(child, ftype) if near is Match.FULL else None
            descend = ftype == "d" and near is not Match.NONE and self._ruleset.should_descend(child)
            if rule is None and not descend:
                continue
            if len(items) >= PART_ENTRIES or volume >= PART_BYTES:
                parts.append((items, len(items), volume))
                items, volume = [], 0
            attrs = None if rule is None else rule.attrs
            items.append((child, ftype, attrs, result, descend))
            if rule is not None and ftype == "f" and self._plan(rule.attrs, ftype).hashes:
                volume += result.st_size
        parts.append((items, len(items), volume))
        return parts

    def _collect(self, items: list[_Item], budget: _Budget, answer: _Answer) -> None:
        """Records for decided items: each selected one's entry and warnings; each directory to
        enter, in place or as a task."""
        records, tasks = answer
        for item in items:
            if isinstance(item, ScanWarning):
                records.append(item)
                continue
            path, ftype, attrs, lstat, descend = item
            st = lstat if isinstance(lstat, os.stat_result) else os.stat_result(lstat)
            if attrs is not None:
                job = Job(self._prefix + path, path, ftype, self._plan(attrs, ftype), st)
                recorded, values, messages = collect(job, self._buffer)
                records.append((path, ftype, recorded, values))
                if messages:
                    records.extend(ScanWarning(path, message) for message in messages)
            if not descend:
                continue
            if budget.entries > 0 and budget.volume > 0 and budget.depth < MAX_DEPTH_IN_PLACE:
                budget.depth += 1
                self._enter(path, (st.st_ino, st.st_dev, st.st_uid), budget, answer)
                budget.depth -= 1
            else:
                records.append(len(tasks))
                tasks.append(("dir", path, (st.st_ino, st.st_dev, st.st_uid)))

    def _plan(self, attrs: AttrSet, ftype: str) -> Plan:
        plan = self._plans.get((attrs, ftype))
        if plan is None:
            plan = self._plans[(attrs, ftype)] = make_plan(attrs, ftype)
        return plan


class _Budget:
    """What one task may still take on: entries and bytes to hash."""

    def __init__(self, entries: int, volume: int) -> None:
        self.entries = entries
        self.volume = volume
        self.untouched = entries > 0
        self.depth = 0  # directories entered in place, one inside the other

    def fits(self, entries: int, volume: int) -> bool:
        """Whether a directory part fits (the first always does); if so, it is counted."""
        if (entries > self.entries or volume > self.volume) and not self.untouched:
            self.entries = 0  # the rest goes to other tasks: listing more would only grow this one
            return False
        self.entries -= entries
        self.volume -= volume
        self.untouched = False
        return True


def _seal(tasks: list[_Task]) -> list[_Sealed]:
    """Tasks as the caller keeps them: kind, path, and the whole task pickled for a worker."""
    return [(task[0], task[1], pickle.dumps(task, _PICKLE)) for task in tasks]


def _portable(items: list[_Item]) -> list[_Item]:
    """Items just decided here, with their lstat results as tuples, to travel to another worker."""
    return [item if isinstance(item, ScanWarning)
            else (*item[:3], _compact(cast(os.stat_result, item[3])), item[4])
            for item in items]


def _first_path(items: list[_Item]) -> bytes:
    """Where a part starts in canonical order: the path of its first item."""
    first = items[0]
    return first.path if isinstance(first, ScanWarning) else first[0]


def _listing(fs_dir: bytes, path: bytes, identity: _Identity
             ) -> list[tuple[bytes, os.stat_result | OSError]] | ScanWarning:
    """A directory's names (sorted) with their lstat results. The directory is opened without
    following links and without touching its atime, and must be the one lstat saw (`identity`)."""
    ino, dev, owner = identity
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = open_quietly(fs_dir, flags, owner)
    except FileNotFoundError:
        return ScanWarning(path, "directory vanished before it could be read")
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            return ScanWarning(path, "directory replaced by another file type before it could be read")
        return ScanWarning(path, f"cannot read directory: {e.strerror or e}")
    try:
        fst = os.fstat(fd)
        if fst.st_ino != ino or fst.st_dev != dev:
            return ScanWarning(path, "directory replaced before it could be read (fstat shows another)")
        children: list[tuple[bytes, os.stat_result | OSError]] = []
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    children.append((os.fsencode(entry.name), entry.stat(follow_symlinks=False)))
                except OSError as e:
                    children.append((os.fsencode(entry.name), e))
    except OSError as e:
        return ScanWarning(path, f"cannot read directory: {e.strerror or e}")
    finally:
        os.close(fd)
    children.sort(key=_first)
    return children


def _name_warnings(path: bytes, name: bytes) -> Iterator[ScanWarning]:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        yield ScanWarning(path, "name is not valid UTF-8")
    if b"\n" in name:
        yield ScanWarning(path, "name contains a newline")
    elif _ODD_NAME.search(name):
        yield ScanWarning(path, "name contains control characters")
