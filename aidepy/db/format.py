"""The database format's envelope and header, and the primitive encodings; pure, no I/O.

`docs/database-format.md` specifies every byte; this module and `dbblocks` (the body's
blocks of columns) follow it, `db` adds files, digests and signatures. Decoding errors raise
`VerificationError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aidepy.attributes import BY_NAME, CATALOGUE, AttrSet
from aidepy.errors import UnsupportedFormatError, VerificationError

MAGIC = b"\x89AIDEPY\n"
FORMAT_VERSION = 1
PREFIX_SIZE = len(MAGIC) + 2 + 4  # magic, u16 version, u32 header length
SCHEME_NONE = 0
SCHEME_ED25519 = 1
TAIL_SIZE = 1 + 32 + 32 + 64  # scheme, public key, digest, signature
SIGNATURE_CONTEXT = b"aidepy-database-v1\0"
COMPRESSION_ZLIB = 1
MAX_COUNT_BYTES = 10  # longest varint of a count or length
MAX_BLOCK_BYTES = 64 << 20  # largest block frame, and largest decompressed column of a block


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


def zigzag(n: int) -> int:
    return n << 1 if n >= 0 else (-n << 1) - 1


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def bytes_field(data: bytes) -> bytes:
    return varint(len(data)) + data


def _str_field(text: str) -> bytes:
    return bytes_field(text.encode("utf-8", "surrogateescape"))


def read_varint(buf: bytes, pos: int, max_bytes: int = MAX_COUNT_BYTES) -> tuple[int, int]:
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


def bitmap_indexes(bitmap: int) -> tuple[int, ...]:
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
        varint(zigzag(header.created)),
        varint(header.generation),
        bytes((COMPRESSION_ZLIB,)),
        varint(len(table)),
        *(_str_field(name) for name in table),
        varint(sum(1 << index[name] for name in header.attributes)),
        bytes_field(header.rules_digest),
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
        rules_digest, pos = read_bytes(data, pos)
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
    attributes = frozenset(table[i] for i in bitmap_indexes(attr_bits))
    unknown = attributes - BY_NAME.keys()
    if unknown:
        raise UnsupportedFormatError(
            f"uses attribute(s) {', '.join(sorted(unknown))} unknown to this aidepy "
            f"(written by aidepy {aidepy_version})"
        )
    header = Header(version, aidepy_version, host, unzigzag(created), generation, attributes,
                    rules_digest, entry_count)
    return header, table


def read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise IndexError
    return data[pos:end], end


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_bytes(data, pos)
    try:
        return raw.decode("utf-8", "surrogateescape"), pos
    except UnicodeDecodeError:  # surrogateescape only fails on encoded surrogates
        raise VerificationError("structure: text field is not UTF-8") from None


TABLE: tuple[str, ...] = tuple(a.name for a in CATALOGUE)
"""The attribute table this aidepy writes: its whole catalogue, in catalogue order."""
