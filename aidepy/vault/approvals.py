"""The approval log: who approved which baseline, signed and chained, on the vault.

Every promote appends one record before it installs the new baseline: the generation, when
(UTC), who at which terminal, how many changes were accepted and kept, each accepted path with
the digests of its old and new records, and the admin's comment. A record is signed with the
baseline's key and carries the SHA-256 of the record before it, so none can be edited,
removed, inserted or moved without `verify` saying so. A record whose baseline was never
installed (promote stopped in between) stays: it approved, nothing more; the next promote
approves that generation again, so generations never decrease but may repeat.

Format (ASCII text, one record a line, each ending in "\\n"):
    aidepy-approvals 1
    <body> ed25519 <base64 signature of body>
The body is compact JSON with sorted keys, ASCII only:
    {"accepted": 2, "comment": "openssl update" | null, "generation": 4, "key": "SHA256:...",
     "kept": 1, "paths": [{"new": "<hex>" | null, "old": "<hex>" | null, "path": "/etc/x"}],
     "previous": "<hex>" | null, "time": "2026-12-05T07:33:05Z", "tty": "/dev/pts/0" | null,
     "user": "root"}
`previous` is the SHA-256 of the previous record's line (body, signature and newline), null in
the first record; generations never decrease. A path is written as the JSON report writes it
(lossless: a byte that is not UTF-8 as a lone surrogate); its digests are the SHA-256 of its
old and new entries' canonical JSON (`entry_digest`; null: added or removed).

Where it lives: `approvals.log` on the vault; once it outgrows the vault, `approvals.RECORDS.log`
under state_dir, pinned by the signed anchor `approvals.anchor` on the vault (the format of
`aidepy.vault.anchor`). An anchored log stays anchored. A reader refuses any other first line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from aidepy.atomic import fsync_dir
from aidepy.compare import Change, ChangeKind
from aidepy.entry import Entry
from aidepy.errors import AidepyError, ApprovalLogError, VerificationError
from aidepy.keys import fingerprint
from aidepy.report.escape import escape_path, json_path
from aidepy.report.json_report import json_value
from aidepy.state import ANCHORED_APPROVALS, open_regular
from aidepy.vault.anchor import Anchor, decode_anchor, encode_anchor
from aidepy.vault.layout import APPROVALS, APPROVALS_ANCHOR

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from aidepy.vault.vault import Vault

MAGIC = b"aidepy-approvals 1\n"
SIGNATURE = b" ed25519 "


@dataclass(frozen=True)
class ApprovedPath:
    """An accepted change: the path, and the digests of its old and new records."""

    path: bytes
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Approval:
    """One record of the log."""

    generation: int
    time: str
    """UTC, ISO 8601 (`2026-12-05T07:33:05Z`)."""
    user: str
    tty: str | None
    accepted: int
    kept: int
    paths: tuple[ApprovedPath, ...]
    comment: str | None
    key: str
    """The fingerprint of the key that signed the record."""
    previous: str | None = None
    """The SHA-256 (hex) of the previous record's line; None for the first."""

    def describe(self) -> str:
        """`generation 4, 2026-12-05T07:33:05Z by root on /dev/pts/0: 2 accepted, 1 kept — why`."""
        text = f"generation {self.generation}, {_shown(self.time)} by {self._who}: {self._counts}"
        return f"{text} — {_shown(self.comment)}" if self.comment else text

    @property
    def _who(self) -> str:
        return f"{_shown(self.user)} on {_shown(self.tty) if self.tty else 'no terminal'}"

    @property
    def _counts(self) -> str:
        return f"{self.accepted} accepted, {self.kept} kept"

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON takes it (paths lossless, as the JSON report writes them)."""
        return {"accepted": self.accepted, "comment": self.comment, "generation": self.generation,
                "key": self.key, "kept": self.kept, "previous": self.previous, "time": self.time,
                "tty": self.tty, "user": self.user,
                "paths": [{"new": p.new, "old": p.old, "path": json_path(p.path)} for p in self.paths]}

    def text(self) -> str:
        """The record for a terminal: a summary line, the comment, one line per path."""
        lines = [f"Approval: generation {self.generation}", f"  time      {_shown(self.time)}",
                 f"  by        {self._who}", f"  changes   {self._counts}",
                 f"  comment   {_shown(self.comment or '-')}", f"  signed by {_shown(self.key)}"]
        lines += [f"  {_short(p.old)} -> {_short(p.new)}  {escape_path(p.path)}" for p in self.paths]
        return "\n".join(lines) + "\n"


def _shown(text: str) -> str:
    """Text from a record for a terminal or a mail: control characters escaped, as in paths."""
    return escape_path(text.encode("utf-8", "surrogateescape"))


def _short(digest: str | None) -> str:
    return _shown(digest[:16]) if digest else "-" * 16


def entry_digest(entry: Entry | None) -> str | None:
    """The SHA-256 (hex) of an entry's canonical JSON: its type, attributes and their values."""
    if entry is None:
        return None
    canonical = {"type": entry.ftype, "attrs": sorted(entry.attrs),
                 "values": {name: json_value(name, entry) for name in sorted(entry.values)}}
    return hashlib.sha256(_json(canonical)).hexdigest()


def approved_paths(changes: Iterable[Change], kept: Collection[bytes]) -> tuple[ApprovedPath, ...]:
    """The listed changes not kept, with their old and new digests."""
    return tuple(ApprovedPath(c.path, entry_digest(c.old), entry_digest(c.new)) for c in changes
                 if c.kind is not ChangeKind.ATTRIBUTES and c.path not in kept)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode_record(approval: Approval, key: Ed25519PrivateKey) -> bytes:
    """The signed line of `approval`."""
    body = _json(approval.as_dict())
    return body + SIGNATURE + base64.b64encode(key.sign(body)) + b"\n"


def record_digest(line: bytes) -> str:
    """What the next record's `previous` holds."""
    return hashlib.sha256(line).hexdigest()


def _lines(data: bytes) -> list[bytes]:
    """The record lines of a log whose header was checked, each with its newline (only "\n"
    ends a line; a last line without one is returned as it is)."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data[len(MAGIC):])


def append(log: bytes, approval: Approval, key: Ed25519PrivateKey) -> bytes:
    """`log` (verified; b"" when there is none yet) with `approval` signed and chained at its end."""
    lines = _lines(log) if log else []
    previous = record_digest(lines[-1]) if lines else None
    return (log or MAGIC) + encode_record(replace(approval, previous=previous), key)


def verify(data: bytes, key: Ed25519PublicKey) -> list[Approval]:
    """The records of the log `data`, each verified with `key` and against the one before it.
    Raises ApprovalLogError naming the record and what is wrong with it."""
    if not data.startswith(MAGIC):
        raise ApprovalLogError("the approval log is not an aidepy approval log (version 1)"
                               + (": it is empty (truncated)" if not data else ""))
    lines = _lines(data)
    if lines and not lines[-1].endswith(b"\n"):
        raise ApprovalLogError(f"the approval log's last record (record {len(lines)}) is truncated")
    expected_key = fingerprint(key)
    records: list[Approval] = []
    for n, line in enumerate(lines, 1):
        record = _verified(n, line, key, expected_key)
        what = f"record {n} (generation {record.generation})"
        if record.previous != (record_digest(lines[n - 2]) if n > 1 else None):
            raise ApprovalLogError(f"the approval log's chain is broken at {what}: it does not follow "
                                   + (f"record {n - 1}" if n > 1 else "the start of the log")
                                   + " (a record was removed, inserted or moved)")
        if records and record.generation < records[-1].generation:
            raise ApprovalLogError(f"the approval log's generations go backwards at {what}: "
                                   f"it follows generation {records[-1].generation}")
        records.append(record)
    return records


def _verified(n: int, line: bytes, key: Ed25519PublicKey, expected_key: str) -> Approval:
    body, sep, signature = line.rstrip(b"\n").rpartition(SIGNATURE)
    try:
        if not sep:
            raise ValueError("no signature")
        record = _parse(json.loads(body))
    except (ValueError, KeyError, TypeError):
        raise ApprovalLogError(f"the approval log's record {n} is malformed") from None
    if record.key != expected_key:
        raise ApprovalLogError(f"the approval log's record {n} (generation {record.generation}) is "
                               f"signed by key {record.key}, not the vault's key {expected_key}")
    try:
        key.verify(base64.b64decode(signature, validate=True), body)
    except (InvalidSignature, binascii.Error):
        raise ApprovalLogError(f"the approval log's record {n} (generation {record.generation}) has a "
                               "bad signature: it was changed after it was signed") from None
    return record


def _parse(fields: dict[str, Any]) -> Approval:
    def text(value: object) -> str | None:
        if value is not None and not isinstance(value, str):
            raise TypeError(value)
        return value

    def number(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(value)
        return value

    paths = tuple(ApprovedPath(str(text(p["path"])).encode("utf-8", "surrogateescape"), text(p["old"]),
                               text(p["new"])) for p in fields["paths"])
    return Approval(number(fields["generation"]), str(text(fields["time"])), str(text(fields["user"])),
                    text(fields["tty"]), number(fields["accepted"]), number(fields["kept"]), paths,
                    text(fields["comment"]), str(text(fields["key"])), text(fields["previous"]))


# -- on the vault ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalLog:
    """The verified log: its records, its bytes, and the disk copy an anchor pins (if anchored)."""

    records: tuple[Approval, ...]
    data: bytes
    anchored: Path | None = None

    @property
    def last(self) -> Approval | None:
        return self.records[-1] if self.records else None

    @property
    def generation(self) -> int:
        """The newest generation approved (0: none yet)."""
        return self.records[-1].generation if self.records else 0


def read_log(root: Path, key: Ed25519PublicKey) -> ApprovalLog:
    """The verified log on the vault mounted at `root` (anchored: the disk copy its anchor pins;
    none yet: no records). Raises ApprovalLogError."""
    anchor_path = root / APPROVALS_ANCHOR
    if anchor_path.exists():
        try:
            anchor = decode_anchor(anchor_path.read_bytes(), key)
        except VerificationError as exc:
            raise ApprovalLogError(f"the approval log's {exc}") from None
        data = _anchored_copy(anchor)
        log = ApprovalLog(tuple(verify(data, key)), data, Path(anchor.path))
        if log.generation != anchor.generation:
            raise ApprovalLogError(f"the approval log in {anchor.path} ends at generation {log.generation}, "
                                   f"its anchor says {anchor.generation}")
        return log
    path = root / APPROVALS
    if not path.exists():
        return ApprovalLog((), b"")
    data = path.read_bytes()
    return ApprovalLog(tuple(verify(data, key)), data)


def _anchored_copy(anchor: Anchor) -> bytes:
    """The bytes of the disk copy `anchor` pins, once they are the ones it pins (read once,
    not through a link, never blocking on a FIFO)."""
    try:
        with os.fdopen(open_regular(anchor.path), "rb") as f:
            data = f.read()
    except (AidepyError, OSError) as exc:
        raise ApprovalLogError(f"the approval log kept in {anchor.path}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != anchor.size or digest != anchor.sha256:
        raise ApprovalLogError(f"the approval log kept in {anchor.path} does not match the vault's anchor "
                               f"(it has {len(data)} bytes, sha256 {digest[:16]}…; the anchor says "
                               f"{anchor.size} bytes, sha256 {anchor.sha256[:16]}…)")
    return data


def write_on_vault(vault: Vault, data: bytes, key: Ed25519PublicKey) -> Path:
    """Write the log onto the read-write mounted vault (it must verify before it replaces the old
    one). Raises VaultFullError (old log intact) when it does not fit: then `write_anchored`."""
    written = vault.write_file(APPROVALS, [data], verify=lambda path: _check(verify(path.read_bytes(), key)))
    return written.path


def write_anchored(vault: Vault, copy: Path, data: bytes, records: Sequence[Approval], created: int,
                   key: Ed25519PrivateKey, state_dir: Path) -> Path:
    """The anchored layout: move `copy` (the log's bytes `data`, written and fsynced in promote's
    work directory) into `state_dir`, pin it with a signed anchor on the vault, then remove the
    vault's own log and the copies no anchor pins any more. Returns the copy's new path."""
    target = state_dir / ANCHORED_APPROVALS.format(records=len(records))
    os.replace(copy, target)
    fsync_dir(state_dir)
    anchor = Anchor(str(target.resolve()), hashlib.sha256(data).hexdigest(), len(data), created,
                    records[-1].generation)
    public = key.public_key()
    vault.write_file(APPROVALS_ANCHOR, [encode_anchor(anchor, key)],
                     verify=lambda path: _check(decode_anchor(path.read_bytes(), public) == anchor))
    vault.remove(APPROVALS)
    for old in state_dir.glob(ANCHORED_APPROVALS.format(records="*")):
        if old != target:
            old.unlink()
    return target


def _check(ok: object) -> None:
    if not ok:
        raise ApprovalLogError("the approval log reads back differently from what was written")


def baseline_note(log: ApprovalLog, generation: int) -> str | None:
    """What the log says about the baseline of `generation`, when it is not simply its last record."""
    last = log.last
    if last is None:
        return "the vault holds no approval log yet (the next promote starts it)"
    if last.generation > generation:
        return (f"generation {last.generation} was approved but its baseline never installed (promote was "
                f"interrupted); the baseline is generation {generation}")
    if last.generation < generation:
        return (f"the baseline (generation {generation}) has no record in the approval log: promote did not "
                "write it")
    return None
