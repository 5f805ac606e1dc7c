"""Rollback protection: the newest generation this host has verified, one per baseline identity.

An attacker who owns the host cannot write the vault, but could put back an older, validly
signed baseline (say, an anchored disk copy). Every authenticated baseline's generation is
remembered in the state directory under the baseline's identity (the signing key's fingerprint,
plus the vault's file system UUID when it comes from a vault), and an older one is refused.
Unrelated databases never interfere; an unsigned one has no identity and is not recorded.

The record, `generations.seen`, holds one line per identity: `<key fingerprint> <vault UUID or
-> <generation>`. Earlier versions kept one number in `generation.seen`; `Record.adopt_legacy`
carries it over to the baseline it was written for.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from aidepy import state
from aidepy.atomic import replace_text
from aidepy.errors import RollbackError, UnsafeLayoutError

_NO_VAULT = "-"


@dataclass(frozen=True, order=True)
class Identity:
    """Whose generations a record line counts: a signing key, on a vault or not."""

    key: str
    """The fingerprint of the key the baseline verified against (`SHA256:...`)."""
    vault: str | None = None
    """The vault's file system UUID (or another stable name of the medium), None off the vault."""

    def __str__(self) -> str:
        return self.key if self.vault is None else f"{self.key} on vault {self.vault}"


def parse_record(text: str) -> dict[Identity, int]:
    """The record's lines; raises ValueError naming the first malformed line."""
    seen: dict[Identity, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 3 or not fields[0].startswith("SHA256:") or not fields[2].isdigit():
            raise ValueError(f"line {number} is malformed")
        identity = Identity(fields[0], None if fields[1] == _NO_VAULT else fields[1])
        seen[identity] = max(int(fields[2]), seen.get(identity, 0))
    return seen


def encode_record(seen: dict[Identity, int]) -> str:
    return "".join(f"{i.key} {i.vault or _NO_VAULT} {g}\n" for i, g in sorted(seen.items()))


@dataclass
class Record:
    """The rollback record of one state directory, as read (see `Record.read`)."""

    state_dir: Path
    seen: dict[Identity, int] = field(default_factory=dict)
    problem: str | None = None
    """Why the record could not be used (it is then treated as empty, and the report says so)."""
    legacy: int | None = None
    """The single generation an earlier aidepy recorded (`generation.seen`), if any."""
    adopted: bool = False
    """Whether `legacy` now counts for a baseline identity (its file goes at the next write)."""

    @classmethod
    def read(cls, state_dir: Path) -> Record:
        record = cls(state_dir)
        path = state_dir / state.ROLLBACK_RECORD
        try:
            record.seen = parse_record(state.read_bytes(path).decode(errors="replace"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, UnsafeLayoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            record.problem = f"the rollback record {path} cannot be used ({reason})"
        with suppress(OSError, ValueError, UnsafeLayoutError):
            record.legacy = int(state.read_bytes(state_dir / state.LEGACY_ROLLBACK_RECORD).strip())
        return record

    def adopt_legacy(self, identity: Identity) -> None:
        """Count the earlier single-number record as `identity`'s (the baseline it protected)."""
        if self.legacy is not None:
            self.seen[identity] = max(self.seen.get(identity, 0), self.legacy)
            self.adopted = True

    def newest(self, identity: Identity) -> int:
        """The newest generation verified for `identity` (0: none recorded)."""
        return self.seen.get(identity, 0)

    def refuse_rollback(self, identity: Identity, generation: int) -> None:
        """Raise `RollbackError` if a newer generation of `identity` was verified before."""
        newest = self.newest(identity)
        if generation < newest:
            raise RollbackError(
                f"rollback: the baseline is generation {generation}, but this host has already "
                f"verified generation {newest} of the baselines signed by {identity}")

    def record(self, identity: Identity, generation: int) -> None:
        """Remember `generation` for `identity` (atomically) if it is newer; a record carried
        over from an earlier version is removed once the new one holds it. Raises OSError."""
        if generation <= self.newest(identity) and not self.adopted and self.problem is None:
            return
        self.seen[identity] = max(generation, self.newest(identity))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        replace_text(self.state_dir / state.ROLLBACK_RECORD, encode_record(self.seen))
        self.problem = None
        if self.adopted:
            (self.state_dir / state.LEGACY_ROLLBACK_RECORD).unlink(missing_ok=True)
            self.legacy, self.adopted = None, False
