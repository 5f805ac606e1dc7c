"""dpkg's database, read as an index: which installed package version lists a path, its
md5sums and conffiles, the versions its log says were installed before, the user and group
names of the host, dpkg-divert's diversions and dpkg-statoverride's overrides. Root can rewrite
all of it, so nothing here is evidence on its own: it only says which `.deb` to look at
(`aidepy.explain.archive`) and what dpkg believes (evidence `dpkg`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from debian.deb822 import Deb822

ADMINDIR = "var/lib/dpkg"
_MERGED = frozenset({b"bin", b"sbin", b"lib", b"lib32", b"lib64", b"libx32"})
LOG = "var/log/dpkg.log"


@dataclass(frozen=True)
class Installed:
    """One installed package instance, as dpkg's status file has it."""

    key: str
    """Its name in dpkg's info directory: `name`, or `name:arch` for a Multi-Arch: same package."""
    package: str
    version: str
    architecture: str
    conffiles: Mapping[bytes, str] = field(default_factory=dict)
    """Conffile path -> the md5 dpkg recorded when it installed it."""


@dataclass(frozen=True)
class Diversion:
    """A `dpkg-divert` diversion: packages shipping `original` have it installed at `to` instead,
    except the diverting package `by` (None for a local diversion: what is at `original` then is
    the admin's)."""

    original: bytes
    to: bytes
    by: str | None


@dataclass(frozen=True)
class Override:
    """A `dpkg-statoverride` entry: the owner, group (names, or `#id`) and permission bits dpkg
    gives a path instead of what the package ships. The file is root's to rewrite on the host, so
    an override never makes evidence stronger than the content's."""

    user: str
    group: str
    mode: int


def _installed(status: Path, info: Path) -> Iterator[Installed]:
    with open(status, "rb") as f:
        for para in Deb822.iter_paragraphs(f, use_apt_pkg=False):
            if para.get("Status", "").split()[-1:] not in (["installed"], ["half-configured"]):
                continue
            name, arch = para["Package"], para.get("Architecture", "")
            key = f"{name}:{arch}" if (info / f"{name}:{arch}.list").exists() else name
            conffiles = {}
            for line in para.get("Conffiles", "").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    conffiles[os.fsencode(parts[0])] = parts[1]
            yield Installed(key, name, para.get("Version", ""), arch, conffiles)


class Dpkg:
    """dpkg's database under `root` (`root_prefix`, or / for the host)."""

    def __init__(self, root: bytes) -> None:
        self.root = Path(os.fsdecode(root or b"/"))
        self.admindir = self.root / ADMINDIR
        self.info = self.admindir / "info"
        self._installed: dict[str, Installed] | None = None
        self._listed: dict[str, list[bytes]] | None = None
        self._owned: set[bytes] | None = None
        self._merged: bool | None = None

    def present(self) -> bool:
        return (self.admindir / "status").is_file()

    @property
    def installed(self) -> dict[str, Installed]:
        if self._installed is None:
            self._installed = {p.key: p for p in _installed(self.admindir / "status", self.info)}
        return self._installed

    def _lists(self) -> dict[str, list[bytes]]:
        """Each installed package's file list (every list read once, then kept)."""
        if self._listed is None:
            self._listed = {}
            for key in self.installed:
                with suppress(OSError):
                    self._listed[key] = (self.info / f"{key}.list").read_bytes().splitlines()
        return self._listed

    def owners(self, paths: Iterable[bytes]) -> dict[bytes, list[Installed]]:
        """The installed packages whose file lists name each of `paths`."""
        wanted = set(paths)
        found: dict[bytes, list[Installed]] = {}
        for key, listed in self._lists().items():
            for path in wanted.intersection(listed):
                found.setdefault(path, []).append(self.installed[key])
        return found

    def names(self, path: bytes) -> list[bytes]:
        """The names dpkg may know `path` by: itself, and on a merged-/usr system (`/bin` a link
        to `usr/bin`) the old name a package still ships (`/usr/bin/ls` is `/bin/ls`)."""
        if self._merged is None:
            self._merged = (self.root / "bin").is_symlink()
        head = path.split(b"/")[2:3]
        if self._merged and path.startswith(b"/usr/") and head and head[0] in _MERGED:
            return [path, path[4:]]
        return [path]

    def owned(self, path: bytes) -> bool:
        """Whether any installed package lists `path`."""
        if self._owned is None:
            self._owned = {name for listed in self._lists().values() for name in listed}
        return any(name in self._owned for name in self.names(path))

    def md5sums(self, package: Installed) -> dict[bytes, str]:
        """dpkg's md5sums of `package`'s files (conffiles are not in it)."""
        try:
            text = (self.info / f"{package.key}.md5sums").read_bytes()
        except OSError:
            return {}
        sums = {}
        for line in text.splitlines():
            digest, _, name = line.partition(b"  ")
            if name:
                sums[b"/" + name.lstrip(b"/")] = digest.decode("ascii", "replace")
        return sums

    def diversions(self) -> dict[bytes, Diversion]:
        """dpkg-divert's diversions, under both names (the diverted path and where the diverted
        package's file lives instead)."""
        try:
            lines = (self.admindir / "diversions").read_bytes().splitlines()
        except OSError:
            return {}
        found = {}
        for i in range(0, len(lines) - 2, 3):
            by = lines[i + 2].decode(errors="replace")
            diversion = Diversion(lines[i], lines[i + 1], None if by == ":" else by)
            found[diversion.original] = found[diversion.to] = diversion
        return found

    def statoverrides(self) -> dict[bytes, Override]:
        """dpkg-statoverride's overrides: path -> the owner, group and mode dpkg gives it."""
        try:
            lines = (self.admindir / "statoverride").read_bytes().splitlines()
        except OSError:
            return {}
        found = {}
        for line in lines:
            fields = line.split(maxsplit=3)
            with suppress(ValueError):
                if len(fields) == 4:
                    found[fields[3]] = Override(fields[0].decode(), fields[1].decode(), int(fields[2], 8))
        return found

    def previous_versions(self, since: float) -> dict[str, tuple[str, str]]:
        """Package -> (version, architecture) dpkg's log says was installed before the first
        upgrade or removal at or after `since` (seconds since the epoch); for a package with none
        since then, the version before its last one. (A baseline promoted after an upgrade may
        keep the old record of a removed path; the judgement still requires that version's
        `.deb` to ship exactly what was recorded.)"""
        try:
            lines = (self.root / LOG).read_text(errors="replace").splitlines()
        except OSError:
            return {}
        before: dict[str, tuple[str, str]] = {}
        last: dict[str, tuple[str, str]] = {}
        for line in lines:
            parts = line.split()
            if len(parts) != 6 or parts[2] not in ("upgrade", "remove", "purge", "install"):
                continue
            try:
                when = time.mktime(time.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S"))
            except ValueError:
                continue
            name, _, arch = parts[3].partition(":")
            if parts[4] != "<none>":
                last[name] = (parts[4], arch)
                if when >= since:
                    before.setdefault(name, (parts[4], arch))
        return {**last, **before}

    def ids(self, table: str) -> dict[str, int]:
        """User (`passwd`) or group (`group`) names -> ids, as the host's files under `root` say."""
        ids: dict[str, int] = {}
        try:
            lines = (self.root / "etc" / table).read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in lines:
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                ids.setdefault(fields[0], int(fields[2]))
        return ids
