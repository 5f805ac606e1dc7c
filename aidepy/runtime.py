"""aidepy itself on the vault, and the fingerprint of the runtime it runs on.

The seed ran `/floppy/aide`, a binary nobody on the host could change. aidepy is Python, so
`aidepy vault install` copies the package onto the vault (`lib/aidepy`, launcher `bin/aidepy`)
when it fits, and always records in `RUNTIME` the hashes of what the vault cannot hold: the
interpreter, libpython, every file of aidepy's dependencies (recursively, compiled ones
included) and the stdlib (its Python sources and compiled modules). `runtime_changes`
reports what differs now.

`RUNTIME` format: one line per item, "<sha256 hex>  <kind>  <name>", kind `file` (one file,
name = absolute path), `dist` (all files a distribution's RECORD lists, name = distribution)
or `stdlib` (every *.py and *.so below the stdlib directory outside site-packages, name =
directory).
A tree's digest is SHA-256 over its sorted "relative path NUL file SHA-256 NL" lines.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import aidepy
from aidepy.atomic import space_needed

if TYPE_CHECKING:
    from aidepy.vault import Vault

LAUNCHER = """#!/bin/sh
# aidepy from the vault: this copy of the program on the host's interpreter (hashed in RUNTIME).
here=$(cd "$(dirname "$0")/.." && pwd)
exec {python} -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from aidepy.cli import main; \
sys.exit(main())' "$here/lib" "$@"
"""
LAUNCHER_NAME = "bin/aidepy"
MANIFEST = "RUNTIME"
PROGRAM_FILES = ("*.py", "py.typed")
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}


@dataclass(frozen=True)
class InstallReport:
    """What `install` did."""

    program_installed: bool
    message: str


@dataclass(frozen=True)
class RuntimeItem:
    """One line of the RUNTIME manifest."""

    sha256: str
    kind: str
    name: str


def program_files() -> list[tuple[Path, str]]:
    """aidepy's own files and their names on the vault (`lib/aidepy/...`)."""
    package = Path(aidepy.__file__).parent
    found = sorted({p for pattern in PROGRAM_FILES for p in package.rglob(pattern)
                    if not SKIP_DIRS.intersection(p.parts)})
    return [(p, f"lib/aidepy/{p.relative_to(package)}") for p in found]


def launcher() -> bytes:
    """The `bin/aidepy` script: runs the vault's copy with this interpreter."""
    return LAUNCHER.format(python=Path(sys.executable).absolute()).encode()


def runtime_items() -> list[RuntimeItem]:
    """What the current runtime consists of, hashed."""
    files = {Path(sys.executable).resolve()}
    libdir, ldlibrary = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlibrary and (Path(libdir) / ldlibrary).is_file():
        files.add((Path(libdir) / ldlibrary).resolve())
    items = [RuntimeItem(_file_digest(p), "file", str(p)) for p in sorted(files)]
    items += [RuntimeItem(_dist_digest(name), "dist", name) for name in sorted(_dependencies("aidepy"))]
    stdlib = sysconfig.get_path("stdlib")
    items.append(RuntimeItem(_stdlib_digest(Path(stdlib)), "stdlib", stdlib))
    return items


def encode_manifest(items: Iterable[RuntimeItem]) -> bytes:
    """The RUNTIME file's bytes."""
    return "".join(f"{i.sha256}  {i.kind}  {i.name}\n" for i in items).encode()


def runtime_changes(manifest: bytes) -> list[str]:
    """What differs between the recorded runtime and the one running now (one line each)."""
    problems = []
    for line in manifest.decode().splitlines():
        digest, kind, name = line.split("  ", 2)
        try:
            now = _item_digest(kind, name)
        except (OSError, metadata.PackageNotFoundError) as exc:
            problems.append(f"{kind} {name}: missing ({exc})")
            continue
        if now != digest:
            problems.append(f"{kind} {name}: changed since 'aidepy vault install'")
    return problems


def _item_digest(kind: str, name: str) -> str:
    if kind == "file":
        return _file_digest(Path(name))
    if kind == "dist":
        return _dist_digest(name)
    return _stdlib_digest(Path(name))


def install(vault: Vault) -> InstallReport:
    """Write RUNTIME, and aidepy itself when it fits while leaving room to replace the baseline
    (the old program copy counts as free, since it is replaced). The vault must be mounted rw."""
    vault.write_file(MANIFEST, [encode_manifest(runtime_items())])
    root = vault.root
    files = [*((src.read_bytes(), name, 0o644) for src, name in program_files()),
             (launcher(), LAUNCHER_NAME, 0o755)]
    needed = sum(space_needed(len(data), root) for data, _, _ in files)
    old_program = sum(space_needed(p.stat().st_size, root) for p in _installed(root))
    baseline = root / "aidepy.db"
    reserve = space_needed(baseline.stat().st_size, root) if baseline.exists() else 0
    available = vault.free_bytes() + old_program - reserve
    if needed > available:
        for path in _installed(root):
            vault.remove(str(path.relative_to(root)))  # an old copy would not match RUNTIME
        return InstallReport(False, f"the program needs {needed} bytes, {available} are available "
                                    f"(keeping {reserve} for the next baseline); recorded the runtime only")
    keep = {vault.write_file(name, [data], mode=mode).path for data, name, mode in files}
    for path in _installed(root):
        if path not in keep:
            vault.remove(str(path.relative_to(root)))
    return InstallReport(True, f"aidepy {aidepy.__version__} installed: run {root / LAUNCHER_NAME}")


def _installed(root: Path) -> list[Path]:
    return [p for d in ("lib", "bin") for p in (root / d).rglob("*") if p.is_file()]


def _dependencies(name: str, seen: set[str] | None = None) -> set[str]:
    """Names of the distributions `name` requires, recursively (extras ignored)."""
    seen = set() if seen is None else seen
    for requirement in metadata.requires(name) or []:
        if "extra ==" in requirement:
            continue
        dep = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        key = dep.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            metadata.distribution(dep)
        except metadata.PackageNotFoundError:
            continue  # an environment marker excluded it
        seen.add(key)
        _dependencies(dep, seen)
    return seen


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_digest(files: Iterable[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for rel, path in sorted(files):
        digest.update(f"{rel}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()


def _dist_digest(name: str) -> str:
    dist = metadata.distribution(name)
    files = [(str(f), Path(str(f.locate()))) for f in dist.files or []
             if "__pycache__" not in f.parts and Path(str(f.locate())).is_file()]
    return _tree_digest(files)


def _stdlib_digest(root: Path) -> str:
    return _tree_digest((str(p.relative_to(root)), p) for p in _walk_stdlib(root))


def _walk_stdlib(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        yield from (Path(dirpath) / f for f in filenames if f.endswith((".py", ".so")))
