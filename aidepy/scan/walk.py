"""The scanner: walk the tree the rules imply and yield an `Entry` for every selected path.

Entries come in canonical order (`aidepy.entry.sort_key`: a directory, then its contents,
siblings by name bytes). The unit of work is one directory: list it (one `open` without
following links, an `fstat` to check it is the directory lstat saw, `getdents`, one `lstat`
per name), decide every name with the rules (and the `--limit` regex), collect the attributes
of the selected ones (`aidepy.scan.collect`: open, fstat, hash, flags, xattrs) and name the
subdirectories worth entering: every directory the rules cannot select anything below is
pruned. Symlinks are never followed.

A task goes on into the subdirectories it meets, in place, until it holds `PART_ENTRIES`
entries or `PART_BYTES` to hash; the subdirectories left become tasks of their own, and a
directory larger than that is cut into parts, each a task. Only the names of a directory are
held all at once (sorted): `lstat` and the decisions run one part at a time while the
directory stays open, `SLICE_PARTS` parts per task, and the process that holds the directory
is sent a task to decide the next slice when the caller gets near it, so the largest
directory costs its names (about 60 bytes each), not its stat results (600) or its parts.
With more than one worker, tasks are done by a pool of forked worker processes
(`aidepy.scan.forkpool`; threads would contend for the GIL: on /usr they gained nothing over one
thread). The caller only puts the answers in order: it sends tasks in canonical order as
they become known, keeps a bounded number of them sent or answered ahead of the one it is
emitting (sending the one it needs next first), so the output is the same whatever the
parallelism or the cut, and memory stays flat whatever the size of the tree. Per-path
trouble (vanished or unreadable files, files changing under the scan, odd names) is
reported through `on_warning` as a `ScanWarning`, in walk order; it never ends the scan.
"""

from __future__ import annotations

import errno
import heapq
import os
import pickle
import re
import stat
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol, TypeVar, cast

from aidepy.attributes import AttrSet
from aidepy.entry import TYPE_BY_FMT, Entry, Value, sort_key
from aidepy.pcre import Match, Regex
from aidepy.scan.collect import BUFFER_SIZE, Job, Plan, collect, make_plan, open_quietly
from aidepy.scan.forkpool import ForkPool
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
SLICE_PARTS = 4
"""Parts of a directory decided (lstat, rules) by one task; the next slice is another task, for
the same process, which keeps the directory open meanwhile."""

_ODD_NAME = re.compile(rb"[\x00-\x1f\x7f]")
_ODD_OR_NOT_ASCII = re.compile(rb"[\x00-\x1f\x7f-\xff]")
_PICKLE = pickle.HIGHEST_PROTOCOL

_Stat = tuple[float, ...]
_Item = tuple[bytes, str, AttrSet | None, os.stat_result | _Stat, bool] | ScanWarning
"""One name of a directory, decided: path, type, the selecting rule's attributes (None: not
selected), lstat result, whether to enter it; or a warning about it."""
_Identity = tuple[int, int, int]
"""What a directory task needs of its lstat result: inode, device, owner."""
_DirTask = tuple[str, bytes, _Identity]
_PartTask = tuple[str, bytes, list[_Item]]
_SliceTask = tuple[str, bytes, int, int]
_Task = _DirTask | _PartTask | _SliceTask
"""("dir", path, identity): list and collect a directory; ("part", path of its first item,
items): collect part of a directory already listed; ("slice", path of the next name, pid,
fd): decide the next slice of the directory that process `pid` holds open as `fd`."""
_Record = tuple[bytes, str, AttrSet, Mapping[str, Value]] | ScanWarning | int
"""In an answer: an entry's fields, a warning, or the index of a follow-up task (a
subdirectory, or the next part of this directory) whose records come in its place."""
_Answer = tuple[list[_Record], list[_Task]]
_Sealed = tuple[str, bytes, bytes, int]
"""A task on its way through the caller: kind, path, the task pickled, the worker it is for
(its pid; 0: any)."""
_T = TypeVar("_T")


def default_workers() -> int:
    """Worker processes when none are asked for: one per CPU."""
    return max(1, min(os.cpu_count() or 1, 16))


def scan(ruleset: Selection, *, root_prefix: bytes = b"", limit: Regex | None = None,
         workers: int | None = None, on_warning: Callable[[ScanWarning], None],
         ) -> Generator[Entry, None, None]:
    """Entries for every path `ruleset` selects below `root_prefix` (recorded without it), in
    canonical order. `limit`: only paths it matches in full, as AIDE's `--limit` (anchored at
    the start; directories that match partly are entered). `workers`: collection processes
    (default `default_workers()`; 1 = all in the caller's process). Closing the generator early
    releases every directory and worker it holds."""
    count = default_workers() if workers is None else max(1, workers)
    walker = _Walker(ruleset, root_prefix.rstrip(b"/"), limit)
    root = walker.root()
    if count == 1 or not root[1]:  # one worker, or nothing below the root to share out
        try:
            yield from _emit(root, walker.run, on_warning)
        finally:
            walker.close()
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
    """Entries and warnings of `root` and of every task it leads to, depth first. A task is let
    go once fetched: the slices of a large directory come one inside the other."""
    stack = [(iter(root[0]), deque(root[1]))]
    while stack:
        records, tasks = stack[-1]
        for record in records:
            if type(record) is tuple:
                yield Entry(*record)
            elif type(record) is int:  # the tasks' indices come in order
                answer = fetch(tasks.popleft())
                stack.append((iter(answer[0]), deque(answer[1])))
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
        kind, path, task, worker = heapq.heappop(self._waiting)[2]
        self._sent[self._pool.send(task, worker)] = (kind, path)
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
        self._open: dict[int, _Directory] = {}  # directories being decided, by file descriptor

    def close(self) -> None:
        """Close the directories still open (a scan that ended before their last slice)."""
        for directory in self._open.values():
            os.close(directory.fd)
        self._open.clear()

    def root(self) -> _Answer:
        """The records of `/` itself: its entry, then (a task) its contents when it is a directory."""
        root_fs = self._prefix + b"/"
        try:
            st = os.lstat(root_fs)
        except OSError as e:
            return [ScanWarning(b"/", f"cannot lstat {root_fs!r}: {e.strerror or e}")], []
        ftype = TYPE_BY_FMT.get(stat.S_IFMT(st.st_mode), "f")
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
        elif task[0] == "slice":
            directory = self._open[cast(_SliceTask, task)[3]]
            self._hand_out(directory, self._decide(directory)[0], answer)
        else:
            _, path, identity = cast(_DirTask, task)
            self._enter(path, identity, budget, answer)
        return answer

    def _enter(self, path: bytes, identity: _Identity, budget: _Budget, answer: _Answer) -> None:
        """Records for a directory's contents: in place when they fit `budget`, else as parts."""
        directory = _open_directory(self._prefix + path, path, identity)
        if isinstance(directory, ScanWarning):
            answer[0].append(directory)
            return
        self._open[directory.fd] = directory
        items, volume = self._decide(directory)
        if directory.done and budget.fits(len(items), volume):
            self._close(directory)
            self._collect(items, budget, answer)
            return
        self._hand_out(directory, items, answer)

    def _hand_out(self, directory: _Directory, items: list[_Item], answer: _Answer) -> None:
        """Tasks for the parts of a directory too large for one task, `items` the first of them:
        up to `SLICE_PARTS` parts, then, while names are left, a task (for this process, which
        keeps the directory open) to decide the next slice."""
        records, tasks = answer
        for handed in range(1, SLICE_PARTS + 1):
            if items:  # nothing selected or to enter: no task
                records.append(len(tasks))
                tasks.append(("part", _first_path(items), _portable(items)))
            if directory.done:
                self._close(directory)
                return
            if handed < SLICE_PARTS:
                items, _ = self._decide(directory)
        records.append(len(tasks))
        tasks.append(("slice", directory.next_path(), os.getpid(), directory.fd))

    def _close(self, directory: _Directory) -> None:
        del self._open[directory.fd]
        os.close(directory.fd)

    def _decide(self, directory: _Directory) -> tuple[list[_Item], int]:
        """The next part of an open directory: its next names, lstat'ed and decided by the
        rules, until the part holds `PART_ENTRIES` items or `PART_BYTES` to hash (or the names
        run out): (items, bytes to hash)."""
        base, names, fd = directory.base, directory.names, directory.fd
        limit = self._limit
        match = self._ruleset.match
        lstat = os.stat
        items: list[_Item] = []
        volume = 0
        at, end = directory.next, len(names)
        while at < end and len(items) < PART_ENTRIES and volume < PART_BYTES:
            name = names[at]
            at += 1
            child = base + name
            try:
                result = lstat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as e:  # listed, then gone or unreadable: the rest of the names go on
                items.append(ScanWarning(child, "vanished before it could be examined"
                                         if isinstance(e, FileNotFoundError)
                                         else f"cannot lstat: {e.strerror or e}"))
                continue
            if _ODD_OR_NOT_ASCII.search(name):
                items.extend(_name_warnings(child, name))
            ftype = TYPE_BY_FMT.get(stat.S_IFMT(result.st_mode), "f")
            # AIDE's limit: a full match is in it, a partial one (a directory on the way) is entered
            near = Match.FULL if limit is None else limit.match(child)
            rule = match(child, ftype) if near is Match.FULL else None
            descend = ftype == "d" and near is not Match.NONE and self._ruleset.should_descend(child)
            if rule is None and not descend:
                continue
            attrs = None if rule is None else rule.attrs
            items.append((child, ftype, attrs, result, descend))
            if rule is not None and ftype == "f" and self._plan(rule.attrs, ftype).hashes:
                volume += result.st_size
        directory.next = at
        return items, volume

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
    """Tasks as the caller keeps them: kind, path, the whole task pickled for a worker, and the
    worker it must go to (a slice: the one holding its directory open)."""
    return [(task[0], task[1], pickle.dumps(task, _PICKLE),
             cast(_SliceTask, task)[2] if task[0] == "slice" else 0) for task in tasks]


def _portable(items: list[_Item]) -> list[_Item]:
    """Items just decided here, with their lstat results as tuples, to travel to another worker."""
    return [item if isinstance(item, ScanWarning)
            else (*item[:3], _compact(cast(os.stat_result, item[3])), item[4])
            for item in items]


def _first_path(items: list[_Item]) -> bytes:
    """Where a part starts in canonical order: the path of its first item."""
    first = items[0]
    return first.path if isinstance(first, ScanWarning) else first[0]


class _Directory:
    """A directory open for deciding: its names, sorted, and how many of them are decided."""

    def __init__(self, fd: int, path: bytes, names: list[bytes]) -> None:
        self.fd = fd
        self.base = path if path == b"/" else path + b"/"
        self.names = names
        self.next = 0

    @property
    def done(self) -> bool:
        return self.next == len(self.names)

    def next_path(self) -> bytes:
        """The path of the next name to decide: where the next slice starts in canonical order."""
        return self.base + self.names[self.next]


def _open_directory(fs_dir: bytes, path: bytes, identity: _Identity) -> _Directory | ScanWarning:
    """A directory, open, with its names (sorted; each lstat'ed later, relative to its file
    descriptor). It is opened without following links and without touching its atime, and must
    be the one lstat saw (`identity`)."""
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
            os.close(fd)
            return ScanWarning(path, "directory replaced before it could be read (fstat shows another)")
        with os.scandir(fd) as it:  # names only: an lstat result weighs 600 bytes
            names = [os.fsencode(entry.name) for entry in it]
    except OSError as e:
        os.close(fd)
        return ScanWarning(path, f"cannot read directory: {e.strerror or e}")
    names.sort()
    return _Directory(fd, path, names)


def _name_warnings(path: bytes, name: bytes) -> Iterator[ScanWarning]:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        yield ScanWarning(path, "name is not valid UTF-8")
    if b"\n" in name:
        yield ScanWarning(path, "name contains a newline")
    elif _ODD_NAME.search(name):
        yield ScanWarning(path, "name contains control characters")
