"""How paths (raw bytes from the file system) are written in reports, and wherever aidepy shows
a file name to a person (status line, warnings, the mail's subject).

Text: bytes 0x01-0x1f and 0x7f are written as a backslash and three octal digits (`\\012` for a
newline), as AIDE does (AIDE leaves 0x1f alone; aidepy escapes it too), and C1 controls too;
other bytes are written unchanged, also when they are not UTF-8.

JSON: lossless. A name that is valid UTF-8 appears as itself (JSON escapes control characters,
`"a\\nb"`); each byte that is not part of valid UTF-8 appears as the lone surrogate
U+DC80..U+DCFF (`"\\udcff"` for byte 0xff), Python's `surrogateescape` convention:
`json.loads(text)["path"].encode("utf-8", "surrogateescape")` gives the raw bytes back.
"""

from __future__ import annotations


def escape_path(path: bytes) -> str:
    """A path for a text report: control characters as `\\ooo` octal bytes, everything else
    unchanged. Like AIDE for C0 controls and DEL; unlike AIDE, C1 controls are escaped too
    (U+0080-U+009F, and bytes 0x80-0x9f outside valid UTF-8), because some terminals act on
    them (0x9b starts an escape sequence)."""
    out = []
    for char in path.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("".join(f"\\{b:03o}" for b in char.encode("utf-8")))
        elif 0xDC80 <= code <= 0xDC9F:  # a lone byte 0x80-0x9f (surrogateescape)
            out.append(f"\\{code - 0xDC00:03o}")
        else:
            out.append(char)
    return "".join(out)


def json_path(path: bytes) -> str:
    """A path for a JSON report, lossless (see the module docstring)."""
    return path.decode("utf-8", "surrogateescape")
