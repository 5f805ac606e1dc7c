"""A baseline that was changed, cut, re-signed, or is not ours is refused, whole, with the reason."""

from __future__ import annotations

import hashlib
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aidepy.db.file import open_database, write_database
from aidepy.db.format import SIGNATURE_CONTEXT, TAIL_SIZE
from aidepy.entry import Entry
from aidepy.errors import ExitCode, UnsupportedFormatError, VerificationError
from aidepy.keys import raw_public

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ENTRIES = [
    Entry(b"/etc", "d", frozenset({"p", "u", "g", "m"}), {"p": 0o40755, "u": 0, "g": 0, "m": 10**18}),
    Entry(b"/etc/passwd", "f", frozenset({"p", "s", "sha256"}),
          {"p": 0o100644, "s": 1234, "sha256": hashlib.sha256(b"passwd").digest()}),
    Entry(b"/etc/shadow\xff", "f", frozenset({"p", "s", "sha256", "S"}),
          {"p": 0o100640, "s": 0, "sha256": None}),
    Entry(b"/etc/vim", "l", frozenset({"l"}), {"l": b"/usr/share/vim"}),
]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small database signed with KEY."""
    path = tmp_path_factory.mktemp("db") / "aidepy.db"
    write_database(path, ENTRIES, host="web1", rules_digest=bytes(32), generation=4, signing_key=KEY,
                   created=1_800_000_000)
    return path.read_bytes()


def refusal(path: Path, data: bytes, key: Ed25519PrivateKey | None = KEY) -> VerificationError:
    """Write `data` to `path`, open it, and return the refusal (fail if it was accepted)."""
    path.write_bytes(data)
    with pytest.raises(VerificationError) as info:
        open_database(path, key.public_key() if key else None)
    return info.value


def reseal(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """Recompute digest and signature over changed bytes, as a holder of `key` could."""
    signer = data[-TAIL_SIZE:-96]
    body = data[:-TAIL_SIZE] + signer
    digest = hashlib.sha256(body).digest()
    return body + digest + key.sign(SIGNATURE_CONTEXT + digest)


def test_the_untouched_database_verifies(tmp_path: Path, signed: bytes) -> None:
    (tmp_path / "db").write_bytes(signed)
    with open_database(tmp_path / "db", KEY.public_key()) as db:
        assert list(db.entries()) == ENTRIES
        assert db.signed and db.authenticated and db.header.generation == 4


def test_every_single_byte_change_is_refused(tmp_path: Path, signed: bytes) -> None:
    path = tmp_path / "db"
    size = len(signed)
    for offset in range(size):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(signed)
            changed[offset] ^= flip
            error = refusal(path, bytes(changed))
            assert error.exit_code == ExitCode.VERIFICATION_FAILED
            reason = str(error)
            assert reason.startswith(f"{path}: ")
            if offset < 8:
                assert "not an aidepy database" in reason, (offset, reason)
            elif offset < size - 64:
                assert "digest mismatch" in reason, (offset, reason)
            else:
                assert "signature does not verify" in reason, (offset, reason)


def test_any_other_version_or_scheme_byte_is_refused_as_tampering(tmp_path: Path, signed: bytes) -> None:
    for offset in (8, 9, len(signed) - TAIL_SIZE):
        for value in range(256):
            if value == signed[offset]:
                continue
            changed = bytearray(signed)
            changed[offset] = value
            error = refusal(tmp_path / "db", bytes(changed))
            assert error.exit_code == ExitCode.VERIFICATION_FAILED and "digest mismatch" in str(error)


def test_a_truncated_database_is_refused_at_every_length(tmp_path: Path, signed: bytes) -> None:
    for length in range(len(signed)):
        error = refusal(tmp_path / "db", signed[:length])
        assert error.exit_code == ExitCode.VERIFICATION_FAILED
        assert any(word in str(error) for word in ("empty file", "truncated", "digest mismatch")), str(error)


def test_appended_bytes_are_refused(tmp_path: Path, signed: bytes) -> None:
    for extra in (b"\0", b"x" * 200):
        assert "digest mismatch" in str(refusal(tmp_path / "db", signed + extra))


def test_a_database_signed_by_another_key_is_refused(tmp_path: Path, signed: bytes) -> None:
    other = Ed25519PrivateKey.generate()
    (tmp_path / "db").write_bytes(signed)
    with pytest.raises(VerificationError, match="signed by another key") as info:
        open_database(tmp_path / "db", other.public_key())
    assert info.value.exit_code == ExitCode.VERIFICATION_FAILED


def test_a_database_re_signed_by_another_key_is_refused(tmp_path: Path, signed: bytes) -> None:
    # The attacker's own key in the file, a valid signature by it: still not the configured key.
    intruder = Ed25519PrivateKey.generate()
    raw = raw_public(intruder.public_key())
    forged = signed[:-TAIL_SIZE] + b"\x01" + raw + bytes(96)
    error = refusal(tmp_path / "db", reseal(forged, intruder))
    assert "signed by another key" in str(error) and error.exit_code == ExitCode.VERIFICATION_FAILED


def test_an_unsigned_database_is_refused_when_a_key_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "db"
    write_database(path, ENTRIES, host="h", rules_digest=b"", generation=1, signing_key=None)
    with pytest.raises(VerificationError, match="unsigned, but a public key is configured") as info:
        open_database(path, KEY.public_key())
    assert info.value.exit_code == ExitCode.VERIFICATION_FAILED
    with open_database(path, None) as db:  # the caller reports it as unsigned
        assert not db.signed and db.key_fingerprint is None


def test_a_stripped_signature_makes_an_unsigned_database(tmp_path: Path, signed: bytes) -> None:
    stripped = signed[:-TAIL_SIZE] + bytes(TAIL_SIZE)
    body = stripped[:-96]
    stripped = body + hashlib.sha256(body).digest() + bytes(64)
    assert "unsigned, but a public key is configured" in str(refusal(tmp_path / "db", stripped))


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file, not an aidepy database"),
    (b"\x1f\x8b\x08\x00" + bytes(300), "gzip file, probably AIDE's own database"),
    (b"@@begin_db\n# This file was generated by Aide, version 0.18.3\n" * 5, "AIDE's own (uncompressed)"),
    (b"root:x:0:0:root:/root:/bin/bash\n" * 20, "not an aidepy database (unknown file type)"),
])
def test_foreign_files_are_named(tmp_path: Path, content: bytes, reason: str) -> None:
    error = refusal(tmp_path / "db", content)
    assert reason in str(error) and error.exit_code == ExitCode.VERIFICATION_FAILED


@pytest.mark.parametrize("gzip", ["yes", "no"])
def test_aides_own_database_is_refused_as_such(tmp_path: Path, gzip: str) -> None:
    aide = require_tool("aide")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "file").write_text("x")
    conf = tmp_path / "aide.conf"
    conf.write_text(f"database_out=file:{tmp_path}/aide.db\ngzip_dbout={gzip}\nreport_url=stdout\n"
                    f"{tmp_path}/tree p+sha256\n")
    subprocess.run([aide, "-i", "-c", str(conf)], capture_output=True, check=False)
    data = (tmp_path / "aide.db").read_bytes()
    error = refusal(tmp_path / "db", data)
    assert "AIDE's own" in str(error) and "aidepy init" in str(error)


def test_a_newer_format_is_a_version_mismatch(tmp_path: Path, signed: bytes) -> None:
    newer = reseal(signed[:8] + b"\x00\x02" + signed[10:], KEY)
    error = refusal(tmp_path / "db", newer)
    assert isinstance(error, UnsupportedFormatError)
    assert error.exit_code == ExitCode.VERSION_MISMATCH
    assert "written by a newer aidepy" in str(error) and "version 2" in str(error)


def test_an_attribute_unknown_to_this_aidepy_is_a_version_mismatch(tmp_path: Path, signed: bytes) -> None:
    assert signed.count(b"\x06sha256") == 1
    newer = reseal(signed.replace(b"\x06sha256", b"\x06sha999"), KEY)
    error = refusal(tmp_path / "db", newer)
    assert error.exit_code == ExitCode.VERSION_MISMATCH and "sha999" in str(error)


def test_a_sealed_but_malformed_database_is_refused_for_its_structure(tmp_path: Path, signed: bytes) -> None:
    # A holder of the key who writes nonsense still gets nothing used.
    no_end_mark = reseal(signed[:-TAIL_SIZE - 4] + signed[-TAIL_SIZE:], KEY)
    assert "structure" in str(refusal(tmp_path / "db", no_end_mark))
    junk_after = reseal(signed[:-TAIL_SIZE] + b"junk" + signed[-TAIL_SIZE:], KEY)
    assert "structure" in str(refusal(tmp_path / "db", junk_after))
    header_length = int.from_bytes(signed[10:14], "big")
    count_at = 14 + header_length - 1  # the entry count is the header's last byte (a small varint)
    assert signed[count_at] == len(ENTRIES)
    more = bytearray(signed)
    more[count_at] += 1
    error = refusal(tmp_path / "db", reseal(bytes(more), KEY))
    assert "structure: header promises 5 entries, body holds 4" in str(error)


def test_a_header_only_open_leaves_the_records_to_the_stream(tmp_path: Path, signed: bytes) -> None:
    # check_records=False (what init uses for the generation number) still verifies digest and
    # signature, and a malformed record is still refused as soon as the stream reaches it
    path = tmp_path / "db"
    path.write_bytes(reseal(signed[:-TAIL_SIZE] + b"junk" + signed[-TAIL_SIZE:], KEY))
    with open_database(path, KEY.public_key(), check_records=False) as db:
        assert db.header.generation == 4
        with pytest.raises(VerificationError, match="structure"):
            list(db.entries())
    tampered = bytearray(signed)
    tampered[20] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(VerificationError, match="digest mismatch"):
        open_database(path, KEY.public_key(), check_records=False)


def test_a_change_after_verification_is_caught_before_the_last_entry(tmp_path: Path, signed: bytes) -> None:
    path = tmp_path / "db"
    path.write_bytes(signed)
    with open_database(path, KEY.public_key()) as db:
        with path.open("r+b") as f:  # in place: the same inode the database holds open
            f.seek(len(signed) - 1)
            f.write(bytes([signed[-1] ^ 1]))
        seen = []
        with pytest.raises(VerificationError, match="changed since it was verified") as info:
            for entry in db.entries():
                seen.append(entry)
        assert info.value.exit_code == ExitCode.VERIFICATION_FAILED
        assert seen == ENTRIES[:-1]


def test_a_body_change_after_verification_is_caught(tmp_path: Path, signed: bytes) -> None:
    path = tmp_path / "db"
    path.write_bytes(signed)
    with open_database(path, KEY.public_key()) as db:
        with path.open("r+b") as f:
            f.seek(len(signed) - TAIL_SIZE - 20)
            f.write(b"\xff")
        with pytest.raises(VerificationError) as info:
            list(db.entries())
        assert info.value.exit_code == ExitCode.VERIFICATION_FAILED
        assert str(info.value).startswith(f"{path}: ")


def test_a_sealed_body_with_any_byte_changed_is_read_or_refused_never_crashes(
    tmp_path: Path, signed: bytes,
) -> None:
    # The key holder's own mistakes (or a crafted unsigned file) must end in a clean refusal.
    path = tmp_path / "db"
    for offset in range(10, len(signed) - TAIL_SIZE):
        for flip in (0x01, 0xFF):
            changed = bytearray(signed)
            changed[offset] ^= flip
            path.write_bytes(reseal(bytes(changed), KEY))
            try:
                with open_database(path, KEY.public_key()) as db:
                    assert len(list(db.entries())) == db.header.entry_count
            except VerificationError as error:
                assert str(error).startswith(f"{path}: ")


def test_a_column_this_version_does_not_define_is_refused(tmp_path: Path, signed: bytes) -> None:
    header_end = 14 + int.from_bytes(signed[10:14], "big")
    length = int.from_bytes(signed[header_end:header_end + 4], "big")
    payload = signed[header_end + 4:header_end + 4 + length]
    pos = 1  # past the entry count (one byte for a small block)
    while payload[pos] < 16:  # column ids 0-5, each: id, length (one byte each here), bytes
        pos += 2 + payload[pos + 1]
    squeezed = payload[:pos] + bytes([7, 0]) + payload[pos:]
    forged = (signed[:header_end] + len(squeezed).to_bytes(4, "big") + squeezed
              + signed[header_end + 4 + length:])
    error = refusal(tmp_path / "db", reseal(forged, KEY))
    assert "structure: unexpected column 7" in str(error)


def test_a_sealed_path_holding_nul_is_refused(tmp_path: Path, signed: bytes) -> None:
    # No file name holds NUL, and the canonical order reads "/" as NUL: such a path could hide
    # another entry's place. Rewrite the suffix column (id 1) of the one block with a NUL in
    # "/etc/passwd"; the column stays a valid zlib stream, only the path is wrong.
    header_end = 14 + int.from_bytes(signed[10:14], "big")
    length = int.from_bytes(signed[header_end:header_end + 4], "big")
    payload = signed[header_end + 4:header_end + 4 + length]
    pos = 1
    while payload[pos] != 1:  # column ids and lengths are one byte each in this small block
        pos += 2 + payload[pos + 1]
    column = zlib.decompressobj().decompress(payload[pos + 2:pos + 2 + payload[pos + 1]])
    assert column.count(b"passwd") == 1
    packer = zlib.compressobj()
    forged_column = packer.compress(column.replace(b"passwd", b"pas\0wd")) + packer.flush(zlib.Z_SYNC_FLUSH)
    squeezed = (payload[:pos] + bytes([1, len(forged_column)]) + forged_column
                + payload[pos + 2 + payload[pos + 1]:])
    forged = (signed[:header_end] + len(squeezed).to_bytes(4, "big") + squeezed
              + signed[header_end + 4 + length:])
    error = refusal(tmp_path / "db", reseal(forged, KEY))
    assert "structure: entry 2 (b'/etc/pas\\x00wd') holds a NUL byte" in str(error)
