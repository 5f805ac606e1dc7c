"""Safe access to the state directory (`state_dir`), which may belong to an unprivileged account.

In the least-privilege layout the daily job runs as that account and owns `state_dir`, while
root still runs `promote`, `vault mount` and, by default, the report in it. Root therefore never
follows a name there: the lock and the state files read (the rollback record) are opened
relative to one descriptor of the directory (`O_DIRECTORY | O_NOFOLLOW`) with `O_NOFOLLOW |
O_NONBLOCK` (a link is refused, a FIFO never blocks), then checked with `fstat` (a regular file
with one link, owned by root, us or the directory's owner) before anything is written to them;
nothing is truncated before that check. Files aidepy replaces there (`aidepy.db.new`, the
report, the record) are made under a fresh `mkstemp` name and renamed over the old name, which
follows no link either. What aidepy writes is 0600."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from aidepy.errors import UnsafeLayoutError

# The names aidepy gives in state_dir, spelled here only (tests/test_names.py checks).
LOCK = "aidepy.lock"
"""The run lock (`aidepy.lock`): an `flock` held by the run that scans."""
ROLLBACK_RECORD = "generations.seen"
"""The rollback record: the newest verified generation of each baseline identity."""
LEGACY_ROLLBACK_RECORD = "generation.seen"
"""The rollback record of earlier versions: one generation, adopted once."""
NEW_DATABASE = "aidepy.db.new"
"""The daily run's scan, for reading only (promote scans afresh)."""
REPORT_SEEN = "report.seen"
"""The fingerprints of the previous daily report's changes (new or pending)."""
FULL_REPORT = "last-report.txt"
"""The last daily report, in full (the mail may be cut)."""
ANCHORED_DATABASE = "aidepy.{generation}.db"
"""The signed baseline when it is too large for the vault (anchored): one file per generation,
so the copy the vault's current anchor pins is never overwritten before the new anchor is in
place."""
ANCHORED_APPROVALS = "approvals.{records}.log"
"""The approval log when it is too large for the vault (anchored), named by its number of
records: a new name each promote, so the copy the vault's current anchor pins is never
overwritten before the new anchor is in place (a generation may be approved twice, after an
interrupted promote, so it does not make a new name)."""
PROMOTE_WORK = "promote-"
"""Prefix of promote's work directory (a killed promote leaves it behind)."""
PROMOTE_CANDIDATE = "candidate.db"
"""In promote's work directory: the fresh scan, unsigned."""
PROMOTE_SIGNED = "aidepy.db"
"""In promote's work directory: the scan signed, before it goes onto the vault."""

PROMOTE_APPROVALS = "approvals.log"
"""In promote's work directory: the approval log with the new record, before it is installed."""

FILE_MODE = 0o600
"""What aidepy writes under state_dir (and on the vault): readable by its owner only."""
DIR_MODE = 0o700


def open_dir(path: str | Path, *, create: bool = False) -> int:
    """A descriptor of the directory `path` (made 0700 if `create` and missing), never through a
    link at its last component. Raises UnsafeLayoutError for a link or a non-directory, OSError
    for anything else."""
    path = Path(path)
    if create:
        with suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE, parents=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeLayoutError(f"{path} is not a directory (a link or another file): "
                                    "refusing to use it") from None
        raise
    return fd


@contextmanager
def directory(path: str | Path, *, create: bool = False) -> Iterator[int]:
    """`open_dir` for the `with` block."""
    fd = open_dir(path, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def private_workdir(parent: str | Path, prefix: str) -> Iterator[Path]:
    """A fresh directory of ours (0700) under `parent`, for the `with` block, as a path that
    resolves through the descriptor we hold (`/proc/self/fd/N`): whoever can rename entries in
    `parent` (its owner, in the least-privilege layout) cannot swap what is written or read
    there. Removed afterwards. Raises UnsafeLayoutError when what was opened is not ours."""
    made = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        with directory(made) as fd:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
                raise UnsafeLayoutError(f"{made} was replaced while it was being opened: refusing to "
                                        "work in it")
            try:
                yield Path(f"/proc/self/fd/{fd}")
            finally:
                for name in os.listdir(fd):
                    with suppress(OSError):
                        os.unlink(name, dir_fd=fd)
    finally:
        with suppress(OSError):
            os.rmdir(made)


def open_file(dir_fd: int, name: str, flags: int = os.O_RDONLY, *, where: str | Path = "") -> int:
    """Open `name` in the directory `dir_fd` without following a link or blocking on a FIFO;
    refuse (UnsafeLayoutError) anything but a regular file with one link owned by root, us or
    the directory's owner. `flags` may hold O_CREAT (the file is made 0600, and handed to the
    directory's owner when root makes it in another account's directory: the lock, which that
    account's run must open too), never O_TRUNC: truncate after this check. Raises OSError
    (FileNotFoundError without O_CREAT) otherwise."""
    assert not flags & os.O_TRUNC, "truncate only after the checks"
    shown = Path(where) / name
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLayoutError(f"{shown} is a symbolic link: refusing to follow it") from None
        raise
    try:
        st, directory_st = os.fstat(fd), os.fstat(dir_fd)
        owners = (0, os.geteuid(), directory_st.st_uid)
        problem = ("is not a regular file" if not stat.S_ISREG(st.st_mode)
                   else f"has {st.st_nlink} hard links" if st.st_nlink != 1
                   else f"is owned by another user (uid {st.st_uid})" if st.st_uid not in owners
                   else None)
        if problem:
            raise UnsafeLayoutError(f"{shown} {problem}: refusing to use it")
        if flags & os.O_CREAT and st.st_uid != directory_st.st_uid and os.geteuid() == 0:
            os.fchown(fd, directory_st.st_uid, directory_st.st_gid)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | Path) -> int:
    """Open `path` for reading, not through a link at its last component and without blocking:
    UnsafeLayoutError unless it is a regular file (a FIFO swapped in must not hang a run)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLayoutError(f"{path} is a symbolic link: refusing to follow it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeLayoutError(f"{path} is not a regular file: refusing to read it")
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: str | Path) -> bytes:
    """The contents of the state file `path`, opened as `open_file` does."""
    path = Path(path)
    with directory(path.parent) as dfd:
        fd = open_file(dfd, path.name, where=path.parent)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def temp_files(path: str | Path, pattern: str) -> list[Path]:
    """Regular files in the directory `path` whose names match `pattern` (sorted): what an
    interrupted run left. Directories, links and other files under such a name are not ours and
    are left alone."""
    found = []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in sorted(fnmatch.filter(names, pattern)):
        try:
            if stat.S_ISREG(os.lstat(Path(path) / name).st_mode):
                found.append(Path(path) / name)
        except OSError:
            continue
    return found


def root_controlled(path: str | Path, _links: int = 0) -> None:
    """Raise UnsafeLayoutError unless only root can change what `path` names, as root must
    before it mounts there: every directory from / down to `path`'s parent belongs to root and
    no one else can write it (a sticky directory such as /tmp may be writable, when the entry
    below it is root's), a link on the way is root's own and leads to such a path too, and
    `path`, if it exists, is a directory. So the vault's mountpoint never lies in a state
    directory another account owns, and no one but root can turn it into a link elsewhere."""
    path = Path(path)
    if not path.is_absolute():
        raise UnsafeLayoutError(f"{path} is not an absolute path")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent, parents = os.fstat(fd), Path("/")
        for i, name in enumerate(path.parts[1:], 2):
            here = parents / name
            try:
                child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                return  # root creates it, below a directory only root controls
            os.close(fd)
            fd, st = child, os.fstat(child)
            writable = parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            sticky_ok = parent.st_mode & stat.S_ISVTX and st.st_uid == 0
            if parent.st_uid != 0 or (writable and not sticky_ok):
                raise UnsafeLayoutError(
                    f"{parents} belongs to uid {parent.st_uid} or others can write it (mode "
                    f"{stat.S_IMODE(parent.st_mode):04o}): root does not act on {path} inside it")
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid != 0 or _links >= 40:
                    raise UnsafeLayoutError(f"{here} is a symbolic link (uid {st.st_uid}): "
                                            f"refusing to follow it to {path}")
                target = os.readlink(parents / name)  # in a directory only root can change
                return root_controlled(Path(parents, target, *path.parts[i:]), _links + 1)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayoutError(f"{here} is not a directory"
                                        + ("" if here == path else f" (on the way to {path})"))
            parent, parents = st, here
    finally:
        os.close(fd)
