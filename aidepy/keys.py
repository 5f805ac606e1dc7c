"""Signing keys: generate an Ed25519 key pair, load keys, print fingerprints.

The private key is PKCS#8 PEM, encrypted with a passphrase by default, mode 0600, and never
lives on the vault; the public key (SubjectPublicKeyInfo PEM) sits beside it as `<key>.pub`
and is copied to the vault. A fingerprint is `SHA256:` + unpadded base64 of the SHA-256 of
the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aidepy.errors import KeyFileError, PassphraseError


def public_key_beside(private_path: Path) -> Path:
    """Where the public key of `private_path` lives: `<private_path>.pub`."""
    return private_path.with_name(private_path.name + ".pub")


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of `public_key` (what `public_bytes_raw()` gives from cryptography 40 on;
    Debian 12 ships 38)."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`SHA256:<base64>` of the raw public key, as printed in every report."""
    digest = hashlib.sha256(raw_public(public_key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _write_new(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write `data` to `path` with `mode` atomically; without `overwrite`, never replace a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with EEXIST instead of replacing
    finally:
        Path(tmp).unlink(missing_ok=True)


def generate_keypair(
    private_path: Path, passphrase: bytes | None, *, overwrite: bool = False,
) -> Ed25519PublicKey:
    """Create a key pair: private key at `private_path` (0600), public key at `<private_path>.pub`.

    The private key is encrypted with `passphrase` unless it is None. An existing key file is
    refused (KeyFileError) unless `overwrite`.
    """
    private_path = Path(private_path)
    pub_path = public_key_beside(private_path)
    if passphrase is not None and not passphrase:
        raise PassphraseError("empty passphrase; use no passphrase explicitly instead")
    if not overwrite:
        for existing in (private_path, pub_path):
            if existing.exists() or existing.is_symlink():
                raise KeyFileError(f"{existing} exists; refusing to overwrite a key (use --force)")
    private_path.parent.mkdir(parents=True, exist_ok=True)  # e.g. /etc/aidepy on a new install
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption() if passphrase is None
        else serialization.BestAvailableEncryption(passphrase)
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        _write_new(private_path, private_pem, 0o600, overwrite)
        _write_new(pub_path, public_pem, 0o644, overwrite)
    except FileExistsError as exc:
        raise KeyFileError(f"{exc.filename or private_path} exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write key {private_path}: {exc.strerror or exc}") from exc
    return public


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc


def load_private_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Load a PKCS#8 Ed25519 private key; refuse one readable or writable by group or others, or
    owned by a user other than root or the one running aidepy (as config files are)."""
    path = Path(path)
    try:  # the modes checked are those of the file read (fstat), not of a name that may change
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            mode = stat.S_IMODE(st.st_mode)
            data = f.read() if not mode & 0o077 else b""
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such private key") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read private key: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: private key is accessible by group or others (mode {mode:04o}); "
            f"refusing to use it (chmod 600 {path})"
        )
    if st.st_uid not in (0, os.geteuid()):
        raise KeyFileError(f"{path}: private key is owned by another user (uid {st.st_uid}), who could "
                           f"have replaced it; refusing to use it (chown root {path})")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise PassphraseError(f"{path}: private key is encrypted; a passphrase is needed") from None
        raise PassphraseError(f"{path}: private key is not encrypted; give no passphrase") from None
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise PassphraseError(f"{path}: wrong passphrase") from None
        raise KeyFileError(f"{path}: not a PKCS#8 PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key (the `.pub` file keygen writes)."""
    data = _read(Path(path), "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
    return key
