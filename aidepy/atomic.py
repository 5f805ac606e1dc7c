"""Atomic, verified file writes onto a medium that may be small, slow or lying.

A file is written to a temp name beside its target, fsynced, its cached pages dropped and
read back from the medium, optionally verified by the caller, renamed over the target, and
the directory fsynced; the target is then read back once more. A process killed at any point
leaves the previous file or the new one, never a mixture; a leftover temp file is removed by
the next write. A file that does not fit raises `VaultFullError` saying how much is missing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aidepy.errors import DatabaseWriteError, VaultError, VaultFullError
from aidepy.state import FILE_MODE

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class WrittenFile:
    """A file written to the vault and read back from the medium."""

    path: Path
    size: int
    sha256: bytes


def atomic_write(
    root: Path, name: str, chunks: Iterable[bytes], *, size: int | None = None,
    verify: Callable[[Path], None] | None = None, mode: int = FILE_MODE,
) -> WrittenFile:
    """Write `root/name` atomically: temp file, fsync, read back from the medium, `verify(temp)`,
    rename, fsync the directory, read back again. On any failure the previous file is intact."""
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)  # left over by a killed writer
    free = free_bytes(root)
    if size is not None and space_needed(size, root) > free:
        raise VaultFullError(name, space_needed(size, root), free)
    digest, written, it = hashlib.sha256(), 0, iter(chunks)
    try:
        with open(tmp, "xb", buffering=0) as f:
            os.fchmod(f.fileno(), mode)
            for chunk in it:
                written += len(chunk)  # counted first: a full medium reports the whole size
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[f.write(view) or 0:]
            os.fsync(f.fileno())
            # Drop the cached pages so the read-back below comes from the medium.
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            total = written + sum(len(c) for c in it)
            raise VaultFullError(name, space_needed(total, root), free) from None
        if exc.errno == errno.EROFS:
            raise VaultError(f"cannot write {name}: the vault is read-only or write-protected") from None
        raise DatabaseWriteError(f"cannot write {name} on the vault: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        read_back(tmp, digest.digest(), written)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DatabaseWriteError(f"cannot finish writing {name} on the vault: {exc.strerror or exc} "
                                 "('aidepy vault status' shows which version it holds)") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    read_back(target, digest.digest(), written)
    return WrittenFile(target, written, digest.digest())


def read_back(path: Path, sha256: bytes, size: int) -> None:
    """Check that `path` holds exactly `size` bytes with digest `sha256`, as read from the medium
    (its cached pages are dropped first)."""
    digest, length = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while chunk := f.read(READ_CHUNK):
                digest.update(chunk)
                length += len(chunk)
    except OSError as exc:
        raise DatabaseWriteError(f"cannot read back {path}: {exc.strerror}") from None
    if length != size or digest.digest() != sha256:
        raise DatabaseWriteError(f"{path} reads back differently from what was written (faulty medium?)")


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_bytes(root: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of `root`."""
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def space_needed(size: int, root: Path) -> int:
    """Bytes of free space a file of `size` bytes takes: whole blocks plus ext2's indirect blocks."""
    block = os.statvfs(root).f_frsize
    blocks = -(-size // block)
    pointers = block // 4
    indirect = 0 if blocks <= 12 else 1 + max(0, -(-(blocks - 12 - pointers) // pointers))
    return (blocks + indirect) * block


def replace_text(path: Path, text: str) -> None:
    """Replace a small state file (no read-back): the text goes to a fresh `mkstemp` name in
    the same directory, so a symlink planted at a predictable temp name is never followed,
    and is renamed over `path`. Raises OSError; the temp file never outlives a failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", errors="surrogateescape") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
