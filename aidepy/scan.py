"""The scanner: walk the tree the rules imply and yield an `Entry` for every selected path.

The walk runs on the caller's thread in canonical order (`aidepy.entry.sort_key`: a directory,
then its contents, siblings by name bytes), one `lstat` per name (from `os.scandir`), pruning
every directory the rules (and the `--limit` regex) cannot select anything below. It never
follows symlinks. Collecting attributes (`aidepy.collect`: open, fstat, hash, flags, xattrs)
happens in a pool of worker processes (threads would contend for the GIL: on /usr they gained
nothing over one thread), in batches of paths; batches are delivered in submission order and
only a bounded number is in flight, so the output is the same whatever the parallelism and
memory stays flat whatever the tree's size. Per-path trouble (vanished or unreadable files,
files changing under the scan, odd names) is reported through `on_warning` as a `ScanWarning`,
in walk order; it never ends the scan.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import re
import signal
import stat
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Protocol

from aidepy.attributes import AttrSet
from aidepy.collect import BUFFER_SIZE, FTYPE_BY_FMT, Job, Plan, collect, make_plan, open_quietly
from aidepy.entry import Entry, Value
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


BATCH_ENTRIES = 128
BATCH_BYTES = 1 << 20
"""A batch closes at this many paths or this many bytes to hash, whichever comes first."""
WINDOW_PER_WORKER = 4
"""Batches in flight per worker: enough to keep every worker busy, few enough to keep memory flat."""

_ODD_NAME = re.compile(rb"[\x00-\x1f\x7f]")
_first = itemgetter(0)
_REGEX_SPECIAL = frozenset(b".^$*+?{}[]|()\\")
_Item = Job | ScanWarning


def default_workers() -> int:
    """Worker processes when none are asked for: one per CPU."""
    return max(1, min(os.cpu_count() or 1, 16))


def scan(ruleset: Selection, *, root_prefix: bytes = b"", limit: re.Pattern[bytes] | None = None,
         workers: int | None = None, on_warning: Callable[[ScanWarning], None]) -> Iterator[Entry]:
    """Entries for every path `ruleset` selects below `root_prefix` (recorded without it), in
    canonical order. `limit`: only paths it matches (anchored at the start, as AIDE's
    `--limit`). `workers`: collection processes (default `default_workers()`; 1 = all in the caller's
    thread)."""
    count = default_workers() if workers is None else max(1, workers)
    items = _walk(ruleset, root_prefix.rstrip(b"/"), limit)
    if count == 1:
        buf = memoryview(bytearray(BUFFER_SIZE))
        for item in items:
            if isinstance(item, ScanWarning):
                on_warning(item)
                continue
            entry, messages = collect(item, buf)
            yield entry
            for message in messages:
                on_warning(ScanWarning(item.path, message))
        return
    window = count * WINDOW_PER_WORKER
    pending: deque[Future[list[_Result]]] = deque()
    # fork: workers start with everything imported (nothing is re-imported from __main__), and
    # Python 3.11 starts all of a fork pool's workers before its management thread
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork"),
                             initializer=_worker_start, initargs=(os.getpid(),)) as pool:
        try:
            for batch in _batches(items):
                pending.append(pool.submit(_run_batch, batch))
                while pending and (len(pending) >= window or pending[0].done()):
                    yield from _deliver(pending.popleft().result(), on_warning)
            while pending:
                yield from _deliver(pending.popleft().result(), on_warning)
        finally:
            for future in pending:
                future.cancel()


_Task = tuple[bytes, bytes, str, AttrSet, tuple[float, ...]] | ScanWarning
_Result = tuple[bytes, str, AttrSet, Mapping[str, Value], list[str]] | ScanWarning


def _deliver(results: list[_Result], on_warning: Callable[[ScanWarning], None]) -> Iterator[Entry]:
    for result in results:
        if isinstance(result, ScanWarning):
            on_warning(result)
            continue
        path, ftype, attrs, values, messages = result
        yield Entry(path, ftype, attrs, values)
        for message in messages:
            on_warning(ScanWarning(path, message))


def _batches(items: Iterator[_Item]) -> Iterator[list[_Task]]:
    """Items as picklable tasks (a plan holds hash constructors), in batches."""
    batch: list[_Task] = []
    volume = 0
    for item in items:
        if isinstance(item, ScanWarning):
            batch.append(item)
        else:
            batch.append((item.fs_path, item.path, item.ftype, item.plan.key, _compact(item.st)))
            if item.plan.hashes:
                volume += item.st.st_size
        if len(batch) >= BATCH_ENTRIES or volume >= BATCH_BYTES:
            yield batch
            batch, volume = [], 0
    if batch:
        yield batch


_HIDDEN_STAT_FIELDS = attrgetter(*os.lstat("/").__reduce__()[1][1])
"""The fields of a stat result past its sequence part (st_atime_ns, st_blocks, ...), in order."""


def _compact(st: os.stat_result) -> tuple[float, ...]:
    """Every field of `st`, as a tuple `os.stat_result` takes back: it pickles in a quarter of
    the time (a stat result pickles as its sequence plus a dict of the other fields)."""
    return (*st, *_HIDDEN_STAT_FIELDS(st))


def _worker_start(parent: int) -> None:
    """Ctrl-C is the caller's to handle: workers end when the pool shuts down, or with the
    caller if it is killed (else they would wait forever on a queue their siblings hold open)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the caller died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1

_worker_plans: dict[tuple[AttrSet, str], Plan] = {}
_worker_buffer: list[memoryview] = []


def _run_batch(batch: list[_Task]) -> list[_Result]:
    """In a worker process: collect a batch, in order."""
    if not _worker_buffer:
        _worker_buffer.append(memoryview(bytearray(BUFFER_SIZE)))
    buf = _worker_buffer[0]
    out: list[_Result] = []
    for task in batch:
        if isinstance(task, ScanWarning):
            out.append(task)
            continue
        fs_path, path, ftype, attrs, st = task
        plan = _worker_plans.get((attrs, ftype))
        if plan is None:
            plan = _worker_plans[(attrs, ftype)] = make_plan(attrs, ftype)
        entry, messages = collect(Job(fs_path, path, ftype, plan, os.stat_result(st)), buf)
        out.append((path, ftype, entry.attrs, entry.values, messages))
    return out


def _limit_prefix(limit: re.Pattern[bytes] | None) -> bytes:
    """Bytes every path matching `limit` starts with (b"" when unsure)."""
    if limit is None or b"|" in limit.pattern or limit.flags & (re.VERBOSE | re.IGNORECASE):
        return b""
    pattern = limit.pattern[1:] if limit.pattern.startswith(b"^") else limit.pattern
    end = 0
    while end < len(pattern) and pattern[end] not in _REGEX_SPECIAL:
        end += 1
    if end < len(pattern) and pattern[end] in b"*?{":
        end -= 1  # the last literal is optional or repeated
    return pattern[:max(end, 0)]


def _walk(ruleset: Selection, prefix: bytes, limit: re.Pattern[bytes] | None) -> Iterator[_Item]:
    """Jobs for selected paths and warnings, in canonical order."""
    plans: dict[tuple[AttrSet, str], Plan] = {}
    limit_prefix = _limit_prefix(limit)

    def plan_for(rule: Rule, ftype: str) -> Plan:
        key = (rule.attrs, ftype)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = make_plan(rule.attrs, ftype)
        return plan

    def may_hold_limit(path: bytes) -> bool:
        # PCRE2's partial match in AIDE; here: could a path below share the limit's literal prefix?
        below = path + b"/"
        return below.startswith(limit_prefix) or limit_prefix.startswith(below)

    root_fs = prefix + b"/"
    try:
        st = os.lstat(root_fs)
    except OSError as e:
        yield ScanWarning(b"/", f"cannot lstat {root_fs!r}: {e.strerror or e}")
        return
    ftype = FTYPE_BY_FMT.get(stat.S_IFMT(st.st_mode), "f")
    in_limit = limit is None or limit.match(b"/") is not None
    rule = ruleset.match(b"/", ftype) if in_limit else None
    if rule is not None:
        yield Job(root_fs, b"/", ftype, plan_for(rule, ftype), st)
    if ftype != "d":
        return
    first = _listing(root_fs, b"/", st)
    if isinstance(first, ScanWarning):
        yield first
        return
    stack: list[tuple[bytes, bytes, Iterator[tuple[bytes, os.stat_result | OSError]]]] = [
        (b"/", root_fs, iter(first))]
    while stack:
        base, fs_base, entries = stack[-1]
        child = next(entries, None)
        if child is None:
            stack.pop()
            continue
        name, result = child
        path = base + name
        if isinstance(result, OSError):
            yield ScanWarning(path, "vanished before it could be examined"
                              if isinstance(result, FileNotFoundError)
                              else f"cannot lstat: {result.strerror or result}")
            continue
        st = result
        fs_path = fs_base + name
        if not name.isascii() or _ODD_NAME.search(name):
            yield from _name_warnings(path, name)
        ftype = FTYPE_BY_FMT.get(stat.S_IFMT(st.st_mode), "f")
        in_limit = limit is None or limit.match(path) is not None
        rule = ruleset.match(path, ftype) if in_limit else None
        if rule is not None:
            yield Job(fs_path, path, ftype, plan_for(rule, ftype), st)
        if ftype == "d" and (in_limit or may_hold_limit(path)) and ruleset.should_descend(path):
            children = _listing(fs_path, path, st)
            if isinstance(children, ScanWarning):
                yield children
            else:
                stack.append((path + b"/", fs_path + b"/", iter(children)))


def _listing(fs_dir: bytes, path: bytes, st: os.stat_result
             ) -> list[tuple[bytes, os.stat_result | OSError]] | ScanWarning:
    """A directory's names (sorted) with their lstat results. The directory is opened without
    following links and without touching its atime, and must be the one `st` describes."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = open_quietly(fs_dir, flags, st.st_uid)
    except FileNotFoundError:
        return ScanWarning(path, "directory vanished before it could be read")
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            return ScanWarning(path, "directory replaced by another file type before it could be read")
        return ScanWarning(path, f"cannot read directory: {e.strerror or e}")
    try:
        fst = os.fstat(fd)
        if fst.st_ino != st.st_ino or fst.st_dev != st.st_dev:
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
