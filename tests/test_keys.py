"""Signing keys: keygen writes a protected pair, loading refuses what it must, fingerprints are stable."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pexpect
import pytest
from conftest import AIDEPY, NOBODY, requires_root
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aidepy.cli.keygen import ask_new_passphrase
from aidepy.errors import ExitCode, KeyFileError, PassphraseError
from aidepy.keys import (
    fingerprint,
    generate_keypair,
    load_private_key,
    load_public_key,
    public_key_beside,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_pair_loads_and_matches(tmp_path: Path) -> None:
    public = generate_keypair(tmp_path / "signing.key", b"correct horse")
    assert mode(tmp_path / "signing.key") == 0o600
    assert (tmp_path / "signing.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    private = load_private_key(tmp_path / "signing.key", b"correct horse")
    loaded = load_public_key(public_key_beside(tmp_path / "signing.key"))
    assert fingerprint(private.public_key()) == fingerprint(public) == fingerprint(loaded)
    loaded.verify(private.sign(b"m"), b"m")


def test_fingerprint_is_sha256_of_the_raw_key_in_base64() -> None:
    key = Ed25519PublicKey.from_public_bytes(bytes(32))
    # sha256 of 32 zero bytes, base64 without padding
    assert fingerprint(key) == "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"


def test_unencrypted_key_needs_no_passphrase(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k", None)
    assert (tmp_path / "k").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(load_private_key(tmp_path / "k", None), Ed25519PrivateKey)
    with pytest.raises(PassphraseError, match="not encrypted"):
        load_private_key(tmp_path / "k", b"pw")


def test_wrong_or_missing_passphrase_is_refused(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k", b"right")
    with pytest.raises(PassphraseError, match="wrong passphrase") as info:
        load_private_key(tmp_path / "k", b"wrong")
    assert info.value.exit_code == ExitCode.INVALID_ARGUMENT
    with pytest.raises(PassphraseError, match="a passphrase is needed"):
        load_private_key(tmp_path / "k", None)


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_a_key_others_can_reach_is_refused_with_its_mode(tmp_path: Path, bits: int) -> None:
    generate_keypair(tmp_path / "k", None)
    os.chmod(tmp_path / "k", bits)
    with pytest.raises(KeyFileError, match=f"accessible by group or others \\(mode {bits:04o}\\)"):
        load_private_key(tmp_path / "k", None)


@requires_root
def test_a_key_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """Whoever owns the key file could have put their own key there (mode 0600 or not)."""
    generate_keypair(tmp_path / "k", None)
    os.chown(tmp_path / "k", NOBODY, NOBODY)
    with pytest.raises(KeyFileError, match=f"owned by another user \\(uid {NOBODY}\\)"):
        load_private_key(tmp_path / "k", None)
    os.chown(tmp_path / "k", 0, 0)
    load_private_key(tmp_path / "k", None)  # root's own: accepted


def test_an_existing_key_is_never_replaced_without_overwrite(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path / "k", None)
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_keypair(tmp_path / "k", None)
    assert (tmp_path / "k").read_bytes() == before
    (tmp_path / "k").unlink()  # a lone .pub is protected too
    with pytest.raises(KeyFileError, match=r"k\.pub exists"):
        generate_keypair(tmp_path / "k", None)
    second = generate_keypair(tmp_path / "k", None, overwrite=True)
    assert fingerprint(second) != fingerprint(first)
    assert sorted(os.listdir(tmp_path)) == ["k", "k.pub"]


def test_files_that_are_not_keys_are_named(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("hello\n")
    os.chmod(tmp_path / "junk", 0o600)
    with pytest.raises(KeyFileError, match="not a PKCS#8 PEM private key"):
        load_private_key(tmp_path / "junk", None)
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(tmp_path / "junk")
    with pytest.raises(KeyFileError, match="no such private key"):
        load_private_key(tmp_path / "absent", None)
    with pytest.raises(KeyFileError, match="no such public key"):
        load_public_key(tmp_path / "absent.pub")


def test_passphrase_prompt_asks_twice_and_refuses_a_mismatch() -> None:
    answers = iter(["one", "one"])
    assert ask_new_passphrase(lambda prompt: next(answers)) == b"one"
    answers = iter(["one", "two"])
    with pytest.raises(PassphraseError, match="differ"):
        ask_new_passphrase(lambda prompt: next(answers))
    with pytest.raises(PassphraseError, match="empty"):
        ask_new_passphrase(lambda prompt: "")


def keygen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIDEPY, "keygen", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)


def test_keygen_with_a_passphrase_file_prints_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("s3cret phrase\nignored second line\n")
    result = keygen("--out", str(tmp_path / "signing.key"), "--passphrase-file", str(tmp_path / "pass"),
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    key = load_private_key(tmp_path / "signing.key", b"s3cret phrase")
    assert f"fingerprint: {fingerprint(key.public_key())}" in result.stdout
    assert mode(tmp_path / "signing.key") == 0o600


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = str(tmp_path / "k")
    assert keygen("--out", out, "--no-passphrase", cwd=tmp_path).returncode == 0
    before = (tmp_path / "k").read_bytes()
    again = keygen("--out", out, "--no-passphrase", cwd=tmp_path)
    assert again.returncode == ExitCode.IO_ERROR and "refusing to overwrite" in again.stderr
    assert (tmp_path / "k").read_bytes() == before
    forced = keygen("--out", out, "--no-passphrase", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and (tmp_path / "k").read_bytes() != before


def test_keygen_without_a_terminal_needs_a_passphrase_choice(tmp_path: Path) -> None:
    result = keygen("--out", str(tmp_path / "k"), cwd=tmp_path)
    assert result.returncode == ExitCode.INVALID_ARGUMENT
    assert "no terminal to ask for a passphrase" in result.stderr
    assert not (tmp_path / "k").exists()


def test_keygen_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    child = pexpect.spawn(AIDEPY[0], [*AIDEPY[1:], "keygen", "--out", str(tmp_path / "k")],
                          cwd=str(tmp_path), timeout=30, encoding="utf-8")
    child.expect("New passphrase for the signing key: ")
    child.sendline("typed at the console")
    child.expect("Repeat the passphrase: ")
    child.sendline("typed at the console")
    child.expect("fingerprint: SHA256:")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    load_private_key(tmp_path / "k", b"typed at the console")


def test_keygen_help_explains_itself() -> None:
    result = subprocess.run([*AIDEPY, "keygen", "--help"], capture_output=True, text=True, check=True)
    for phrase in ("PKCS#8", "FILE.pub", "--passphrase-file", "--no-passphrase", "--force", "Exit status"):
        assert phrase in result.stdout


def test_keygen_creates_a_missing_key_directory(tmp_path: Path) -> None:
    from aidepy.keys import generate_keypair, load_private_key

    key = tmp_path / "etc" / "aidepy" / "signing.key"
    generate_keypair(key, None)
    assert (key.stat().st_mode & 0o777) == 0o600
    assert load_private_key(key, None) is not None
