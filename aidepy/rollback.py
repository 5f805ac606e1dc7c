"""Rollback protection: the newest baseline generation this host has verified.

An attacker who owns the host cannot write the vault, but could put back an older, validly
signed baseline (say, from an anchored disk copy). Every verified baseline's generation is
remembered in the state directory; an older one is refused.
"""

from __future__ import annotations

from pathlib import Path

from aidepy.atomic import replace_text
from aidepy.errors import VerificationError

SEEN_GENERATION = "generation.seen"


def newest_seen(state_dir: Path) -> int:
    """The newest baseline generation verified on this host (0: none yet)."""
    try:
        return int((state_dir / SEEN_GENERATION).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def record_seen(state_dir: Path, generation: int) -> None:
    """Remember `generation` as the newest seen (atomically) if it is newer."""
    if generation <= newest_seen(state_dir):
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    replace_text(state_dir / SEEN_GENERATION, f"{generation}\n")


def refuse_rollback(state_dir: Path, generation: int) -> None:
    """Raise `VerificationError` if a newer generation than `generation` was verified before."""
    seen = newest_seen(state_dir)
    if generation < seen:
        raise VerificationError(
            f"rollback: the baseline is generation {generation}, but this host has already "
            f"verified generation {seen}")
