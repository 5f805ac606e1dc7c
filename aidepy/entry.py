"""The record of one file system object: what the scanner yields and the database stores.

Paths are raw bytes (file names need not be UTF-8). Entries travel in one canonical order,
the order of `sort_key`: a directory before its contents, siblings sorted by name bytes. Every
stream (scan, database, compare) uses that order, so two streams merge without sorting.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass

from aidepy.attributes import AttrSet

Value = int | bytes | None
"""An attribute value: int for stat fields, bytes for everything else, None if not collected."""



@dataclass(frozen=True)
class FileType:
    """One of AIDE's file types: its letter (rules, databases, `path-check`), its name in the
    report, and the `S_IFMT` bits a scan sees (None: Linux has no such file)."""

    letter: str
    name: str
    fmt: int | None


FILE_TYPES: tuple[FileType, ...] = (
    FileType("f", "File", stat.S_IFREG),
    FileType("d", "Directory", stat.S_IFDIR),
    FileType("l", "Link", stat.S_IFLNK),
    FileType("c", "Character device", stat.S_IFCHR),
    FileType("b", "Block device", stat.S_IFBLK),
    FileType("p", "FIFO", stat.S_IFIFO),
    FileType("s", "Socket", stat.S_IFSOCK),
    FileType("D", "Door", None),  # Solaris; AIDE's event ports (P) have no letter in databases
)
"""The catalogue of file types: every list of types derives from it."""
TYPE_LETTERS = "".join(t.letter for t in FILE_TYPES)
"""The letters a database may record (`fdlcbpsD`)."""
LINUX_TYPE_LETTERS = "".join(t.letter for t in FILE_TYPES if t.fmt is not None)
"""The letters of the files Linux has (`fdlcbps`): what a rule may restrict to and path-check takes."""
TYPE_BY_FMT: dict[int, str] = {t.fmt: t.letter for t in FILE_TYPES if t.fmt is not None}
"""A scanned file's letter by `stat.S_IFMT(st_mode)`."""
TYPE_NAMES: dict[str, str] = {t.letter: t.name for t in FILE_TYPES}
"""The report's name of each letter (`File`, `Directory`, ...)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A path, its type, the attributes its rule asked for, and their values."""

    path: bytes
    ftype: str
    attrs: AttrSet
    values: Mapping[str, Value]


def sort_key(path: bytes) -> bytes:
    """The canonical order: paths compared component by component. That is the order of their
    bytes with "/" read as NUL, the one byte no file name holds, so one replace gives the key.
    A path holding NUL has no place in it: the database refuses one."""
    return path.replace(b"/", b"\0")
