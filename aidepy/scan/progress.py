"""The status line an admin sees on a terminal while a scan runs.

One line on standard error, redrawn a few times a second: entries so far, time taken, the path
being scanned (escaped as in the report, so a hostile file name cannot drive the terminal).
It is erased before anything else is printed, and it is only drawn on a terminal: cron, pipes
and the daily report's mail never see it.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO

from aidepy.entry import Entry
from aidepy.report.escape import escape_path

REDRAW_SECONDS = 0.2
_ERASE = "\r\x1b[K"


def status_text(entries: int, seconds: float, path: bytes, columns: int) -> str:
    """The status line for `columns` terminal columns: the count, the time taken as m:ss, and
    as much of the end of `path` as fits (none when too little room is left)."""
    minutes, secs = divmod(int(seconds), 60)
    text = f"aidepy: scanning: {entries:,} entr{'y' if entries == 1 else 'ies'}, {minutes}:{secs:02d}"
    room = columns - 1 - _width(text) - 2  # a free last column: no wrap at the line's end
    shown = escape_path(path)
    if _width(shown) > room:
        shown = "..." + _tail(shown, room - 3)
    return text + "  " + shown if room >= 12 else text[:max(columns - 1, 0)]


def _width(text: str) -> int:
    """Terminal columns `text` takes (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _tail(text: str, columns: int) -> str:
    """The end of `text` that fits in `columns`."""
    taken = 0
    for start in range(len(text) - 1, -1, -1):
        taken += _width(text[start])
        if taken > columns:
            return text[start + 1:]
    return text


class StatusLine:
    """The status line of one scan, on `stream` when it is a terminal; a context manager that
    leaves the line erased, however the scan ends."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._shown = False
        self._terminal = _is_terminal(stream)

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.clear()

    def track(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        """`entries`, unchanged, with the line drawn at the first and redrawn every
        `REDRAW_SECONDS` as they pass; erased after the last. Off a terminal, `entries` as they
        are: nothing is added to the scan's path."""
        return self._drawn(entries) if self._terminal else iter(entries)

    def _drawn(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        start = due = self._clock()
        for count, entry in enumerate(entries, 1):
            now = self._clock()
            if now >= due:
                due = now + REDRAW_SECONDS
                self._draw(status_text(count, now - start, entry.path, self._columns()))
            yield entry
        self.clear()

    def clear(self) -> None:
        """Erase the line, if it is shown (before other output; the next redraw brings it back)."""
        if self._shown:
            self._stream.write(_ERASE)
            self._stream.flush()
            self._shown = False

    def _draw(self, text: str) -> None:
        # a name the terminal's encoding cannot show is shown escaped, never an error
        encoding = self._stream.encoding or "utf-8"
        self._stream.write(_ERASE + text.encode(encoding, "backslashreplace").decode(encoding))
        self._stream.flush()
        self._shown = True

    def _columns(self) -> int:
        """The terminal's width; 80 when it does not say (a serial console reports 0)."""
        try:
            return os.get_terminal_size(self._stream.fileno()).columns or 80
        except (OSError, ValueError):
            return 80


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False
