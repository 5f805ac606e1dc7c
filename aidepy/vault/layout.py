"""The vault's layout, and preparing a medium to hold it (`aidepy vault format`).

Layout on the medium (ext2, label from `vault_label`):
    VAULT           marker ("aidepy vault 1"): only a medium carrying it is used or reformatted
    aidepy.pub      the public key every baseline is verified with
    aidepy.db       the signed baseline, or instead
    aidepy.anchor   a signed anchor pinning a baseline kept on disk (see `aidepy.vault.anchor`)
    approvals.log   the signed approval log (one record per promote; see `aidepy.vault.approvals`),
                    or instead
    approvals.anchor  a signed anchor pinning the log kept on disk when it outgrew the vault
    aidepy.conf     the rules the baseline was built with; its includes under `rules/` (+ SOURCES)
    bin/ lib/ RUNTIME   aidepy itself and the signed manifest of what it runs on (`aidepy.vault.runtime`)
    apt-keyrings/   the apt keyrings package explanations trust, with an index `SOURCES`

Every name on the vault is spelled here only (tests/test_names.py checks); `aidepy.vault.bootstrap`,
which runs before any aidepy module can be imported, repeats two of them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aidepy.atomic import atomic_write
from aidepy.errors import AidepyError, VaultError
from aidepy.keys import load_public_key
from aidepy.vault import medium as md
from aidepy.vault.medium import Medium, MediumKind, Warn, warn_stderr

MARKER = "VAULT"
MARKER_TEXT = b"aidepy vault 1\n"
PUBLIC_KEY = "aidepy.pub"
DATABASE = "aidepy.db"
ANCHOR = "aidepy.anchor"
APPROVALS = "approvals.log"
"""The approval log: one signed record per promote, chained (`aidepy.vault.approvals`)."""
APPROVALS_ANCHOR = "approvals.anchor"
"""The signed anchor of an approval log kept in state_dir (too large for the vault)."""
RULES = "aidepy.conf"
RULES_DIR = "rules"
RULES_INDEX = "rules/SOURCES"
MANIFEST = "RUNTIME"
"""The signed manifest of the vault's aidepy (what a start may load)."""
PROGRAM = "lib/aidepy.zip"
"""aidepy's sources and its dependencies' pure-Python sources."""
BOOTSTRAP = "lib/bootstrap.py"
"""`aidepy.vault.bootstrap`: checks the manifest before the program runs."""
LAUNCHER = "bin/aidepy"
"""The vault's aidepy command."""
PROGRAM_DIRS = ("bin", "lib")
"""The directories of the vault's aidepy (LAUNCHER, PROGRAM, BOOTSTRAP)."""
KEYRINGS_DIR = "apt-keyrings"
KEYRINGS_INDEX = "apt-keyrings/SOURCES"
MAX_LABEL = 16  # ext2 volume labels are 16 bytes


def format_vault(
    spec: str, *, label: str, public_key: Path, force: bool = False, fdformat: bool = False,
    warn: Warn = warn_stderr,
) -> Medium:
    """Prepare a medium as a vault: create a missing floppy node, refuse a mounted device and (unless
    `force`) a foreign filesystem, `fdformat` (if asked), `mke2fs -L label -m 0`, then write the
    `VAULT` marker and the public key."""
    if not label or len(label.encode()) > MAX_LABEL:
        raise VaultError(f"vault label {label!r}: must be 1 to {MAX_LABEL} bytes")
    try:
        load_public_key(public_key)
    except AidepyError as exc:
        raise VaultError(f"{exc} (run 'aidepy keygen' first)") from None
    key_bytes = public_key.read_bytes()
    if Path(spec).parent == Path("/dev") and md.ensure_device_node(Path(spec)):
        major, minor = md.FLOPPY_NODES[Path(spec).name]
        warn(f"created {spec} (block {major},{minor}, mode 660, group floppy)")
    medium = md.resolve(spec, warn=warn)
    if medium.kind is MediumKind.DIRECTORY:
        _write_layout(medium.path, label, key_bytes)
        return medium
    if medium.kind is MediumKind.IMAGE:
        if md.loop_devices_of(medium.path):
            raise VaultError(f"{spec} is attached to a loop device; unmount the vault first")
        if reason := md.image_write_protection(medium.path):
            raise VaultError(f"{spec} is write-protected ({reason}); make it writable to format it")
        device = md.attach(medium.path, read_only=False)
        try:
            _format_device(device, spec, label, key_bytes, force, fdformat)
        finally:
            md.detach(device)
    else:
        _format_device(medium.path, spec, label, key_bytes, force, fdformat)
    return medium


def _format_device(
    device: Path, spec: str, label: str, key_bytes: bytes, force: bool, fdformat: bool,
) -> None:
    if mounted := md.mounts_of(device):
        raise VaultError(f"{spec} is mounted at {mounted[0].mountpoint}; unmount it first")
    if reason := md.write_protection(device):
        raise VaultError(f"{spec} is write-protected ({reason}); turn the write protection off to format it")
    existing = md.probe_filesystem(device)
    if existing is not None and not force and not _holds_vault(device, existing):
        what = f"a {existing.type} filesystem" + (f" labelled {existing.label!r}" if existing.label else "")
        raise VaultError(f"{spec} holds {what} that is not an aidepy vault; use --force to overwrite it")
    if fdformat:
        low_level_format(device)
    md.run_tool("mke2fs", "-q", "-F", "-t", "ext2", "-L", label, "-m", "0", str(device))
    with _temporary_mount(device, read_only=False) as root:
        _write_layout(root, label, key_bytes)


def low_level_format(device: Path) -> None:
    """`--fdformat`: a floppy drive on the floppy controller gets `fdformat` (util-linux; Debian 12
    ships none), a USB floppy drive (a SCSI disk to the kernel) `ufiformat` (Debian package
    ufiformat; USB drives format 1440 KiB disks, not 1722 KiB). A missing tool is named with
    the package that has it."""
    if os.major(os.stat(device).st_rdev) == md.FLOPPY_MAJOR:
        tool, hint = "fdformat", ("Debian 12 ships none (fdutils' superformat formats this drive); "
                                  "--fdformat runs it where util-linux still has it")
    else:
        tool, hint = "ufiformat", "USB floppy drives are low-level formatted with it: apt install ufiformat"
    if md.find_tool(tool) is None:
        raise VaultError(f"--fdformat: {tool} is not installed ({hint}); nothing was changed")
    md.run_tool(tool, str(device))


def _write_layout(root: Path, label: str, key_bytes: bytes) -> None:
    atomic_write(root, PUBLIC_KEY, [key_bytes])
    marker = MARKER_TEXT + f"label={label}\nformatted={int(time.time())}\n".encode()
    atomic_write(root, MARKER, [marker])


def _holds_vault(device: Path, fs: md.Filesystem) -> bool:
    if fs.type != "ext2":  # what format makes; never mount (and replay) a foreign journal
        return False
    try:
        with _temporary_mount(device, read_only=True) as root:
            marker = root / MARKER
            return marker.is_file() and marker.read_bytes().startswith(MARKER_TEXT)
    except VaultError:
        return False


@contextmanager
def _temporary_mount(device: Path, *, read_only: bool) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="aidepy-vault-"))
    try:
        md.mount(device, where, read_only=read_only)
        try:
            yield where
        finally:
            md.umount(where)
    finally:
        where.rmdir()
