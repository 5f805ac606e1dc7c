"""The `content` attribute (aidepy's own): a chosen small file's content, zlib-compressed, in the
baseline, so the report and promote can show what changed line by line.

Only what anybody on the host may read is recorded (the file readable by others, every
directory above it searchable by others), so `/etc/shadow` or a private key never lands on the
vault; a file over `MAX_SIZE`, or whose compressed content exceeds `MAX_STORED`, is refused too.
Refusals are warnings naming the file, and the entry records None. Pure: values in, values out;
the collector (`aidepy.scan.collect`) reads the file.
"""

from __future__ import annotations

import difflib
import stat
import zlib

from aidepy.entry import Entry, Value

MAX_SIZE = 4 << 20
"""Largest file whose content is recorded (bytes)."""
MAX_STORED = 64 << 10
"""Largest compressed content stored in the baseline (bytes)."""
MAX_DIFF_LINES = 500
"""Longest diff a report shows for one file; the rest is counted."""
_LEVEL = 9


def refusal(mode: int, size: int) -> str | None:
    """Why a file with this `st_mode` and size may not have its content recorded, or None."""
    if not mode & stat.S_IROTH:
        return "content not recorded: the file is not world-readable (its content never goes onto the vault)"
    if size > MAX_SIZE:
        return f"content not recorded: {size} bytes, more than {MAX_SIZE} (4 MiB)"
    return None


def compress(data: bytes) -> tuple[bytes | None, str | None]:
    """The value to store for `data` and, when it is refused, why."""
    stored = zlib.compress(data, _LEVEL)
    if len(stored) > MAX_STORED:
        return None, (f"content not recorded: {len(stored)} bytes compressed, more than "
                      f"{MAX_STORED} (64 KiB)")
    return stored, None


def expand(stored: Value) -> bytes | None:
    """The content a stored value holds; None for none, or for a value that is not one (a
    damaged or oversized stream is never expanded beyond `MAX_SIZE`)."""
    if not isinstance(stored, bytes):
        return None
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(stored, MAX_SIZE + 1)
    except zlib.error:
        return None
    if not decompressor.eof or decompressor.unconsumed_tail or len(data) > MAX_SIZE:
        return None
    return data


def same(a: Value, b: Value) -> bool:
    """Whether two stored values hold the same content (compressed bytes may differ between
    zlib builds for the same content)."""
    return a == b or (isinstance(a, bytes) and isinstance(b, bytes) and expand(a) is not None
                      and expand(a) == expand(b))


def _text(data: bytes) -> str | None:
    """`data` as text, or None when it is binary (holds NUL, or is not UTF-8)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def describe(stored: Value) -> str:
    """One line for a report column: `text, 12 lines, 345 bytes` or `binary, 1024 bytes`."""
    data = expand(stored)
    if data is None:
        return "(not recorded)"
    text = _text(data)
    if text is None:
        return f"binary, {len(data)} bytes"
    n = len(_lines(text))
    return f"text, {n} line{'' if n == 1 else 's'}, {len(data)} bytes"


def _lines(text: str) -> list[str]:
    """Lines split at newlines only (not at the other line breaks `str.splitlines` knows)."""
    return text.removesuffix("\n").split("\n") if text else []


def diff(old: Entry | None, new: Entry | None) -> list[str]:
    """A unified diff (without line ends) of the content two entries record; [] when both
    record the same or one does not record content; `binary content differs` for binary files.
    Lines are raw text: a text renderer escapes them."""
    if old is None or new is None or "content" not in old.attrs & new.attrs:
        return []
    a, b = expand(old.values.get("content")), expand(new.values.get("content"))
    if a == b:
        return []
    if a is None or b is None:
        return [f"(content not recorded in the {'old' if a is None else 'new'} entry)"]
    ta, tb = _text(a), _text(b)
    if ta is None or tb is None:
        return ["binary content differs"]
    lines = list(difflib.unified_diff(_lines(ta), _lines(tb), "old", "new", lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines[MAX_DIFF_LINES:] = [f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return lines
