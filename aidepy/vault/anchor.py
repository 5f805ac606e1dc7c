"""The anchor: a small signed record on the vault that pins a database kept on disk.

Used when the signed database is larger than the vault ("anchored" layout): the database
lives under the state directory and the vault holds only its digest, size, creation time and
generation, signed with the same Ed25519 key. A check trusts the disk copy only if it matches.

Format (UTF-8 text, three lines, each ending in "\\n"):
    aidepy-anchor 1
    {"created": 1764045000, "generation": 3, "path": "/var/lib/aidepy/aidepy.db",
     "sha256": "<64 hex digits>", "size": 123456}            <- one line, keys sorted
    ed25519 <base64 signature of the first two lines, newlines included>
A reader refuses any other first line (the version rule: a new format gets a new number).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aidepy.errors import AnchoredCopyError, UnsafeLayoutError, VerificationError
from aidepy.state import open_regular

MAGIC = b"aidepy-anchor 1\n"
SIGNATURE_PREFIX = b"ed25519 "
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Anchor:
    """What the vault knows about a database kept on disk."""

    path: str
    sha256: str
    size: int
    created: int
    generation: int


def encode_anchor(anchor: Anchor, key: Ed25519PrivateKey) -> bytes:
    """The signed anchor file's bytes."""
    body = MAGIC + json.dumps(asdict(anchor), sort_keys=True).encode() + b"\n"
    return body + SIGNATURE_PREFIX + base64.b64encode(key.sign(body)) + b"\n"


def decode_anchor(data: bytes, key: Ed25519PublicKey) -> Anchor:
    """Parse and verify an anchor; raises VerificationError saying what is wrong."""
    if not data.startswith(MAGIC):
        raise VerificationError("anchor: not an aidepy anchor (version 1)")
    lines = data.split(b"\n")
    if len(lines) != 4 or lines[3] or not lines[2].startswith(SIGNATURE_PREFIX):
        raise VerificationError("anchor: malformed")
    body = lines[0] + b"\n" + lines[1] + b"\n"
    try:
        key.verify(base64.b64decode(lines[2][len(SIGNATURE_PREFIX):], validate=True), body)
    except (InvalidSignature, binascii.Error):
        raise VerificationError("anchor: signature does not verify with the vault's public key") from None
    try:
        fields = json.loads(lines[1])
        return Anchor(
            path=str(fields["path"]), sha256=str(fields["sha256"]), size=int(fields["size"]),
            created=int(fields["created"]), generation=int(fields["generation"]),
        )
    except (ValueError, KeyError, TypeError):
        raise VerificationError("anchor: signed but malformed") from None


def check_disk_copy(anchor: Anchor, path: Path | None = None) -> Path:
    """Verify that the database on disk is the one the anchor pins; returns its path."""
    target = path or Path(anchor.path)
    digest = hashlib.sha256()
    size = 0
    try:  # not through a link, and a FIFO put in its place must not hang the run
        with os.fdopen(open_regular(target), "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except UnsafeLayoutError as exc:
        raise AnchoredCopyError(f"anchored database {exc}") from None
    except OSError as exc:
        raise AnchoredCopyError(f"anchored database {target}: {exc.strerror}") from None
    if size != anchor.size or digest.hexdigest() != anchor.sha256:
        raise AnchoredCopyError(
            f"anchored database {target} does not match the vault's anchor (it has {size} bytes, "
            f"sha256 {digest.hexdigest()[:16]}…; the anchor says {anchor.size} bytes, "
            f"sha256 {anchor.sha256[:16]}…, generation {anchor.generation})"
        )
    return target
