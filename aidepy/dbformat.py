"""The database format's pure codec: header and record encoding, no I/O.

`docs/database-format.md` specifies every byte; this module follows it. `db` wraps it with
files, compression, digests and signatures. Decoding errors raise `VerificationError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from aidepy.attributes import BY_NAME, CATALOGUE, AttrSet
from aidepy.entry import FILE_TYPES, Entry, Value, sort_key
from aidepy.errors import ExitCode, VerificationError

MAGIC = b"\x89AIDEPY\n"
FORMAT_VERSION = 1
PREFIX_SIZE = len(MAGIC) + 2 + 4  # magic, u16 version, u32 header length
SCHEME_NONE = 0
SCHEME_ED25519 = 1
TAIL_SIZE = 1 + 32 + 32 + 64  # scheme, public key, digest, signature
SIGNATURE_CONTEXT = b"aidepy-database-v1\0"
COMPRESSION_ZLIB = 1
MAX_RECORD = 16 << 20  # a record larger than this is a structure error (guards crafted files)
_MAX_COUNT_BYTES = 10
_MAX_VALUE_BYTES = 1024


class UnsupportedFormatError(VerificationError):
    """A verified database this aidepy cannot read: newer format version or unknown attributes."""

    exit_code = ExitCode.VERSION_MISMATCH


@dataclass(frozen=True)
class Header:
    """What a database says about itself (see the header table in docs/database-format.md)."""

    format_version: int
    aidepy_version: str
    host: str
    created: int
    generation: int
    attributes: AttrSet
    rules_digest: bytes
    entry_count: int


def varint(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0x80:
        if n < 0:
            raise ValueError(f"varint of a negative number: {n}")
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else (-n << 1) - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _bytes_field(data: bytes) -> bytes:
    return varint(len(data)) + data


def _str_field(text: str) -> bytes:
    return _bytes_field(text.encode("utf-8", "surrogateescape"))


def read_varint(buf: bytes, pos: int, max_bytes: int = _MAX_COUNT_BYTES) -> tuple[int, int]:
    """Decode a varint at `pos`; IndexError when `buf` ends inside it."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    end = pos + max_bytes
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0:
                raise VerificationError("structure: non-minimal varint")
            return result, pos
        if pos >= end:
            raise VerificationError("structure: varint too long")
        shift += 7


def _bitmap_indexes(bitmap: int) -> tuple[int, ...]:
    out = []
    i = 0
    while bitmap:
        if bitmap & 1:
            out.append(i)
        bitmap >>= 1
        i += 1
    return tuple(out)


def encode_header(header: Header, table: tuple[str, ...]) -> bytes:
    """The prefix of a database file: magic, version, header length and header."""
    index = {name: i for i, name in enumerate(table)}
    body = b"".join((
        varint(header.format_version),
        _str_field(header.aidepy_version),
        _str_field(header.host),
        varint(_zigzag(header.created)),
        varint(header.generation),
        bytes((COMPRESSION_ZLIB,)),
        varint(len(table)),
        *(_str_field(name) for name in table),
        varint(sum(1 << index[name] for name in header.attributes)),
        _bytes_field(header.rules_digest),
        varint(header.entry_count),
    ))
    return MAGIC + header.format_version.to_bytes(2, "big") + len(body).to_bytes(4, "big") + body


def decode_header(data: bytes) -> tuple[Header, tuple[str, ...]]:
    """Parse the header bytes (after the 14-byte prefix); returns the header and attribute table."""
    try:
        pos = 0
        version, pos = read_varint(data, pos)
        aidepy_version, pos = _read_str(data, pos)
        host, pos = _read_str(data, pos)
        created, pos = read_varint(data, pos)
        generation, pos = read_varint(data, pos)
        compression = data[pos]
        pos += 1
        count, pos = read_varint(data, pos)
        if count > len(data):
            raise VerificationError(f"structure: attribute table of {count} names")
        names = []
        for _ in range(count):
            name, pos = _read_str(data, pos)
            names.append(name)
        attr_bits, pos = read_varint(data, pos, max_bytes=1 + count // 7)
        rules_digest, pos = _read_bytes(data, pos)
        entry_count, pos = read_varint(data, pos)
    except IndexError:
        raise VerificationError("structure: header ends early") from None
    if pos != len(data):
        raise VerificationError(f"structure: {len(data) - pos} unexpected bytes at the end of the header")
    if version != FORMAT_VERSION:
        raise VerificationError(f"structure: header says format version {version}")
    if compression != COMPRESSION_ZLIB:
        raise VerificationError(f"structure: unknown compression {compression}")
    table = tuple(names)
    if len(set(table)) != len(table):
        raise VerificationError("structure: attribute table names an attribute twice")
    if attr_bits >> len(table):
        raise VerificationError("structure: attribute bitmap beyond the attribute table")
    attributes = frozenset(table[i] for i in _bitmap_indexes(attr_bits))
    unknown = attributes - BY_NAME.keys()
    if unknown:
        raise UnsupportedFormatError(
            f"uses attribute(s) {', '.join(sorted(unknown))} unknown to this aidepy "
            f"(written by aidepy {aidepy_version})"
        )
    header = Header(version, aidepy_version, host, _unzigzag(created), generation, attributes,
                    rules_digest, entry_count)
    return header, table


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise IndexError
    return data[pos:end], end


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bytes(data, pos)
    try:
        return raw.decode("utf-8", "surrogateescape"), pos
    except UnicodeDecodeError:  # surrogateescape only fails on encoded surrogates
        raise VerificationError("structure: text field is not UTF-8") from None


TABLE: tuple[str, ...] = tuple(a.name for a in CATALOGUE)
"""The attribute table this aidepy writes: its whole catalogue, in catalogue order."""


class RecordEncoder:
    """Turns entries, in canonical order, into record bytes; tracks count and attribute union."""

    def __init__(self, table: tuple[str, ...] = TABLE) -> None:
        self._index = {name: i for i, name in enumerate(table)}
        self._table = table
        self._prev_path = b""
        self._prev_key: tuple[bytes, ...] | None = None
        self._prev_ints = [0] * len(table)
        self._layouts: dict[frozenset[str], tuple[int, tuple[tuple[int, str], ...]]] = {}
        self.count = 0
        self.union = 0

    def attributes(self) -> AttrSet:
        """Every attribute used so far (in `attrs` or as a value)."""
        return frozenset(self._table[i] for i in _bitmap_indexes(self.union))

    def _layout(self, names: Iterable[str]) -> tuple[int, tuple[tuple[int, str], ...]]:
        key = frozenset(names)
        layout = self._layouts.get(key)
        if layout is None:
            unknown = key - self._index.keys()
            if unknown:
                raise ValueError(f"unknown attribute(s) {sorted(unknown)}")
            pairs = tuple(sorted((self._index[n], n) for n in key))
            layout = (sum(1 << i for i, _ in pairs), pairs)
            self._layouts[key] = layout
        return layout

    def encode(self, entry: Entry) -> bytes:
        """The record for `entry`; ValueError when it breaks the canonical order or the format."""
        path = entry.path
        key = sort_key(path)
        if self._prev_key is not None and key <= self._prev_key:
            raise ValueError(f"entries out of canonical order: {path!r} after {self._prev_path!r}")
        if len(entry.ftype) != 1 or entry.ftype not in FILE_TYPES:
            raise ValueError(f"{path!r}: unknown file type {entry.ftype!r}")
        shared = len(os.path.commonprefix((self._prev_path, path)))  # noqa: RUF071 (byte prefix wanted)
        attr_bits, _ = self._layout(entry.attrs)
        present_bits, pairs = self._layout(entry.values.keys())
        out = [varint(shared), _bytes_field(path[shared:]), entry.ftype.encode("ascii"),
               varint(attr_bits), varint(present_bits)]
        prev_ints = self._prev_ints
        for i, name in pairs:
            out.append(self._value(path, name, i, entry.values[name], prev_ints))
        self._prev_path = path
        self._prev_key = key
        self.count += 1
        self.union |= attr_bits | present_bits
        return b"".join(out)

    @staticmethod
    def _value(path: bytes, name: str, i: int, value: Value, prev_ints: list[int]) -> bytes:
        if value is None:
            return b"\0"
        if isinstance(value, bytes):
            return varint(len(value) << 2 | 3) + value
        if isinstance(value, int) and not isinstance(value, bool):
            tag = varint(_zigzag(value - prev_ints[i]) << 2 | 1)
            if len(tag) > _MAX_VALUE_BYTES:
                raise ValueError(f"{path!r}: {name} value too large to store")
            prev_ints[i] = value
            return tag
        raise ValueError(f"{path!r}: {name} value of type {type(value).__name__}")


class RecordDecoder:
    """Turns decompressed body bytes, fed in pieces, back into entries, checking the structure."""

    def __init__(self, table: tuple[str, ...], attributes: AttrSet, entry_count: int) -> None:
        self._table = table
        self._allowed = sum(1 << i for i, name in enumerate(table) if name in attributes)
        self._expected = entry_count
        self._rest = b""
        self._prev_path = b""
        self._prev_key: tuple[bytes, ...] | None = None
        self._prev_ints = [0] * len(table)
        self._attrsets: dict[int, AttrSet] = {}
        self._layouts: dict[int, tuple[tuple[int, str], ...]] = {}
        self.count = 0

    def feed(self, data: bytes) -> list[Entry]:
        """The entries completed by `data` (a record may span several pieces)."""
        buf = self._rest + data if self._rest else data
        pos = 0
        end = len(buf)
        out: list[Entry] = []
        while pos < end:
            try:
                entry, pos = self._record(buf, pos)
            except IndexError:
                break
            out.append(entry)
        self._rest = buf[pos:]
        if len(self._rest) > MAX_RECORD:
            raise VerificationError(f"structure: record {self.count + 1} larger than {MAX_RECORD} bytes")
        return out

    def finish(self) -> None:
        """Check that the body ended on a record boundary after exactly `entry_count` records."""
        if self._rest:
            raise VerificationError(f"structure: body ends inside record {self.count + 1}")
        if self.count != self._expected:
            raise VerificationError(
                f"structure: header promises {self._expected} entries, body holds {self.count}"
            )

    def _bits(self, bitmap: int) -> None:
        if bitmap & ~self._allowed:
            raise VerificationError(
                f"structure: record {self.count + 1} uses an attribute missing from the header"
            )

    def _record(self, buf: bytes, pos: int) -> tuple[Entry, int]:
        if self.count >= self._expected:
            raise VerificationError(f"structure: more records than the {self._expected} promised")
        shared, pos = read_varint(buf, pos)
        length, pos = read_varint(buf, pos)
        stop = pos + length
        if stop >= len(buf):  # the file type byte must follow too
            raise IndexError
        prev_path = self._prev_path
        if shared > len(prev_path):
            raise VerificationError(f"structure: record {self.count + 1} shares more than the previous path")
        path = prev_path[:shared] + buf[pos:stop]
        ftype = chr(buf[stop])
        pos = stop + 1
        attr_bits, pos = read_varint(buf, pos)
        present_bits, pos = read_varint(buf, pos)
        layout = self._layouts.get(present_bits)
        if layout is None:
            self._bits(present_bits)
            layout = tuple((i, self._table[i]) for i in _bitmap_indexes(present_bits))
            self._layouts[present_bits] = layout
        values: dict[str, Value] = {}
        ints: list[tuple[int, int]] = []
        prev_ints = self._prev_ints
        for i, name in layout:
            tag, pos = read_varint(buf, pos, _MAX_VALUE_BYTES)
            kind = tag & 3
            if kind == 3:
                stop = pos + (tag >> 2)
                if stop > len(buf):
                    raise IndexError
                values[name] = buf[pos:stop]
                pos = stop
            elif kind == 1:
                value = prev_ints[i] + _unzigzag(tag >> 2)
                values[name] = value
                ints.append((i, value))
            elif tag == 0:
                values[name] = None
            else:
                raise VerificationError(f"structure: record {self.count + 1} has a value with tag {tag}")
        # The record is complete: only now check it and commit the state it changes.
        if ftype not in FILE_TYPES:
            raise VerificationError(f"structure: record {self.count + 1} has file type {ftype!r}")
        key = sort_key(path)
        if self._prev_key is not None and key <= self._prev_key:
            raise VerificationError(
                f"structure: record {self.count + 1} ({path!r}) is out of canonical order"
            )
        attrs = self._attrsets.get(attr_bits)
        if attrs is None:
            self._bits(attr_bits)
            attrs = frozenset(self._table[i] for i in _bitmap_indexes(attr_bits))
            self._attrsets[attr_bits] = attrs
        for i, value in ints:
            prev_ints[i] = value
        self._prev_path = path
        self._prev_key = key
        self.count += 1
        return Entry(path, ftype, attrs, values), pos
