"""Putting aidepy onto the vault (`aidepy vault install`): the files `runtime.build` makes,
written when they fit beside the next baseline, with the signed manifest last."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aidepy
from aidepy.atomic import space_needed
from aidepy.errors import VaultError
from aidepy.keys import raw_public
from aidepy.vault.bootstrap import Manifest
from aidepy.vault.layout import LAUNCHER, MANIFEST, PROGRAM_DIRS
from aidepy.vault.runtime import build, verify_signature

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aidepy.vault.vault import Vault


@dataclass(frozen=True)
class InstallReport:
    """What `install` did."""

    program_installed: bool
    message: str


def install(vault: Vault, signing_key: Ed25519PrivateKey) -> InstallReport:
    """Put aidepy onto the vault (read-write mounted) with its signed manifest, when it fits
    while leaving room to replace the baseline (the old program counts as free, since it is
    replaced); else remove an old program, which would no longer match this host."""
    key = vault.public_key()
    if raw_public(signing_key.public_key()) != raw_public(key):
        raise VaultError("the signing key does not belong to the vault's public key")
    with tempfile.TemporaryDirectory(prefix="aidepy-install-") as stage:
        files = build(Path(stage), signing_key)
    root = vault.root
    needed = sum(space_needed(len(data), root) for data in files.values())
    old_program = sum(space_needed(p.stat().st_size, root) for p in _installed(root))
    baseline = vault.database_path
    reserve = space_needed(baseline.stat().st_size, root) if baseline.exists() else 0
    available = vault.free_bytes() + old_program - reserve
    if needed > available:
        for path in _installed(root):
            vault.remove(str(path.relative_to(root)))
        return InstallReport(False, f"the program needs {needed} bytes, {available} are available "
                                    f"(keeping {reserve} for the next baseline); not installed")
    for name, data in files.items():
        if name != MANIFEST:
            vault.write_file(name, [data], mode=0o755 if name == LAUNCHER else 0o644)
    vault.write_file(MANIFEST, [files[MANIFEST]],
                     verify=lambda p: verify_signature(Manifest(p.read_text(), str(root)), key))
    size = sum(len(data) for data in files.values())
    return InstallReport(True, f"aidepy {aidepy.__version__} installed ({size // 1024} KiB): "
                               f"run {root / LAUNCHER}")


def _installed(root: Path) -> list[Path]:
    found = [p for d in PROGRAM_DIRS for p in (root / d).rglob("*") if p.is_file()]
    return found + ([root / MANIFEST] if (root / MANIFEST).is_file() else [])
