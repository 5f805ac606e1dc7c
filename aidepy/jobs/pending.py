"""Which changes of the daily report are new since the previous report, and which were already
pending (reported before and not yet promoted).

Each report's changes are remembered in `state_dir/report.seen` as one fingerprint per line
(the path, the kind of change and the values recorded now), so a file that changes again is
new again. The record is convenience, never evidence: losing or forging it can only make a
change look new or pending; every pending change is listed in every report all the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from aidepy import state
from aidepy.atomic import replace_text
from aidepy.compare import Change
from aidepy.errors import UnsafeLayoutError


def fingerprint(change: Change) -> str:
    """A change's identity across reports: its path, kind and the values recorded now."""
    entry = change.new if change.new is not None else change.old
    values = sorted(entry.values.items()) if entry is not None else []
    digest = hashlib.sha256(repr((change.path, change.kind.value, change.ftype, values)).encode())
    return digest.hexdigest()[:32]


def previous(state_dir: Path) -> set[str]:
    """The fingerprints the previous report listed (none when there is no readable record)."""
    try:  # not through a link, never blocking on a FIFO (`aidepy.state`)
        return set(state.read_bytes(state_dir / state.REPORT_SEEN).decode("ascii").split())
    except (OSError, UnsafeLayoutError, UnicodeDecodeError):
        return set()


def new_changes(changes: Iterable[Change], seen: set[str]) -> frozenset[bytes]:
    """The paths of `changes` that the previous report did not list as they are now."""
    return frozenset(c.path for c in changes if fingerprint(c) not in seen)


def remember(state_dir: Path, changes: Iterable[Change]) -> None:
    """Keep this report's changes for the next one to compare with (a fresh temp file renamed
    over the old one, as `aidepy.state` replaces state files). Raises OSError."""
    replace_text(state_dir / state.REPORT_SEEN, "".join(f"{fingerprint(c)}\n" for c in changes))
