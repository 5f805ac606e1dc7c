"""Atomic verified writes and the signed anchor, on an ordinary directory (no root needed)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aidepy.atomic import atomic_write
from aidepy.errors import VerificationError
from aidepy.vault.anchor import Anchor, check_disk_copy, decode_anchor, encode_anchor


def test_atomic_write_replaces_the_file_and_returns_its_digest(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    written = atomic_write(tmp_path, "f", [b"new ", b"content"], mode=0o600)
    assert (tmp_path / "f").read_bytes() == b"new content"
    assert written.size == 11 and written.sha256 == hashlib.sha256(b"new content").digest()
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_file_that_fails_verification_never_replaces_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def refuse(path: Path) -> None:
        assert path.read_bytes() == b"bad"  # the verifier sees the complete new file
        raise VerificationError("does not verify")

    with pytest.raises(VerificationError):
        atomic_write(tmp_path, "f", [b"bad"], verify=refuse)
    assert (tmp_path / "f").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failing_producer_leaves_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("scan failed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path, "f", chunks())
    assert (tmp_path / "f").read_bytes() == b"old" and not (tmp_path / ".f.tmp").exists()


def test_a_leftover_temp_file_is_cleaned_by_the_next_write(tmp_path: Path) -> None:
    (tmp_path / ".f.tmp").write_bytes(b"left by a killed writer")
    atomic_write(tmp_path, "sub/f", [b"x"])  # subdirectories are created
    atomic_write(tmp_path, "f", [b"y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "sub"]


ANCHOR = Anchor(path="/var/lib/aidepy/aidepy.db", sha256="ab" * 32, size=123, created=1_700_000_000,
                generation=4)


def test_anchor_round_trips_and_refuses_tampering_and_other_keys() -> None:
    key = Ed25519PrivateKey.generate()
    data = encode_anchor(ANCHOR, key)
    assert data.startswith(b"aidepy-anchor 1\n") and decode_anchor(data, key.public_key()) == ANCHOR
    tampered = data.replace(b'"generation": 4', b'"generation": 9')
    with pytest.raises(VerificationError, match="signature does not verify"):
        decode_anchor(tampered, key.public_key())
    with pytest.raises(VerificationError, match="signature does not verify"):
        decode_anchor(data, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError, match="not an aidepy anchor"):
        decode_anchor(b"aidepy-anchor 2\n" + data.split(b"\n", 1)[1], key.public_key())
    with pytest.raises(VerificationError, match="malformed"):
        decode_anchor(data + b"extra\n", key.public_key())


def test_the_disk_copy_must_match_the_anchor(tmp_path: Path) -> None:
    disk = tmp_path / "aidepy.db"
    disk.write_bytes(b"signed database bytes")
    anchor = Anchor(str(disk), hashlib.sha256(disk.read_bytes()).hexdigest(), disk.stat().st_size, 1, 1)
    assert check_disk_copy(anchor) == disk
    disk.write_bytes(b"signed database byteS")  # same size, other content
    with pytest.raises(VerificationError, match="does not match the vault's anchor"):
        check_disk_copy(anchor)
    disk.unlink()
    with pytest.raises(VerificationError, match="No such file"):
        check_disk_copy(anchor)
