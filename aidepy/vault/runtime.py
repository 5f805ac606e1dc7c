"""aidepy itself on the vault: the files `program.install` writes, and the verdict on the runtime it ran on.

The seed ran `/floppy/aide`, a binary nobody on the host could change. aidepy is Python, so the
vault carries what it can: `lib/aidepy.zip` (aidepy and the pure-Python parts of its
dependencies, sources only), `lib/bootstrap.py` (`aidepy.vault.bootstrap`) and the launcher
`bin/aidepy`; and the signed manifest `RUNTIME` lists what it cannot carry, with the SHA-256
of each file: the interpreter, its standard library (sources and compiled modules), the
dependencies' compiled extensions and the shared libraries a start maps. `bootstrap.py`
checks all of it when the vault's aidepy starts (its docstring has the manifest format);
`problems` is its verdict, for the report.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from importlib import machinery, metadata
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature

import aidepy
from aidepy.errors import VaultError
from aidepy.report.mail import Outcome
from aidepy.vault import bootstrap
from aidepy.vault.bootstrap import MAGIC, Manifest, file_sha256
from aidepy.vault.layout import BOOTSTRAP, LAUNCHER, MANIFEST, PROGRAM

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


RUNTIME_ALARM = "RUNTIME CHANGED"
ABSENT_ALARM = "THE VAULT'S AIDEPY DID NOT RUN"
LAUNCHER_SCRIPT = """#!/bin/sh
# aidepy from the vault: isolated (-I), without site-packages or .pth files (-S), checked
# against the signed manifest RUNTIME by lib/bootstrap.py before it runs.
here=$(cd "$(dirname "$0")/.." && pwd -P)
exec {python} -I -S -B "$here/{bootstrap}" "$here" "$@"
"""
# Standard-library directories no check needs: not listed, so never loaded from the vault's aidepy.
STDLIB_SKIP = {"__pycache__", "site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter",
               "turtledemo", "lib2to3", "ensurepip", "pydoc_data"}
# Run by `install` with the interpreter bin/aidepy uses: starts as bin/aidepy does (unchecked)
# and prints every file that start loaded, and the top-level modules it imported.
PROBE = """import sys
root = sys.argv[1]
sys.path.insert(0, root + "/lib")
import bootstrap
bootstrap.start(root, check=False)
from aidepy.vault.runtime import preload
preload()
print("\\n".join(sorted(bootstrap.loaded_files())))
print("\\n".join(sorted({f"imported {name.split('.')[0]}" for name in sys.modules})))
"""


def preload() -> None:
    """Import every aidepy module and map what they load later (libudev), so the start checks
    all of it before a command runs."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(aidepy.__path__, "aidepy."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    from aidepy.vault.medium import udev_context

    udev_context()


def problems(vault_root: Path, key: Ed25519PublicKey) -> list[str] | None:
    """The runtime verdict of this run: None when this is not the vault's aidepy (the host's
    copy), else every problem the start found and what loaded since then, the manifest's
    signature checked with `key` (the vault's), and a vault other than the one it runs from;
    each is an ALERT."""
    session = bootstrap.session
    if session is None:
        return None
    session.check_loaded()
    found = list(session.problems)
    try:
        verify_signature(session.manifest, key)
    except VaultError as exc:
        found.append(str(exc))
    if Path(session.root).resolve() != vault_root.resolve():
        found.append(f"started from {session.root}, but the vault is {vault_root}")
    return found


def notices(vault_root: Path, key: Ed25519PublicKey, alert: Callable[[str, str], str]) -> list[str]:
    """The report's lines on the runtime: an `alert` line (words, detail) per problem, or a
    warning that the host's copy of aidepy (which the host can change) made the report."""
    found = problems(vault_root, key)
    if found is None:
        return [f"WARNING: runtime: this report comes from the host's aidepy, which the host can "
                f"change; run {vault_root / LAUNCHER} ('aidepy vault install' puts it there)."]
    return [alert(RUNTIME_ALARM, line) for line in found]


def absent_alarm(host: str, mountpoint: Path) -> tuple[Outcome, str]:
    """(outcome, mail body) when the daily check could not run from the vault: sent by the
    host's copy of aidepy (`aidepy vault alarm`), which must do nothing else."""
    program = mountpoint / LAUNCHER
    if not os.path.ismount(mountpoint):
        why = f"the vault is not mounted at {mountpoint} (medium missing or unreadable?)"
    elif not os.path.isfile(program):
        why = f"the vault holds no program ({program}; 'aidepy vault install' puts it there)"
    else:
        why = (f"{program} failed (see 'journalctl -u aidepy-report.service', or cron's mail): "
               "a program or library it checks may have changed")
    body = (f"!!! aidepy ALERT on {host}: NO CHECK WAS DONE TODAY !!!\n\nTHE DAILY CHECK FROM THE "
            f"VAULT DID NOT RUN:\n    {why}\n\nThis alarm comes from the host's copy of aidepy, "
            "which checked nothing. At the console: insert and mount the vault, run "
            f"{program} report, and 'aidepy vault status'.\n")
    return Outcome(host, failure=why, alarms=(ABSENT_ALARM,)), body


def verify_signature(manifest: Manifest, key: Ed25519PublicKey) -> None:
    """Raise VaultError unless the manifest is signed by `key`."""
    try:
        key.verify(base64.b64decode(manifest.signature, validate=True), manifest.signed_part)
    except (InvalidSignature, binascii.Error, ValueError):
        raise VaultError(f"{MANIFEST}: the signature does not verify with the vault's key") from None


def check_manifest(root: Path, key: Ed25519PublicKey) -> list[str] | None:
    """`RUNTIME` on the mounted vault `root` against the files it lists, as this host has them
    now (what `vault status` shows), one line per problem; None when there is no manifest."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = Manifest(path.read_text(), str(root))
        verify_signature(manifest, key)
    except (ValueError, VaultError) as exc:
        return [str(exc)]
    found = []
    for name, digest in sorted(manifest.digests.items()):
        try:
            if file_sha256(name) != digest:
                found.append(f"{name}: differs from the signed manifest")
        except OSError as exc:
            found.append(f"{name}: {exc.strerror}")
    return found


def dependencies(name: str = "aidepy", seen: set[str] | None = None) -> list[metadata.Distribution]:
    """The distributions `name` requires, recursively (extras and excluded markers ignored)."""
    seen = set() if seen is None else seen
    found = []
    for requirement in metadata.requires(name) or []:
        if "extra ==" in requirement:
            continue
        dep = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        key = dep.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(dep)
        except metadata.PackageNotFoundError:
            continue  # an environment marker excluded it
        seen.add(key)
        found += [dist, *dependencies(dep, seen)]
    return found


def program_distributions() -> list[metadata.Distribution]:
    """The distributions the vault's program carries: aidepy's declared dependencies, and those
    of every other module a start imports (a packaged dependency may import one its metadata
    does not declare, as Debian's python3-debian does chardet)."""
    preload()
    found = {dist.metadata["Name"].lower(): dist for dist in dependencies()}
    owners = metadata.packages_distributions()
    for top in {name.partition(".")[0] for name in list(sys.modules)}:
        for owner in owners.get(top, []):
            if owner.lower() not in found and owner.lower() != "aidepy":
                found[owner.lower()] = metadata.distribution(owner)
    return list(found.values())


def dist_files(dist: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """A distribution's files (name relative to its site directory, path), from its file list;
    for one installed without a list (Debian's python3-* packages keep an egg-info without
    one), the files of its top-level modules, found where Python imports them from."""
    if dist.files is not None:
        for f in dist.files:
            if "__pycache__" not in f.parts and ".dist-info" not in str(f.parts[0]):
                yield str(f), Path(str(f.locate())).resolve()
        return
    for top in (dist.read_text("top_level.txt") or dist.metadata["Name"]).split():
        spec = machinery.PathFinder.find_spec(top)  # not sys.modules: sh replaces its own entry
        if spec is None or spec.origin is None:
            continue
        if spec.submodule_search_locations:
            package = Path(next(iter(spec.submodule_search_locations)))
            yield from ((str(p.relative_to(package.parent)), p.resolve()) for p in sorted(package.rglob("*"))
                        if p.is_file() and "__pycache__" not in p.parts)
        else:
            yield Path(spec.origin).name, Path(spec.origin).resolve()


def program_zip(only: set[str] | None = None) -> bytes:
    """lib/aidepy.zip: aidepy's sources and its dependencies' pure-Python sources (`only` those of
    these top-level packages and modules), compressed and reproducible (the same files give the
    same bytes). Each name once: two distributions may name the same module (Debian's setuptools
    lists python3-debian's `debian` among its top-level names); the first listed is kept."""
    package = Path(aidepy.__file__).parent
    files = [(f"aidepy/{p.relative_to(package)}", p) for p in package.rglob("*.py")
             if "__pycache__" not in p.parts]
    files += [(name, path) for dist in program_distributions() for name, path in dist_files(dist)
              if name.endswith(".py") and (only is None or name.split("/")[0].removesuffix(".py") in only)]
    files = list(dict(reversed(files)).items())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, path in sorted(files):
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), path.read_bytes(),
                       compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def extensions() -> dict[str, str]:
    """The dependencies' compiled modules: module name -> file."""
    found = {}
    for dist in program_distributions():
        for name, path in dist_files(dist):
            suffix = next((s for s in machinery.EXTENSION_SUFFIXES if name.endswith(s)), None)
            if suffix:
                found[name[:-len(suffix)].replace("/", ".")] = str(path)
    return found


def stdlib_path(python: str) -> list[str]:
    """The standard library's directories (sources, compiled modules): the path `python` starts
    with when nothing adds to it, as the manifest lists them."""
    out = subprocess.run([python, "-I", "-S", "-c", "import sys; print('\\n'.join(sys.path))"],
                         capture_output=True, text=True, check=True).stdout
    return [os.path.realpath(p) for p in out.splitlines() if os.path.isdir(p)]


def stdlib_files(path: list[str]) -> Iterator[str]:
    """Every module file under the standard library's directories, minus STDLIB_SKIP."""
    suffixes = (*machinery.SOURCE_SUFFIXES, *machinery.EXTENSION_SUFFIXES)
    for top in path:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in STDLIB_SKIP]
            yield from (os.path.join(dirpath, f) for f in filenames if f.endswith(suffixes))


def interpreter() -> str:
    """The interpreter bin/aidepy runs: this one, a virtual environment's link resolved (its
    site-packages is never on the vault's path anyway)."""
    return os.path.realpath(sys.executable)


def manifest_head(python: str, path: list[str], ext: dict[str, str]) -> str:
    return (f"{MAGIC}\npython {python}\n" + "".join(f"path {p}\n" for p in path)
            + "".join(f"ext {name} {where}\n" for name, where in sorted(ext.items())))


def build(stage: Path, signing_key: Ed25519PrivateKey) -> dict[str, bytes]:
    """The vault's program files (name -> bytes), staged under `stage` and probed there: one
    unchecked start with the interpreter bin/aidepy will run shows what a start loads (host
    files for the manifest, packages for the zip)."""
    python = interpreter()
    path, ext = stdlib_path(python), extensions()
    files = {PROGRAM: program_zip(), BOOTSTRAP: Path(bootstrap.__file__).read_bytes(),
             LAUNCHER: LAUNCHER_SCRIPT.format(python=python, bootstrap=BOOTSTRAP).encode()}
    head = manifest_head(python, path, ext)
    (stage / PROGRAM).parent.mkdir()
    for name in (PROGRAM, BOOTSTRAP):
        (stage / name).write_bytes(files[name])
    (stage / MANIFEST).write_text(head)
    probe = subprocess.run([python, "-I", "-S", "-B", "-c", PROBE, str(stage)],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise VaultError(f"aidepy does not start from the vault's files: {probe.stderr.strip()}")
    lines = probe.stdout.splitlines()
    loaded = {p for p in lines if p.startswith("/") and not p.startswith(f"{stage}/")}
    # Only what a start imports: a dependency's own dependencies it does not use stay behind.
    imported = {line.removeprefix("imported ") for line in lines if line.startswith("imported ")}
    files[PROGRAM] = program_zip(imported)
    listed = sorted({*stdlib_files(path), *ext.values(), *loaded})
    body = head + "".join(f"sha256 {file_sha256(p)} {p}\n" for p in listed)
    body += "".join(f"sha256 {bootstrap.sha256(files[n])} {n}\n" for n in (PROGRAM, BOOTSTRAP))
    signature = base64.b64encode(signing_key.sign(body.encode())).decode()
    files[MANIFEST] = f"{body}ed25519 {signature}\n".encode()
    return files
