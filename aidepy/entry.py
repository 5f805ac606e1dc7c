"""The record of one file system object: what the scanner yields and the database stores.

Paths are raw bytes (file names need not be UTF-8). Entries travel in one canonical order,
the order of `sort_key`: a directory before its contents, siblings sorted by name bytes. Every
stream (scan, database, compare) uses that order, so two streams merge without sorting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aidepy.attributes import AttrSet

Value = int | bytes | None
"""An attribute value: int for stat fields, bytes for everything else, None if not collected."""

FILE_TYPES = "fdlcbpsD"
"""AIDE's file type letters: regular, directory, symlink, char dev, block dev, fifo, socket, door."""


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
