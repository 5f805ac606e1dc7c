"""The vault: the write-protected medium that holds the signed baseline, its public key and rules.

`Vault` mounts it (read-only with nosuid,nodev, except while promote writes), tells whether
it is write-protected, writes files onto it atomically and verified (`aidepy.atomic`), keeps
the baseline on it or anchors one kept on disk, copies the rules, and reports its status.
The layout and `format_vault` live in `aidepy.vault.layout`, the device layer in `aidepy.vault.medium`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aidepy.atomic import READ_CHUNK, WrittenFile, atomic_write, free_bytes, fsync_dir
from aidepy.config.evaluate import copy_path, load
from aidepy.db.file import open_database
from aidepy.errors import AidepyError, DatabaseWriteError, VaultError, VerificationError
from aidepy.keys import fingerprint, load_public_key, raw_public
from aidepy.state import FILE_MODE
from aidepy.vault import medium as md
from aidepy.vault.anchor import Anchor, check_disk_copy, decode_anchor, encode_anchor
from aidepy.vault.layout import ANCHOR, DATABASE, MARKER, PUBLIC_KEY, RULES, RULES_DIR, RULES_INDEX
from aidepy.vault.layout import format_vault as format_vault  # re-exported for callers
from aidepy.vault.medium import Medium, MediumKind, Mount, Warn, warn_stderr
from aidepy.vault.runtime import check_manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from aidepy.config.model import Config
    from aidepy.db.file import DatabaseInfo


@dataclass(frozen=True)
class VaultSettings:
    """Where the vault is: the device spec, the mountpoint, the state directory for anchored databases."""

    device: str
    mountpoint: Path = Path("/var/lib/aidepy/vault")
    state_dir: Path = Path("/var/lib/aidepy")

    @classmethod
    def from_config(cls, config: Config, device: str | None = None) -> VaultSettings:
        """Settings from `vault_device` (else `LABEL=<vault_label>`), `vault_mountpoint`, `state_dir`."""
        return cls(
            device=device or config.vault_device or f"LABEL={config.vault_label}",
            mountpoint=Path(config.vault_mountpoint), state_dir=Path(config.state_dir),
        )


@dataclass(frozen=True)
class DatabaseStatus:
    """The baseline found on the vault."""

    layout: str  # "vault", "anchored" or "none"
    path: str | None = None
    size: int | None = None
    created: int | None = None
    generation: int | None = None
    signed: bool | None = None
    verified: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class VaultStatus:
    """What `aidepy vault status` shows."""

    spec: str
    kind: str
    device: str | None
    fstype: str | None
    label: str | None
    uuid: str | None
    mountpoint: str | None
    mounted: str | None  # "ro", "rw" or None (status mounts read-only for a moment to look inside)
    write_protected: bool
    write_protect_reason: str | None
    write_protect_kind: str | None  # medium.HARDWARE or medium.SOFTWARE while protected
    is_vault: bool
    size_bytes: int | None
    free_bytes: int | None
    key_fingerprint: str | None
    database: DatabaseStatus
    runtime_changes: list[str] | None = None  # None: no RUNTIME manifest on the vault
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class Vault:
    """The configured vault. Typical use (promote):

        vault = Vault.open(config)
        with vault.mounted(rw=True):
            vault.write_database(read_chunks(signed_database_path))
    """

    def __init__(self, settings: VaultSettings, *, warn: Warn = warn_stderr) -> None:
        self.settings = settings
        self._warn = warn
        self._medium: Medium | None = None

    @classmethod
    def open(cls, config: Config, *, device: str | None = None, warn: Warn = warn_stderr) -> Vault:
        """The vault `config` names (`device` overrides `vault_device`)."""
        return cls(VaultSettings.from_config(config, device), warn=warn)

    @property
    def medium(self) -> Medium:
        """The resolved device, image or directory (resolved once; a directory warns then)."""
        if self._medium is None:
            self._medium = md.resolve(self.settings.device, warn=self._warn)
        return self._medium

    def device(self) -> Path | None:
        """The block device holding the vault now (an image's loop device, if attached)."""
        if self.medium.kind is MediumKind.BLOCK:
            return self.medium.path
        if self.medium.kind is MediumKind.IMAGE:
            loops = md.loop_devices_of(self.medium.path)
            return loops[0] if loops else None
        return None

    def current_mount(self) -> Mount | None:
        """Where the vault is mounted (preferring the configured mountpoint), or None."""
        device = self.device()
        if device is None:
            return None
        found = md.mounts_of(device)
        for m in found:
            if m.mountpoint == self.settings.mountpoint.resolve():
                return m
        return found[0] if found else None

    @property
    def root(self) -> Path:
        """The directory holding the vault's files; the vault must be mounted."""
        if self.medium.kind is MediumKind.DIRECTORY:
            return self.medium.path
        current = self.current_mount()
        if current is None:
            raise VaultError(f"the vault ({self.settings.device}) is not mounted: run 'aidepy vault mount'")
        return current.mountpoint

    @property
    def database_path(self) -> Path:
        """`aidepy.db` on the mounted vault."""
        return self.root / DATABASE

    @property
    def anchor_path(self) -> Path:
        """`aidepy.vault.anchor` on the mounted vault."""
        return self.root / ANCHOR

    @property
    def key_path(self) -> Path:
        """`aidepy.pub` on the mounted vault."""
        return self.root / PUBLIC_KEY

    def public_key(self) -> Ed25519PublicKey:
        """The vault's public key."""
        path = self.key_path
        if not path.is_file():
            raise VaultError(f"the vault has no public key ({path}); format it with 'aidepy vault format'")
        return load_public_key(path)

    def write_protection(self) -> str | None:
        """Why the vault cannot be written (sysfs ro, the device refusing writers, a failed test write
        on a read-write mount, a read-only image file), or None when it can."""
        kind = self.medium.kind
        if kind is MediumKind.DIRECTORY:
            return None
        if kind is MediumKind.IMAGE:
            return md.image_write_protection(self.medium.path)
        reason = md.write_protection(self.medium.path)
        current = self.current_mount()
        if reason is None and current is not None and not current.read_only:
            reason = md.probe_write(current.mountpoint)
        return reason

    def protection_kind(self) -> str:
        """Whose write protection is on (call only when it is): `medium.HARDWARE` when the medium
        itself reports it (see `medium.hardware_protected`), else `medium.SOFTWARE`: an image
        file, a loop or other virtual device, a flag root set, a failed test write."""
        if self.medium.kind is MediumKind.BLOCK and md.hardware_protected(self.medium.path):
            return md.HARDWARE
        return md.SOFTWARE

    def is_write_protected(self) -> bool:
        """Whether the vault's write protection is on."""
        return self.write_protection() is not None

    def mount(self, rw: bool = False) -> Path:
        """Mount the vault (read-only unless `rw`), nosuid,nodev at the configured mountpoint; switch
        an existing mount to the asked mode. Returns the vault's root directory."""
        medium = self.medium
        if medium.kind is MediumKind.DIRECTORY:
            return medium.path
        if rw and (reason := self.write_protection()):
            raise VaultError(f"the vault is write-protected ({reason}): not mounting it read-write; "
                             "turn the write protection off first")
        current = self.current_mount()
        if current is not None:
            if current.read_only != rw:
                return current.mountpoint
            if medium.kind is MediumKind.BLOCK:
                return self._checked(md.remount(current.mountpoint, read_only=not rw), rw)
            self.umount()
        device = md.attach(medium.path, read_only=not rw) if medium.kind is MediumKind.IMAGE else medium.path
        try:
            return self._checked(md.mount(device, self.settings.mountpoint, read_only=not rw), rw)
        except BaseException:
            if medium.kind is MediumKind.IMAGE:
                self.umount()
            raise

    def _checked(self, made: Mount, rw: bool) -> Path:
        if rw and made.read_only:
            self.umount()
            raise VaultError("the vault is write-protected: mount fell back to read-only; "
                             "turn the write protection off first")
        if not (made.mountpoint / MARKER).is_file():
            self.umount()
            raise VaultError(f"{made.source} is not an aidepy vault (no {MARKER} marker); "
                             "prepare it with 'aidepy vault format'")
        return made.mountpoint

    def umount(self) -> None:
        """Unmount the vault everywhere it is mounted; detach an image's loop devices."""
        if self.medium.kind is MediumKind.DIRECTORY:
            return
        device = self.device()
        if device is not None:
            for m in reversed(md.mounts_of(device)):
                md.umount(m.mountpoint)
        if self.medium.kind is MediumKind.IMAGE:
            for loop in md.loop_devices_of(self.medium.path):
                md.detach(loop)

    @contextmanager
    def mounted(self, rw: bool = False) -> Iterator[Path]:
        """The vault mounted (at least read-only; read-write if `rw`), put back as it was afterwards."""
        before = self.current_mount()
        root = before.mountpoint if before is not None and not rw else self.mount(rw=rw)
        try:
            yield root
        except BaseException:
            with suppress(AidepyError):  # the original failure matters more than a busy umount
                self._restore(before, rw)
            raise
        self._restore(before, rw)

    def _restore(self, before: Mount | None, rw: bool) -> None:
        if self.medium.kind is MediumKind.DIRECTORY:
            return
        if before is None:
            self.umount()
        elif before.read_only and rw:
            self.mount(rw=False)

    def _writable_root(self) -> Path:
        root = self.root
        current = self.current_mount()
        if current is not None and current.read_only:
            raise VaultError("the vault is mounted read-only; writing needs 'aidepy vault mount --rw' "
                             "(promote does this); nothing was written")
        if reason := self.write_protection():
            raise VaultError(f"the vault is write-protected ({reason}); nothing was written")
        return root

    def write_file(
        self, name: str, chunks: Iterable[bytes], *, size: int | None = None,
        verify: Callable[[Path], None] | None = None, mode: int = FILE_MODE,
    ) -> WrittenFile:
        """Write one file onto the read-write mounted vault atomically and verified (see `atomic_write`)."""
        root = self._writable_root()
        try:
            return atomic_write(root, name, chunks, size=size, verify=verify, mode=mode)
        except (DatabaseWriteError, OSError) as exc:
            if self._gone():
                raise VaultError(f"the vault went away while {name} was written (medium removed?): "
                                 f"{exc}") from None
            raise

    def _gone(self) -> bool:
        """Whether the vault's mount has disappeared (the medium pulled out)."""
        if self.medium.kind is MediumKind.DIRECTORY:
            return False
        try:
            return self.current_mount() is None
        except (VaultError, OSError):
            return True

    def free_bytes(self) -> int:
        """Free space on the mounted vault."""
        return free_bytes(self.root)

    def remove(self, name: str) -> None:
        """Remove a file from the read-write mounted vault (durably)."""
        path = self._writable_root() / name
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    def write_database(self, chunks: Iterable[bytes], *, size: int | None = None) -> WrittenFile:
        """Write the signed baseline as `aidepy.db`; it must verify with the vault's key before it
        replaces the old one. Raises VaultFullError (old one intact) when it does not fit: then
        write it to disk and use `write_anchor`."""
        key = self.public_key()

        def verify(path: Path) -> None:
            with open_database(path, key):
                pass

        written = self.write_file(DATABASE, chunks, size=size, verify=verify)
        self.remove(ANCHOR)
        return written

    def write_anchor(self, database: Path, info: DatabaseInfo, signing_key: Ed25519PrivateKey) -> Anchor:
        """The anchored layout: pin the signed database at `database` (on disk, normally under
        `state_dir`) with a signed anchor on the vault; removes `aidepy.db` from the vault."""
        key = self.public_key()
        if raw_public(signing_key.public_key()) != raw_public(key):
            raise VaultError("the signing key does not belong to the vault's public key")
        with open_database(database, key):
            pass
        anchor = Anchor(
            path=str(database.resolve()), sha256=info.sha256.hex(), size=info.size,
            created=info.header.created, generation=info.header.generation,
        )
        check_disk_copy(anchor)
        self.write_file(ANCHOR, [encode_anchor(anchor, signing_key)],
                        verify=lambda p: _same_anchor(decode_anchor(p.read_bytes(), key), anchor))
        self.remove(DATABASE)
        return anchor

    def identity(self) -> str | None:
        """A stable name of this medium for the rollback record: its file system UUID (None for
        a directory vault, or a file system without one)."""
        target = self.device() or (self.medium.path if self.medium.kind is MediumKind.IMAGE else None)
        found = md.probe_filesystem(target) if target is not None else None
        return found.uuid if found is not None else None

    def baseline_path(self, key: Ed25519PublicKey | None = None) -> Path:
        """The database a check should open with `key` (default: the vault's public key); see
        `baseline`."""
        return self.baseline(key)[0]

    def baseline(self, key: Ed25519PublicKey | None = None) -> tuple[Path, str | None]:
        """The database a check should open with `key` (default: the vault's public key):
        `aidepy.db` on the vault, or the anchored disk copy once it matches the anchor, which
        must verify with `key` (the newer generation wins if a switch of layout was
        interrupted); and for a disk copy the SHA-256 (hex) the anchor pins, for the reader to
        compare with the file it really opened. Raises VerificationError/VaultError."""
        key = key or self.public_key()
        if not self.anchor_path.exists():
            if not self.database_path.exists():
                raise VaultError(f"the vault holds no baseline ({DATABASE} or {ANCHOR})")
            return self.database_path, None
        anchor = decode_anchor(self.anchor_path.read_bytes(), key)
        if self.database_path.exists() and _generation(self.database_path, key) >= anchor.generation:
            return self.database_path, None
        return check_disk_copy(anchor), anchor.sha256

    def write_rules(self, sources: Sequence[Path]) -> list[WrittenFile]:
        """Copy the main config (`aidepy.conf`) and every file it includes (under `rules/`, by
        absolute path, as `config.copy_path` maps it; executables stay executable) onto the vault,
        with an index of original paths and digests. `load_rules` reads them back."""
        if not sources:
            raise VaultError("no configuration files to copy")
        rules_dir = os.fsencode(RULES_DIR)
        names = [RULES, *(os.fsdecode(copy_path(os.fsencode(p), rules_dir)) for p in sources[1:])]
        written = [self.write_file(name, read_chunks(src), mode=_copy_mode(src))
                   for name, src in zip(names, sources, strict=True)]
        index = "".join(f"{w.sha256.hex()}  {os.path.abspath(src)}  {name}\n"
                        for w, src, name in zip(written, sources, names, strict=True))
        written.append(self.write_file(RULES_INDEX, [index.encode()]))
        keep = {self.root / n for n in [*names, RULES_INDEX]}
        for path in sorted((self.root / RULES_DIR).rglob("*"), reverse=True):
            if path.is_file() and path not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_dir():  # whatever the umask: the loader refuses group-writable directories
                path.chmod(0o755)
        return written

    def load_rules(self, before: Sequence[str] = (), after: Sequence[str] = ()) -> Config:
        """The rules copy on the mounted vault, evaluated (with `-B`/`-A` lines) with every include
        read from its copy under `rules/`, so the host cannot change what is checked. Raises
        VaultError when the vault holds no copy; ConfigError/ConfigReadError as `config.load`."""
        main = self.root / RULES
        if not main.is_file():
            raise VaultError(f"the vault holds no copy of the rules ({main}); 'aidepy promote' or "
                             "'aidepy vault install' writes one")
        return load(main, before, after, rules_root=self.root / RULES_DIR)

    def runtime_changes(self) -> list[str] | None:
        """How this host's interpreter, standard library and libraries differ from the signed
        manifest of the program `vault install` put on the vault (one line each), or None when
        there is none. The vault must be mounted."""
        return check_manifest(self.root, self.public_key())

    def rules_changes(self, live_sources: Sequence[Path]) -> list[str]:
        """How the live rules differ from the copy on the vault, one line each: files that
        changed, and files the live config (`live_sources`, as `Config.sources` lists them) now
        includes or no longer includes, such as a snippet dropped into an included directory."""
        index = self.root / RULES_INDEX
        if not index.is_file():
            return ["the vault holds no copy of the rules"]
        live = [os.path.abspath(source) for source in live_sources]
        problems = []
        copied = set()
        for line in index.read_text().splitlines():
            digest, original, _ = line.split("  ", 2)
            copied.add(original)
            try:
                current = hashlib.sha256(Path(original).read_bytes()).hexdigest()
            except OSError as exc:
                problems.append(f"{original}: {exc.strerror}")
                continue
            if current != digest:
                problems.append(f"{original} differs from the copy on the vault")
            elif live and original not in live:
                problems.append(f"{original} is no longer part of the live rules")
        problems += [f"{source} is part of the live rules but not of the copy on the vault"
                     for source in live if source not in copied]
        return problems

    def rules_diff(self, live_sources: Sequence[Path]) -> str | None:
        """A unified diff from the rules copy on the mounted vault to the live rules (files
        added to or dropped from the live config included); "" when they are the same, None
        when the vault holds no copy."""
        index = self.root / RULES_INDEX
        if not index.is_file():
            return None
        copies = {original: self.root / name for _, original, name in
                  (line.split("  ", 2) for line in index.read_text().splitlines())}
        live = [os.path.abspath(source) for source in live_sources]
        diff: list[str] = []
        for original in [*copies, *(source for source in live if source not in copies)]:
            old = _text_lines(copies[original]) if original in copies else []
            new = _text_lines(Path(original)) if original in live else []
            diff += difflib.unified_diff(old, new, f"vault copy of {original}" if original in copies
                                         else "/dev/null", original if original in live else "/dev/null")
        return "".join(line if line.endswith("\n") else line + "\n" for line in diff)

    def status(self, pinned: str | None = None) -> VaultStatus:
        """Everything `aidepy vault status` shows; mounts read-only for a moment when not mounted.
        `pinned`: the fingerprint `public_key` pins; a vault with another key is a problem."""
        medium = self.medium
        problems: list[str] = []
        before = self.current_mount()
        device = self.device()
        # An image that is not attached is probed as a file: blkid and lseek work on both.
        target = device or (medium.path if medium.kind is MediumKind.IMAGE else None)
        fs, size, reason, kind = None, None, None, None
        try:
            if target is not None:
                fs, size = md.probe_filesystem(target), md.device_size(target)
            reason = self.write_protection()
            kind = None if reason is None else self.protection_kind()
        except (VaultError, OSError) as exc:  # e.g. a drive without a disk: say so, show the rest
            problems.append(str(exc))
        free, fingerprint, database, is_vault = None, None, DatabaseStatus("none"), False
        runtime: list[str] | None = None
        try:
            with self.mounted() as root:
                is_vault = (root / MARKER).is_file()
                free = free_bytes(root)
                fingerprint, database = self._inspect(problems)
                if pinned is not None and fingerprint is not None and fingerprint != pinned:
                    problems.append(f"the vault's key is {fingerprint}, but public_key pins key {pinned}: "
                                    "every check refuses this vault")
                with suppress(AidepyError):  # no key: _inspect said so
                    runtime = self.runtime_changes()
                problems += [f"{p.name}: left by an interrupted write (the next write removes it)"
                             for p in sorted(root.glob(".*.tmp"))]
        except (VaultError, OSError) as exc:
            problems.append(str(exc))
        if medium.kind is MediumKind.DIRECTORY:
            problems.append("a directory vault: nothing protects it (trials only)")
        return VaultStatus(
            spec=self.settings.device, kind=medium.kind.value, device=str(device) if device else None,
            fstype=fs.type if fs else None, label=fs.label if fs else None, uuid=fs.uuid if fs else None,
            mountpoint=str(before.mountpoint if before else self.settings.mountpoint),
            mounted=None if before is None else ("ro" if before.read_only else "rw"),
            write_protected=reason is not None, write_protect_reason=reason, write_protect_kind=kind,
            is_vault=is_vault,
            size_bytes=size, free_bytes=free, key_fingerprint=fingerprint, database=database,
            runtime_changes=runtime, problems=problems,
        )

    def _inspect(self, problems: list[str]) -> tuple[str | None, DatabaseStatus]:
        try:
            key = self.public_key()
        except AidepyError as exc:
            problems.append(str(exc))
            return None, DatabaseStatus("none")
        if not self.anchor_path.exists() and not self.database_path.exists():
            return fingerprint(key), DatabaseStatus("none")
        layout = "anchored" if self.anchor_path.exists() else "vault"
        try:
            path = self.baseline_path()
            if path != self.database_path:
                layout = "anchored"
            with open_database(path, key) as db:
                header = db.header
                database = DatabaseStatus(
                    layout, str(path), path.stat().st_size, header.created, header.generation,
                    db.signed, True,
                )
        except AidepyError as exc:
            database = DatabaseStatus(layout, problem=str(exc))
        return fingerprint(key), database


def _same_anchor(found: Anchor, expected: Anchor) -> None:
    if found != expected:
        raise VerificationError("the anchor reads back differently from what was written")


def _generation(path: Path, key: Ed25519PublicKey) -> int:
    with open_database(path, key) as db:
        return db.header.generation


def _text_lines(path: Path) -> list[str]:
    """A rules file's lines for a diff (its bytes kept through surrogateescape; unreadable: none)."""
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape").splitlines(keepends=True)
    except OSError:
        return []


def _copy_mode(source: Path) -> int:
    """The mode of a rules copy: 0700 for an executable (an @@x_include snippet), else 0600
    (root's only, like the databases: the rules name what is watched)."""
    try:
        executable = bool(source.stat().st_mode & stat.S_IXUSR)
    except OSError:
        executable = False  # read_chunks says why it cannot be read
    return 0o700 if executable else FILE_MODE


def read_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of a file in chunks, for writing it onto the vault."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                yield chunk
    except OSError as exc:
        raise VaultError(f"cannot read {path}: {exc.strerror}") from None
