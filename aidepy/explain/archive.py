"""Evidence the host cannot forge: `.deb` files whose SHA-256 a signed archive index lists.

apt keeps each source's `InRelease` and `Packages` indexes under `/var/lib/apt/lists` and the
`.deb` files it downloaded under `/var/cache/apt/archives`. An `InRelease` counts only when
Debian's `gpgv` verifies it against the keyrings copied onto the vault (never a keyring on the
host); a `Packages` index only when its digest is the one that signed `Release` lists; a `.deb`
only when its SHA-256 is the one that index gives for that package, version and architecture.
Everything is read into memory once and verified there, so nothing can be swapped in between.
Parsing is python-debian's (`Release`, `Packages`, `.deb`).
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from debian.deb822 import Packages, Release
from debian.debfile import DebFile

from aidepy.attributes import BY_NAME

LISTS = "var/lib/apt/lists"
CACHE = "var/cache/apt/archives"
APT_HELPER = "/usr/lib/apt/apt-helper"
_STDLIB = {".gz": gzip.decompress, ".xz": lzma.decompress, ".bz2": bz2.decompress}
_PACKAGE_LINE = re.compile(rb"Package: *(\S+) *(?:\n|\Z)")
"""A stanza's first line; searched for as a literal prefix (five times faster on Debian's 50 MB
index than a `^` anchored MULTILINE pattern), then checked to start a line."""

PackageId = tuple[str, str, str]
"""(package, version, architecture)."""


class ArchiveError(Exception):
    """An index or `.deb` that cannot be used as evidence (the reason, for a notice)."""


# -- keyrings and signatures ------------------------------------------------------------------------


def dearmor(data: bytes) -> bytes:
    """An OpenPGP keyring as binary packets (gpgv reads those): armored text decoded, else as is."""
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return data
    lines = data.decode("ascii", "replace").splitlines()
    body = []
    inside = headers = False
    for line in lines:
        if line.startswith("-----BEGIN PGP"):
            inside = headers = True
        elif line.startswith("-----END PGP"):
            break
        elif inside and headers:
            headers = ":" in line  # armor headers end with an empty line
            if not line.strip():
                headers = False
        elif inside and not line.startswith("="):
            body.append(line.strip())
    return base64.b64decode("".join(body))


def gpgv_verify(signed: bytes, keyrings: Sequence[bytes]) -> bytes:
    """The content of the clear-signed `signed`, once Debian's `gpgv` verified it against
    `keyrings` (their bytes; nothing on the host is consulted). Raises ArchiveError."""
    if not keyrings:
        raise ArchiveError("no keyring on the vault")
    with tempfile.TemporaryDirectory(prefix="aidepy-gpgv-") as work:
        args = ["gpgv", "--homedir", work, "--status-fd", "1", "--output", f"{work}/out"]
        for i, keyring in enumerate(keyrings):
            path = f"{work}/keyring{i}.gpg"
            with open(path, "wb") as f:
                f.write(dearmor(keyring))
            args += ["--keyring", path]
        with open(f"{work}/in", "wb") as f:
            f.write(signed)
        try:
            run = subprocess.run([*args, f"{work}/in"], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ArchiveError(f"gpgv: {exc}") from None
        if run.returncode != 0 or b"[GNUPG:] VALIDSIG " not in run.stdout:
            raise ArchiveError("signature does not verify with the vault's keyrings")
        return Path(f"{work}/out").read_bytes()


# -- the archive's indexes -------------------------------------------------------------------------


def _content(path: Path) -> bytes:
    """An index file's content, decompressed (what is returned is what gets verified)."""
    ext = path.suffix
    if ext in _STDLIB:
        return _STDLIB[ext](path.read_bytes())
    if ext in (".lz4", ".zst"):  # what apt recompresses lists with; apt's own helper reads them
        run = subprocess.run([APT_HELPER, "cat-file", str(path)], capture_output=True, timeout=120,
                             check=False)
        if run.returncode != 0:
            raise ArchiveError("apt-helper cat-file cannot read it")
        return run.stdout
    return path.read_bytes()


def _relative(list_name: str, prefix: str) -> str:
    """`main/binary-amd64/Packages` from apt's list file name (`_` for `/`, `%5f` for `_`)."""
    rest = list_name[len(prefix):]
    rest = os.path.splitext(rest)[0] if os.path.splitext(rest)[1] in (*_STDLIB, ".lz4", ".zst") else rest
    return "/".join(unquote(part) for part in rest.split("_"))


@dataclass
class ArchiveIndex:
    """The `.deb` digests verified `Packages` indexes list, for the packages asked about."""

    sha256: dict[PackageId, set[str]]
    problems: list[str]

    @classmethod
    def load(cls, lists: Path, keyrings: Sequence[bytes], wanted: Collection[str]) -> ArchiveIndex:
        index = cls({}, [])
        names = sorted(os.listdir(lists)) if lists.is_dir() else []
        for release_name in (n for n in names if n.endswith("_InRelease")):
            prefix = release_name[: -len("InRelease")]
            try:
                release = Release(gpgv_verify((lists / release_name).read_bytes(), keyrings))
            except (ArchiveError, OSError) as exc:
                index.problems.append(f"{release_name}: {exc}")
                continue
            listed = {entry["name"]: entry["sha256"] for entry in release.get("SHA256", [])}
            for name in names:
                if not name.startswith(prefix) or "Packages" not in name[len(prefix):]:
                    continue
                try:
                    index._add(_content(lists / name), listed.get(_relative(name, prefix)), wanted)
                except (ArchiveError, OSError, EOFError, lzma.LZMAError) as exc:
                    index.problems.append(f"{name}: {exc}")
        return index

    def _add(self, data: bytes, expected: str | None, wanted: Collection[str]) -> None:
        if expected is None or hashlib.sha256(data).hexdigest() != expected:
            raise ArchiveError("not the index the signed Release lists")
        names = {os.fsencode(name) for name in wanted}
        starts = [m.start() for m in _PACKAGE_LINE.finditer(data)
                  if m.group(1) in names and (m.start() == 0 or data[m.start() - 1] == 0x0A)]
        for start in starts:
            end = data.find(b"\n\n", start)
            stanza = Packages(data[start: None if end < 0 else end])
            key = (stanza["Package"], stanza["Version"], stanza["Architecture"])
            self.sha256.setdefault(key, set()).add(stanza.get("SHA256", ""))


# -- .deb files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """What a `.deb` ships at one path."""

    ftype: str
    """`f` regular file (also a hard link), `d`, `l`, or `c`, `b`, `p`."""
    mode: int
    """Permission bits, with setuid, setgid and sticky."""
    uname: str
    gname: str
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: bytes
    digests: Mapping[str, bytes]
    """The content's digests under the hash attributes asked for."""


def deb_name(package: str, version: str, arch: str) -> str:
    """The name apt gives a downloaded `.deb` (`:` in the version as `%3a`)."""
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"


Contents = tuple[dict[bytes, Member], bool]
"""What a `.deb` ships at the paths asked about, and whether it verified."""


def package_contents(dirs: Sequence[Path], pkg: PackageId, expected: Collection[str],
                     paths: Collection[bytes], hashes: Collection[str], unverified: bool = False
                     ) -> Contents | None:
    """What `pkg`'s `.deb` (from the first of `dirs` holding it) ships at `paths`, and whether
    that `.deb` verified: its SHA-256 is one of `expected` (what verified indexes list for
    exactly that package, version and architecture). A `.deb` that does not verify is read only
    when `unverified` (then False); None when there is none to read. The file is read once into
    memory, hashed and parsed from there. Raises ArchiveError for an unreadable `.deb`."""
    fallback = None
    for directory in dirs:
        try:
            data = (directory / deb_name(*pkg)).read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() in expected:
            return deb_members(data, paths, hashes), True
        fallback = fallback or data
    if fallback is None or not unverified:
        return None
    return deb_members(fallback, paths, hashes), False


_TYPES = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.CONTTYPE: "f", tarfile.LNKTYPE: "f",
          tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b",
          tarfile.FIFOTYPE: "p"}


def _path(name: str) -> bytes:
    return b"/" + os.fsencode(name).lstrip(b".").lstrip(b"/")


def deb_members(data: bytes, paths: Collection[bytes], hashes: Collection[str]) -> dict[bytes, Member]:
    """What the `.deb` in `data` ships at each of `paths` that it holds, with the content's
    digests under `hashes` (hard links resolved to their target's content). Raises ArchiveError."""
    try:
        return _members(data, paths, hashes)
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, KeyError, ValueError) as exc:
        raise ArchiveError(f"unreadable .deb: {exc}") from None
    except Exception as exc:  # python-debian's DebError and friends
        raise ArchiveError(f"unreadable .deb: {exc}") from None


def _members(data: bytes, paths: Collection[bytes], hashes: Collection[str]) -> dict[bytes, Member]:
    """One pass over the data archive (decompressing it is most of the cost of explanations).
    Every regular file is hashed, wanted or not: a hard link names a member before it, and
    hashing costs a fraction of decompressing the archive a second time to reach it."""
    found: dict[bytes, Member] = {}
    contents: dict[bytes, tuple[int, dict[str, bytes]]] = {}
    tar = DebFile(fileobj=io.BytesIO(data)).data.tgz()
    for info in tar:
        path = _path(info.name)
        if info.type not in _TYPES:
            continue
        ftype, size = _TYPES[info.type], info.size
        digests: dict[str, bytes] = {}
        if info.type == tarfile.LNKTYPE:
            size, digests = contents.get(_path(info.linkname), (size, {}))
        elif ftype == "f":
            digests = _digests(tar, info, hashes)
            contents[path] = (size, digests)
        if path in paths:
            link = b"" if ftype == "f" else os.fsencode(info.linkname)
            found[path] = Member(ftype, info.mode & 0o7777, info.uname, info.gname, info.uid, info.gid, size,
                                 int(info.mtime), link, digests)
    return found


def _digests(tar: tarfile.TarFile, info: tarfile.TarInfo, hashes: Collection[str]) -> dict[str, bytes]:
    hashers = {h: new() for h in hashes if (new := BY_NAME[h].new_hash) is not None}
    stream = tar.extractfile(info)
    assert stream is not None
    while chunk := stream.read(1 << 20):
        for hasher in hashers.values():
            hasher.update(chunk)
    return {h: hasher.digest() for h, hasher in hashers.items()}
