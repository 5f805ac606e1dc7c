"""The database body: entries in blocks of columns, each column its own zlib stream; pure, no I/O.

See "Body" in `docs/database-format.md`. `BlockEncoder` turns entries into framed blocks,
`BlockDecoder` turns block payloads back into entries and checks their structure.
"""

from __future__ import annotations

import operator
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import NamedTuple, cast

from aidepy.attributes import BY_NAME, AttrSet, Kind
from aidepy.db.format import (
    MAX_BLOCK_BYTES,
    MAX_COUNT_BYTES,
    TABLE,
    bitmap_indexes,
    read_varint,
    varint,
)
from aidepy.entry import TYPE_LETTERS, Entry, Value, sort_key
from aidepy.errors import VerificationError

ZLIB_LEVEL = 6  # see "Measurements behind the choices" in docs/database-format.md
BLOCK_ENTRIES = 4096  # entries per block the writer makes
MAX_BLOCK_ENTRIES = 65536  # a reader refuses larger blocks
BLOCK_CONTENT_BYTES = 16 << 20
"""The writer ends a block early once its `content` values reach this many bytes, so no column
of a block comes near the reader's limit (`MAX_BLOCK_BYTES`)."""
HISTORY = 1 << 14  # how far back a bytes value may repeat an earlier one of its attribute
_MAX_VALUE_BYTES = 1024  # longest varint of an attribute value

# Column ids inside a block; attribute i of the table has value column 16 + 2i and, for
# times, nanoseconds column 17 + 2i.
COL_SHARED, COL_SUFFIX, COL_FTYPE, COL_ATTRS, COL_PRESENT, COL_NONE = range(6)
_COL_VALUES = 16

# How a value column stores its attribute (see "Values" in docs/database-format.md).
_INT, _DELTA, _TIME, _BYTES = range(4)


def _mode(name: str) -> int:
    attribute = BY_NAME[name]
    if attribute.kind is not Kind.STAT:
        return _BYTES
    field = attribute.stat_field or ""
    if field.endswith("_ns"):
        return _TIME
    return _DELTA if field == "st_ino" else _INT


def _layouts(table: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((name, _mode(name) if name in BY_NAME else _BYTES) for name in table)


class BlockEncoder:
    """Turns entries, in canonical order, into framed blocks of compressed columns.

    Entries are kept as rows of values, in runs of the same attribute layout, and turned into
    columns a whole block at a time (a transposition in C), then encoded a column at a time.
    After a ValueError the encoder is unusable (the write is abandoned anyway).
    """

    def __init__(self, table: tuple[str, ...] = TABLE, block_entries: int = BLOCK_ENTRIES) -> None:
        self._table = table
        self._modes = tuple(mode for _, mode in _layouts(table))
        self._index = {name: i for i, name in enumerate(table)}
        self._block_entries = block_entries
        self._compressors: dict[int, zlib._Compress] = {}
        self._attr_bitmaps: dict[AttrSet, int] = {}
        self._value_layouts: dict[tuple[str, ...], _Layout] = {}
        self._prev_path = b""
        self._prev_key: bytes | None = None
        self._prev_ints = [0] * len(table)
        self._seen: list[dict[bytes, int]] = [{} for _ in table]
        self._seq = [0] * len(table)
        self._prev_bitmaps = [0, 0, 0]  # attrs, present, none of the previous entry
        self._new_block()
        self.count = 0
        self.union = 0

    def _new_block(self) -> None:
        self._shared: list[int] = []
        self._suffixes: list[bytes] = []
        self._ftypes: list[str] = []
        self._attr_bits: list[int] = []
        self._present_bits: list[int] = []
        self._none_bits: list[int] = []
        self._content_bytes = 0
        self._runs: list[tuple[_Layout, list[tuple[Value, ...]]]] = []
        self._run_layout: _Layout | None = None
        self._run_rows: list[tuple[Value, ...]] = []
        self._has_none = False

    def attributes(self) -> AttrSet:
        """Every attribute used so far (in `attrs` or as a value)."""
        return frozenset(self._table[i] for i in bitmap_indexes(self.union))

    def _indexes(self, names: Iterable[str]) -> list[int]:
        unknown = set(names) - self._index.keys()
        if unknown:
            raise ValueError(f"unknown attribute(s) {sorted(unknown)}")
        return [self._index[n] for n in names]

    def _attr_bitmap(self, attrs: AttrSet) -> int:
        attrs = frozenset(attrs)
        bits = self._attr_bitmaps.get(attrs)
        if bits is None:
            bits = self._attr_bitmaps[attrs] = sum(1 << i for i in self._indexes(attrs))
        return bits

    def _layout(self, names: tuple[str, ...]) -> _Layout:
        """How to take the values of an entry whose `values` has these keys, in this order."""
        indexes = tuple(self._indexes(names))
        types = tuple(bytes if self._modes[i] == _BYTES else int for i in indexes)
        large = tuple(k for k, name in enumerate(names)
                      if name in BY_NAME and BY_NAME[name].kind is Kind.CONTENT)
        layout = _Layout(sum(1 << i for i in indexes), indexes, types, _row_getter(names), large)
        self._value_layouts[names] = layout
        return layout

    def add(self, entry: Entry) -> bytes:
        """Take one entry; returns a finished block frame, or b"" while the block fills."""
        path = entry.path
        key = sort_key(path)
        if self._prev_key is not None and key <= self._prev_key:
            raise ValueError(f"entries out of canonical order: {path!r} after {self._prev_path!r}")
        if b"\0" in path:
            raise ValueError(f"{path!r}: a path cannot hold a NUL byte")
        ftype = entry.ftype
        if len(ftype) != 1 or ftype not in TYPE_LETTERS:
            raise ValueError(f"{path!r}: unknown file type {ftype!r}")
        attr_bits = self._attr_bitmap(entry.attrs)
        values = entry.values
        names = tuple(values)
        layout = self._value_layouts.get(names) or self._layout(names)
        row = layout.getter(values)
        none_bits = 0 if tuple(map(type, row)) == layout.types else self._check(path, layout, row)
        if layout is not self._run_layout:
            self._run_layout, self._run_rows = layout, []
            self._runs.append((layout, self._run_rows))
        self._run_rows.append(row)
        shared = _common_prefix(self._prev_path, path)
        self._shared.append(shared)
        self._suffixes.append(path[shared:])
        self._ftypes.append(ftype)
        self._attr_bits.append(attr_bits)
        self._present_bits.append(layout.bits)
        self._none_bits.append(none_bits)
        self._prev_path = path
        self._prev_key = key
        self.count += 1
        self.union |= attr_bits | layout.bits
        if layout.large:
            self._content_bytes += sum(len(v) for k in layout.large if isinstance(v := row[k], bytes))
        full = len(self._shared) >= self._block_entries or self._content_bytes >= BLOCK_CONTENT_BYTES
        return self._block() if full else b""

    def _check(self, path: bytes, layout: _Layout, row: tuple[Value, ...]) -> int:
        """The None bitmap of a row that is not all of its expected types, or ValueError."""
        none_bits = 0
        for i, expected, value in zip(layout.indexes, layout.types, row, strict=True):
            if value is None:
                none_bits |= 1 << i
            elif type(value) is not expected:
                kind = "bytes" if expected is bytes else "an int"
                raise ValueError(f"{path!r}: {self._table[i]} must be {kind}, not {type(value).__name__}")
        self._has_none = True
        return none_bits

    def finish(self) -> bytes:
        """The last block (if any) and the end frame."""
        return self._block() + bytes(4)

    def _value_columns(self) -> dict[int, list[Value]]:
        """This block's values by attribute index, Nones left out."""
        columns: dict[int, list[Value]] = {}
        for layout, rows in self._runs:
            for i, column in zip(layout.indexes, zip(*rows, strict=True), strict=True):
                found = columns.get(i)
                if found is None:
                    columns[i] = list(column)
                else:
                    found += column
        if self._has_none:
            columns = {i: [v for v in column if v is not None] for i, column in columns.items()}
        return {i: column for i, column in columns.items() if column}

    def _column_bytes(self) -> dict[int, bytes]:
        """This block's columns, uncompressed, by column id."""
        small = _SMALL
        columns = {
            COL_SHARED: _varint_run(self._shared),
            COL_SUFFIX: b"".join([small[len(s)] + s if len(s) < _SMALL_LIMIT else varint(len(s)) + s
                                  for s in self._suffixes]),
            COL_FTYPE: "".join(self._ftypes).encode("ascii"),
        }
        for n, (column_id, bitmaps) in enumerate(
            ((COL_ATTRS, self._attr_bits), (COL_PRESENT, self._present_bits), (COL_NONE, self._none_bits))
        ):
            previous = [self._prev_bitmaps[n], *bitmaps[:-1]]
            self._prev_bitmaps[n] = bitmaps[-1]
            columns[column_id] = _varint_run([b ^ p for b, p in zip(bitmaps, previous, strict=True)])
        for i, values in sorted(self._value_columns().items()):
            column_id = _COL_VALUES + 2 * i
            mode = self._modes[i]
            if mode == _BYTES:
                columns[column_id] = self._bytes_column(i, cast("list[bytes]", values))
                continue
            ints = cast("list[int]", values)
            if max(max(ints), -min(ints)).bit_length() > 7 * _MAX_VALUE_BYTES - 64:
                raise ValueError(f"{self._table[i]} value too large to store")
            if mode == _INT:
                columns[column_id] = _varint_run(_zigzags(ints))
            elif mode == _DELTA:
                columns[column_id] = self._delta_column(i, ints)
            else:
                seconds, nanoseconds = zip(*(divmod(v, 1_000_000_000) for v in ints), strict=True)
                columns[column_id] = self._delta_column(i, seconds)
                columns[column_id + 1] = _varint_run(nanoseconds)
        return columns

    def _delta_column(self, i: int, values: Sequence[int]) -> bytes:
        previous = [self._prev_ints[i], *values[:-1]]
        self._prev_ints[i] = values[-1]
        return _varint_run(_zigzags(list(map(operator.sub, values, previous))))

    def _bytes_column(self, i: int, values: list[bytes]) -> bytes:
        seen = self._seen[i]
        seq = self._seq[i]
        small = _SMALL
        out = []
        for value in values:
            earlier = seen.get(value)
            if earlier is not None and seq - earlier <= HISTORY:
                out.append(varint((seq - earlier) << 1 | 1))
            else:
                size = len(value) << 1
                out.append(small[size] if size < _SMALL_LIMIT else varint(size))
                out.append(value)
            seen[value] = seq
            seq += 1
        if len(seen) > HISTORY + HISTORY // 4:  # forget what can no longer be referenced
            self._seen[i] = {v: s for v, s in seen.items() if seq - s <= HISTORY}
        self._seq[i] = seq
        return b"".join(out)

    def _block(self) -> bytes:
        n = len(self._shared)
        if not n:
            return b""
        parts = [varint(n)]
        for column_id, raw in sorted(self._column_bytes().items()):
            compressor = self._compressors.get(column_id)
            if compressor is None:
                compressor = self._compressors[column_id] = zlib.compressobj(ZLIB_LEVEL)
            data = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
            parts += (varint(column_id), varint(len(data)), data)
        self._new_block()
        payload = b"".join(parts)
        return len(payload).to_bytes(4, "big") + payload


class _Layout(NamedTuple):
    """The value attributes of an entry: bitmap, table indexes, expected types, row getter."""

    bits: int
    indexes: tuple[int, ...]
    types: tuple[type, ...]
    getter: Callable[[Mapping[str, Value]], tuple[Value, ...]]
    large: tuple[int, ...]  # positions in the row of `content` values (they may end a block early)


def _row_getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Value]], tuple[Value, ...]]:
    """A function returning the values for `names` of a mapping, as a tuple."""
    if len(names) != 1:
        return operator.itemgetter(*names) if names else lambda values: ()
    single = operator.itemgetter(names[0])
    return lambda values: (single(values),)


_SMALL_LIMIT = 1 << 14
_SMALL = [varint(n) for n in range(_SMALL_LIMIT)]  # the varints of one and two bytes


def _varint_run(numbers: Iterable[int]) -> bytes:
    """The varints of `numbers`, concatenated."""
    small = _SMALL
    return b"".join([small[n] if 0 <= n < _SMALL_LIMIT else _long_varint(n) for n in numbers])


def _long_varint(n: int) -> bytes:
    """`varint(n)`, unrolled up to five bytes (sizes, times, nanoseconds)."""
    if not _SMALL_LIMIT <= n < 1 << 35:
        return varint(n)
    low = (n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80)
    if n < 1 << 21:
        return bytes((*low, n >> 14))
    if n < 1 << 28:
        return bytes((*low, n >> 14 & 0x7F | 0x80, n >> 21))
    return bytes((*low, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80, n >> 28))


def _zigzags(values: Iterable[int]) -> list[int]:
    """`zigzag` of every value."""
    return [v << 1 if v >= 0 else ~v << 1 | 1 for v in values]


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of `a` and `b` (from the first differing bit, found
    by the integers' XOR)."""
    n = min(len(a), len(b))
    differ = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - 1 - (differ.bit_length() - 1) // 8 if differ else n


class BlockDecoder:
    """Turns block payloads (frames without their length) back into entries, checking structure."""

    def __init__(self, table: tuple[str, ...], attributes: AttrSet, entry_count: int) -> None:
        self._table = table
        self._modes = _layouts(table)
        self._allowed = sum(1 << i for i, name in enumerate(table) if name in attributes)
        self._expected = entry_count
        self._decompressors: dict[int, zlib._Decompress] = {}
        self._prev_path = b""
        self._prev_key: bytes | None = None
        self._prev_ints = [0] * len(table)
        self._history: list[list[bytes]] = [[] for _ in table]
        self._seq = [0] * len(table)
        self._prev_bitmaps = [0, 0, 0]
        self._bitmap_bytes = 1 + len(table) // 7  # longest varint a bitmap over the table needs
        self._column_end = _COL_VALUES + 2 * len(table)
        self._attrsets: dict[int, AttrSet] = {}
        self._indexes: dict[int, tuple[int, ...]] = {}
        self.count = 0

    def finish(self) -> None:
        """Check that the blocks held exactly the promised number of entries."""
        if self.count != self._expected:
            raise VerificationError(
                f"structure: header promises {self._expected} entries, body holds {self.count}"
            )

    def _columns(self, payload: bytes) -> tuple[int, dict[int, bytes]]:
        try:
            n, pos = read_varint(payload, 0)
            columns: dict[int, bytes] = {}
            last = -1
            while pos < len(payload):
                column_id, pos = read_varint(payload, pos)
                length, pos = read_varint(payload, pos)
                if column_id <= last or COL_NONE < column_id < _COL_VALUES or column_id >= self._column_end:
                    raise VerificationError(f"structure: unexpected column {column_id}")
                if pos + length > len(payload):
                    raise IndexError
                last = column_id
                decompressor = self._decompressors.get(column_id)
                if decompressor is None:
                    decompressor = self._decompressors[column_id] = zlib.decompressobj()
                columns[column_id] = decompressor.decompress(payload[pos:pos + length], MAX_BLOCK_BYTES)
                if decompressor.unconsumed_tail or decompressor.eof:
                    raise VerificationError(f"structure: column {column_id} is too large or ends early")
                pos += length
        except IndexError:
            raise VerificationError("structure: block ends early") from None
        except zlib.error as exc:
            raise VerificationError(f"structure: compressed column is corrupt ({exc})") from None
        if not 0 < n <= MAX_BLOCK_ENTRIES or self.count + n > self._expected:
            raise VerificationError(f"structure: block of {n} entries")
        return n, columns

    def _bits(self, bitmap: int) -> tuple[int, ...]:
        indexes = self._indexes.get(bitmap)
        if indexes is None:
            if bitmap & ~self._allowed:
                raise VerificationError(
                    f"structure: entry {self.count + 1} uses an attribute missing from the header"
                )
            indexes = self._indexes[bitmap] = bitmap_indexes(bitmap)
        return indexes

    def decode(self, payload: bytes) -> list[Entry]:
        """The entries of one block.

        Columns are decoded whole (fast loops over one kind of value), then zipped into entries.
        """
        n, columns = self._columns(payload)
        try:
            shared = _varints(columns.pop(COL_SHARED, b""))
            suffixes = _byte_strings(columns.pop(COL_SUFFIX, b""))
            ftypes = columns.pop(COL_FTYPE, b"").decode("latin-1")
            attr_bits, present_bits, none_bits = (
                self._bitmaps(n, _varints(columns.pop(column_id, b""), self._bitmap_bytes))
                for n, column_id in enumerate((COL_ATTRS, COL_PRESENT, COL_NONE))
            )
            streams = self._value_streams(columns)
        except IndexError:
            raise VerificationError(f"structure: a column is cut short near entry {self.count + 1}") from None
        if any(len(c) != n for c in (shared, suffixes, ftypes, attr_bits, present_bits, none_bits)):
            raise VerificationError(f"structure: columns disagree on a block size (entry {self.count + 1})")
        table = self._table
        layouts: dict[int, tuple[tuple[str, Iterator[Value]], ...]] = {}
        entries: list[Entry] = []
        prev_path = self._prev_path
        prev_key = self._prev_key
        number = self.count
        try:
            for k in range(n):
                number += 1
                if shared[k] > len(prev_path):
                    raise VerificationError(f"structure: entry {number} shares more than the previous path")
                path = prev_path[:shared[k]] + suffixes[k]
                key = sort_key(path)
                if prev_key is not None and key <= prev_key:
                    raise VerificationError(f"structure: entry {number} ({path!r}) is out of canonical order")
                if b"\0" in suffixes[k]:
                    raise VerificationError(f"structure: entry {number} ({path!r}) holds a NUL byte")
                ftype = ftypes[k]
                if ftype not in TYPE_LETTERS:
                    raise VerificationError(f"structure: entry {number} has file type {ftype!r}")
                bits = present_bits[k]
                layout = layouts.get(bits)
                if layout is None:
                    layout = layouts[bits] = tuple(
                        (table[i], streams.get(i) or iter(())) for i in self._bits(bits)
                    )
                nones = none_bits[k]
                if nones:
                    if nones & ~bits:
                        raise VerificationError(f"structure: entry {number} has a None it does not hold")
                    values = {name: None if nones >> i & 1 else next(it)
                              for i, (name, it) in zip(self._bits(bits), layout, strict=True)}
                else:
                    values = {name: next(it) for name, it in layout}
                attrs = self._attrsets.get(attr_bits[k])
                if attrs is None:
                    attrs = frozenset(table[i] for i in self._bits(attr_bits[k]))
                    self._attrsets[attr_bits[k]] = attrs
                entries.append(Entry(path, ftype, attrs, values))
                prev_path = path
                prev_key = key
        except (StopIteration, KeyError):
            raise VerificationError(f"structure: entry {number} has fewer values than it claims") from None
        if any(next(it, None) is not None for it in streams.values()):
            raise VerificationError(f"structure: a value column holds more than its block (entry {number})")
        self._prev_path = prev_path
        self._prev_key = prev_key
        self.count = number
        return entries

    def _bitmaps(self, n: int, xors: list[int]) -> list[int]:
        """Undo the XOR with the previous entry's bitmap."""
        bitmaps = list(accumulate(xors, operator.xor, initial=self._prev_bitmaps[n]))
        self._prev_bitmaps[n] = bitmaps[-1]
        return bitmaps[1:]

    def _value_streams(self, columns: dict[int, bytes]) -> dict[int, Iterator[Value]]:
        """For each attribute with a value column in this block, an iterator over its values."""
        streams: dict[int, Iterator[Value]] = {}
        for column_id, data in columns.items():
            i, is_ns = divmod(column_id - _COL_VALUES, 2)
            mode = self._modes[i][1]
            if is_ns:
                if mode != _TIME or column_id - 1 not in columns:
                    raise VerificationError(f"structure: unexpected column {column_id}")
                continue
            values: Sequence[Value]
            if mode == _BYTES:
                values = self._byte_values(i, data)
            elif mode == _INT:
                values = [(z >> 1) ^ -(z & 1) for z in _varints(data, _MAX_VALUE_BYTES)]
            elif mode == _DELTA:
                values = self._accumulate(i, _varints(data, _MAX_VALUE_BYTES))
            else:
                seconds = self._accumulate(i, _varints(data, _MAX_VALUE_BYTES))
                nanoseconds = _varints(columns.get(column_id + 1, b""))
                if len(nanoseconds) != len(seconds) or any(ns >= 1_000_000_000 for ns in nanoseconds):
                    raise VerificationError(f"structure: nanoseconds column {column_id + 1} is damaged")
                values = [s * 1_000_000_000 + ns for s, ns in zip(seconds, nanoseconds, strict=True)]
            streams[i] = iter(values)
        return streams

    def _accumulate(self, i: int, zigzags: list[int]) -> list[int]:
        out = list(accumulate([(z >> 1) ^ -(z & 1) for z in zigzags], initial=self._prev_ints[i]))
        self._prev_ints[i] = out[-1]
        return out[1:]

    def _byte_values(self, i: int, data: bytes) -> list[Value]:
        history = self._history[i]
        seq = self._seq[i]
        out: list[Value] = []
        pos = 0
        end = len(data)
        while pos < end:
            number, pos = read_varint(data, pos)
            if number & 1:
                distance = number >> 1
                if not 0 < distance <= min(seq, HISTORY):
                    raise VerificationError(f"structure: a value refers {distance} values back")
                value = history[(seq - distance) % HISTORY]
            else:
                stop = pos + (number >> 1)
                if stop > end:
                    raise IndexError
                value = data[pos:stop]
                pos = stop
            if seq < HISTORY:
                history.append(value)
            else:
                history[seq % HISTORY] = value
            seq += 1
            out.append(value)
        self._seq[i] = seq
        return out


def _varints(data: bytes, max_bytes: int = MAX_COUNT_BYTES) -> list[int]:
    """Every varint in `data`."""
    out: list[int] = []
    append = out.append
    pos = 0
    end = len(data)
    while pos < end:
        b = data[pos]
        if b < 0x80:
            append(b)
            pos += 1
        else:
            value, pos = read_varint(data, pos, max_bytes)
            append(value)
    return out


def _byte_strings(data: bytes) -> list[bytes]:
    """Every length-prefixed byte string in `data`."""
    out: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        length, pos = read_varint(data, pos)
        stop = pos + length
        if stop > end:
            raise IndexError
        out.append(data[pos:stop])
        pos = stop
    return out
