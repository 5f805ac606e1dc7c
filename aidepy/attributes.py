"""The attribute catalogue: every attribute aidepy knows, in AIDE's canonical order.

One table says, for each attribute, its config name (as written in `aide.conf` and printed by
`aide -p`), the label used in reports, its kind (how the scanner collects it and how reports
compare and print it), where reports show it (its letter in the per-entry summary string, its
place in the details) and, for hashes, how to compute it. Adding a hash is one entry here.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import xxhash


class Hasher(Protocol):
    """The part of `hashlib`'s interface the scanner uses."""

    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class Kind(Enum):
    """How an attribute is collected, compared and printed."""

    STAT = "stat"  # an integer from lstat (perm, uid, size, times, ...)
    LINKNAME = "linkname"  # a symlink's target (bytes)
    FTYPE = "ftype"  # the file type letter
    HASH = "hash"  # a digest of the file's content (bytes)
    META = "meta"  # extended metadata collected by the scanner (acl, xattrs, caps, ...)
    FLAG = "flag"  # changes how others are compared (S, I, ANF, ARF, growing); never stored
    CONTENT = "content"  # a small file's compressed content (`aidepy.content`)


@dataclass(frozen=True)
class Attribute:
    """One row of the catalogue."""

    name: str  # config name: "p", "sha256", "growing"
    label: str  # report label: "Perm", "SHA256"
    kind: Kind
    stat_field: str | None = None  # os.stat_result field for Kind.STAT
    new_hash: Callable[[], Hasher] | None = None  # None for a hash aidepy cannot compute
    adversarial: bool = True  # False for fast non-cryptographic hashes (xxhash, crc)
    optional: bool = False  # a file may have none: recorded as b"", left out of reports (as AIDE)
    letter: str = ""  # its column in the report's summary string (`>` for s and S, `H` for hashes)
    detail: int | None = None  # its place in the report's details, lowest first (None: not shown)
    own: bool = False  # aidepy's own: AIDE does not know it (config-check says so)


class _Crc32b:
    """AIDE's `crc32b`: the zlib CRC-32, stored least significant byte first (as libmhash does)."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes, /) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "little")


_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class _Crc32(_Crc32b):
    """AIDE's `crc32`: the unreflected CRC-32 of bzip2, least significant byte first.

    It is the zlib CRC of the input with every byte's bits reversed, itself bit-reversed, so
    zlib does the work at C speed."""

    def update(self, data: bytes, /) -> None:
        super().update(bytes(data).translate(_BIT_REVERSED))  # the scanner passes memoryviews

    def digest(self) -> bytes:
        return int(f"{self._crc:032b}"[::-1], 2).to_bytes(4, "little")


def _openssl(name: str) -> Callable[[], Hasher] | None:
    """A constructor for an OpenSSL digest, or None where this OpenSSL does not offer it."""
    try:
        hashlib.new(name)
    except ValueError:
        return None
    return lambda: hashlib.new(name)


def _stat(name: str, label: str, field: str, letter: str, detail: int) -> Attribute:
    return Attribute(name, label, Kind.STAT, stat_field=field, letter=letter, detail=detail)


def _hash(name: str, label: str, new: Callable[[], Hasher] | None, detail: int,
          adversarial: bool = True, own: bool = False) -> Attribute:
    return Attribute(name, label, Kind.HASH, new_hash=new, adversarial=adversarial, letter="H",
                     detail=detail, own=own)


# AIDE's order first (it fixes how `aide -p` lists attributes), aidepy's own after. `detail`
# follows AIDE's report: file type, link, sizes, stat fields, hashes (AIDE's hash order, ours
# after), then extended metadata; the summary string's columns come in that order too.
CATALOGUE: tuple[Attribute, ...] = (
    Attribute("l", "Lname", Kind.LINKNAME, letter="l", detail=1),
    _stat("p", "Perm", "st_mode", "p", 5),
    _stat("u", "Uid", "st_uid", "u", 6),
    _stat("g", "Gid", "st_gid", "g", 7),
    _stat("s", "Size", "st_size", ">", 2),
    _stat("a", "Atime", "st_atime_ns", "a", 8),
    _stat("c", "Ctime", "st_ctime_ns", "c", 10),
    _stat("m", "Mtime", "st_mtime_ns", "m", 9),
    _stat("i", "Inode", "st_ino", "i", 11),
    _stat("b", "Bcount", "st_blocks", "b", 4),
    _stat("n", "Linkcount", "st_nlink", "n", 12),
    _hash("md5", "MD5", _openssl("md5"), 100),
    _hash("sha1", "SHA1", _openssl("sha1"), 101),
    _hash("rmd160", "RMD160", _openssl("ripemd160"), 104),
    _hash("tiger", "TIGER", None, 105),
    _hash("crc32", "CRC32", _Crc32, 106, adversarial=False),
    _hash("haval", "HAVAL", None, 108),
    _hash("gost", "GOST", None, 110),
    _hash("crc32b", "CRC32B", _Crc32b, 107, adversarial=False),
    Attribute("acl", "ACL", Kind.META, letter="A", detail=200),
    Attribute("S", "Size (>)", Kind.FLAG, letter=">", detail=3),
    Attribute("I", "I", Kind.FLAG),
    Attribute("ANF", "ANF", Kind.FLAG),
    Attribute("ARF", "ARF", Kind.FLAG),
    _hash("sha256", "SHA256", _openssl("sha256"), 102),
    _hash("sha512", "SHA512", _openssl("sha512"), 103),
    Attribute("selinux", "SELinux", Kind.META, optional=True, letter="S", detail=202),
    Attribute("xattrs", "XAttrs", Kind.META, letter="X", detail=201),
    _hash("whirlpool", "WHIRLPOOL", _openssl("whirlpool"), 109),
    Attribute("ftype", "File type", Kind.FTYPE, detail=0),
    Attribute("e2fsattrs", "E2FSAttrs", Kind.META, letter="E", detail=203),
    Attribute("caps", "Caps", Kind.META, optional=True, letter="C", detail=204),
    _hash("stribog256", "STRIBOG256", None, 111),
    _hash("stribog512", "STRIBOG512", None, 112),
    Attribute("growing", "growing", Kind.FLAG),
    Attribute("compressed", "compressed", Kind.FLAG),  # AIDE 0.18: gzip-rotated logs
    # aidepy's own hashes. xxhash is fast but NOT collision resistant: use it only where an
    # adversary cannot choose file contents (caches, large media), never for system binaries.
    _hash("sha3_256", "SHA3-256", _openssl("sha3_256"), 150, own=True),
    _hash("blake2b", "BLAKE2b", lambda: hashlib.blake2b(), 151, own=True),
    _hash("xxh64", "XXH64", xxhash.xxh64, 152, adversarial=False, own=True),
    _hash("xxh128", "XXH128", xxhash.xxh128, 153, adversarial=False, own=True),
    # The content of chosen small, world-readable files, for diffs (aidepy.content): counted in
    # the summary's hash column, shown after the extended metadata.
    Attribute("content", "Content", Kind.CONTENT, own=True, letter="H", detail=205),
)

BY_NAME: dict[str, Attribute] = {a.name: a for a in CATALOGUE}
ORDER: dict[str, int] = {a.name: i for i, a in enumerate(CATALOGUE)}
DETAIL_ORDER: tuple[str, ...] = tuple(
    a.name for a in sorted((a for a in CATALOGUE if a.detail is not None), key=lambda a: a.detail or 0)
)
"""The attributes a report's details can show, in the order it shows them."""

AttrSet = frozenset[str]
"""A set of attribute config names, e.g. frozenset({"p", "i", "sha256"})."""

TIMES: AttrSet = frozenset({"a", "c", "m"})
"""Times: values in nanoseconds since the epoch, recorded and compared to the second, as AIDE
does (a change below the second is not one; `SECOND` ns)."""
SECOND = 1_000_000_000

HASHES: AttrSet = frozenset(a.name for a in CATALOGUE if a.kind is Kind.HASH)
OWN: AttrSet = frozenset(a.name for a in CATALOGUE if a.own)
"""aidepy's own attributes: `aide` refuses a rule that names one."""
SUMMARY_COLUMNS: tuple[tuple[str, AttrSet], ...] = tuple(
    (letter, frozenset(a.name for a in CATALOGUE if a.letter == letter))
    for letter in dict.fromkeys(BY_NAME[name].letter for name in DETAIL_ORDER if BY_NAME[name].letter)
)
"""The columns of a report's per-entry summary string (`f = ... mc..H.. . `), in order: each
column's letter and the attributes it stands for."""
OPTIONAL: AttrSet = frozenset(a.name for a in CATALOGUE if a.optional)
"""Attributes a file may lack (no capabilities, no SELinux label): AIDE leaves them out of that
file's entry; aidepy records `b""` and leaves them out of what reports show (`report.shown`)."""
SUPPORTED_HASHES: AttrSet = frozenset(a.name for a in CATALOGUE if a.new_hash is not None)
AIDE_HASHES: AttrSet = frozenset(
    {"md5", "sha1", "rmd160", "tiger", "crc32", "haval", "gost", "crc32b", "sha256", "sha512",
     "whirlpool"}
)


def attrset(expr: str) -> AttrSet:
    """Names joined with '+' (no groups, no '-'): `attrset("p+u+sha256")`."""
    names = frozenset(n for n in expr.split("+") if n)
    unknown = names - BY_NAME.keys()
    if unknown:
        raise ValueError(f"unknown attribute(s): {'+'.join(sorted(unknown))}")
    return names


# AIDE 0.18's predefined groups (`aide -v` prints them). `H` holds every hash AIDE knows;
# the config layer drops the ones aidepy cannot compute, with a warning.
DEFAULT_GROUPS: dict[str, AttrSet] = {
    "R": attrset("l+p+u+g+s+c+m+i+n+md5+acl+selinux+xattrs+ftype+e2fsattrs+caps"),
    "L": attrset("l+p+u+g+i+n+acl+selinux+xattrs+ftype+e2fsattrs+caps"),
    ">": attrset("l+p+u+g+s+i+n+acl+selinux+xattrs+ftype+e2fsattrs+caps+growing"),
    "H": AIDE_HASHES,
    "X": attrset("acl+selinux+xattrs+e2fsattrs+caps"),
    "E": frozenset(),
}


# The e2fsattrs value: one character per flag in this order, the flag's lsattr letter or '-'
# (AIDE's layout). Pairs are (FS_IOC_GETFLAGS bit, letter).
E2FS_FLAGS: tuple[tuple[int, str], ...] = (
    (0x1, "s"), (0x2, "u"), (0x8, "S"), (0x10000, "D"), (0x10, "i"), (0x20, "a"), (0x40, "d"),
    (0x80, "A"), (0x4, "c"), (0x800, "E"), (0x4000, "j"), (0x1000, "I"), (0x8000, "t"),
    (0x20000, "T"), (0x80000, "e"), (0x800000, "C"), (0x2000000, "x"), (0x40000000, "F"),
    (0x10000000, "N"), (0x20000000, "P"), (0x100000, "V"), (0x400, "m"),
)


def ordered(attrs: Iterable[str]) -> list[str]:
    """Attribute names in catalogue order."""
    return sorted(attrs, key=ORDER.__getitem__)


def format_attrs(attrs: Iterable[str]) -> str:
    """The `+`-joined form `aide -p` and `aide -D` print, in catalogue order."""
    return "+".join(ordered(attrs))
