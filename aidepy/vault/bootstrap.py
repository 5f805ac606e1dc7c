"""The vault's entry point: start aidepy from the vault on the host's interpreter, checked.

`<vault>/bin/aidepy` runs `PYTHON -I -S -B <vault>/lib/bootstrap.py <vault> ARGS...`: no
environment variables, no user site, no site-packages and no `.pth` files (-S), no bytecode
written. This file (a copy of `aidepy/vault/bootstrap.py`, standard library only, because nothing
else may be imported before it has checked it) then
  1. reads the manifest `RUNTIME` and checks `lib/aidepy.zip` (aidepy and its pure-Python
     dependencies) against it before putting it on `sys.path`, with the interpreter's
     standard library after it and nothing else;
  2. checks every module file against the manifest *before* it runs: Python sources (always
     compiled from source: a planted `.pyc` is never read) and compiled extensions, which load
     only from the paths the manifest names (`ext` lines); a file that differs or is not listed
     is refused (ImportError);
  3. imports aidepy, then checks after the fact what loaded before step 2 could (the
     interpreter, the modules Python itself imports at start-up and their `.pyc`) and every
     executable mapping in /proc/self/maps (shared libraries);
  4. hands the problems to `aidepy.vault.runtime`, which checks the manifest's signature with the
     vault's key and makes every problem an ALERT in the report, and runs the command.
A refused module stops the run with exit status 20 and an ALERT line on stderr (the shipped
units then mail the alarm). `aidepy.vault.runtime` writes the manifest; its format:

    aidepy-runtime 1
    python <interpreter>          the program bin/aidepy runs
    path <directory>              sys.path after lib/aidepy.zip, in order
    ext <module> <file>           a compiled extension of a dependency, loaded from the host
    sha256 <hex> <file>           a file that may be loaded (absolute, or relative to the vault)
    ed25519 <base64 signature of all lines above, newlines included>
"""

from __future__ import annotations

import sys
from importlib import machinery
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import CodeType, ModuleType

# The vault's names, as `aidepy.vault.layout` spells them (this file runs before aidepy can be
# imported; tests/test_names.py checks that they agree).
MANIFEST = "RUNTIME"
PROGRAM = "lib/aidepy.zip"
MAGIC = "aidepy-runtime 1"
REFUSED_EXIT = 20  # ExitCode.VERIFICATION_FAILED: aidepy.errors cannot be imported yet
CHUNK = 1 << 20


class Manifest:
    """The parsed manifest: what may be loaded, and where from."""

    def __init__(self, text: str, root: str) -> None:
        lines = text.splitlines(keepends=True)
        if not lines or lines[0].rstrip("\n") != MAGIC:
            raise ValueError(f"{MANIFEST}: not an aidepy runtime manifest")
        self.signed_part = "".join(line for line in lines if not line.startswith("ed25519 ")).encode()
        self.signature = next((line[8:].strip() for line in lines if line.startswith("ed25519 ")), "")
        self.python, self.path, self.ext, self.digests = "", [], {}, {}
        for line in lines[1:]:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "python":
                self.python = rest
            elif kind == "path":
                self.path.append(rest)
            elif kind == "ext":
                name, _, where = rest.partition(" ")
                self.ext[name] = where
            elif kind == "sha256":
                digest, _, name = rest.partition(" ")
                self.digests[name if name.startswith("/") else f"{root}/{name}"] = digest


class Session:
    """This run from the vault: its root, manifest and the problems found so far."""

    def __init__(self, root: str, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self.problems: list[str] = []
        self.checked: set[str] = set()

    def check(self, path: str, data: bytes | None = None) -> str | None:
        """Why the file at `path` (with content `data`, if read already) may not be trusted."""
        self.checked.add(path)  # a problem is reported once
        expected = self.manifest.digests.get(path)
        if expected is None:
            return f"{path}: loaded, but not in the signed manifest"
        try:
            actual = sha256(data) if data is not None else file_sha256(path)
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        return None if actual == expected else f"{path}: differs from the signed manifest"

    def refuse(self, path: str, data: bytes | None = None) -> None:
        """Record and raise ImportError when `path` does not match the manifest."""
        if problem := self.check(path, data):
            self.problems.append(problem)
            raise ImportError(f"refused to load {problem}", path=path)

    def check_loaded(self) -> None:
        """After the fact: the interpreter, module files not checked yet, executable mappings."""
        for path in sorted(loaded_files() - self.checked):
            if problem := self.check(path):
                self.problems.append(problem)


session: Session | None = None
"""Set by `main` when aidepy started from the vault; `aidepy.vault.runtime` reads it."""


def sha256(data: bytes) -> str:
    import _sha256  # loaded before the checking hooks, checked afterwards

    return str(_sha256.sha256(data).hexdigest())


def file_sha256(path: str) -> str:
    import _sha256

    digest = _sha256.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return str(digest.hexdigest())


def loaded_files() -> set[str]:
    """The files this process runs: the interpreter, every module's source (and the cached
    bytecode of modules loaded before the checking hooks) and every executable mapping."""
    import os  # frozen into the interpreter

    found = {os.path.realpath(sys.executable)}
    if main_file := getattr(sys.modules.get("__main__"), "__file__", None):
        found.add(os.path.realpath(main_file))  # this file, run as a script
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        if spec is None or not spec.has_location or not spec.origin:
            continue
        if spec.origin.endswith(".zip") or ".zip/" in spec.origin:
            continue  # inside lib/aidepy.zip, which is checked as one file
        found.add(spec.origin)
        cached = getattr(spec, "cached", None)
        if cached and not isinstance(spec.loader, CheckedSourceLoader) and os.path.exists(cached):
            found.add(cached)
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/"):
                found.add(fields[5].rstrip("\n"))
    return found


class CheckedSourceLoader(machinery.SourceFileLoader):
    """Runs a module only from its source, and only once the source matches the manifest."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        data = self.get_data(path)
        if session is not None:
            session.refuse(path, data)
        return self.source_to_code(data, path)


class CheckedExtensionLoader(machinery.ExtensionFileLoader):
    """Loads a compiled module only once its file matches the manifest."""

    def create_module(self, spec: machinery.ModuleSpec) -> ModuleType:
        if session is not None:
            session.refuse(self.path)
        return super().create_module(spec)


class ExtensionFinder:
    """Finds the dependencies' compiled modules at the paths the manifest names (they are not
    in lib/aidepy.zip, and the host's site-packages is not on sys.path)."""

    def __init__(self, ext: dict[str, str]) -> None:
        self.ext = ext

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        where = self.ext.get(fullname)
        if where is None:
            return None
        return machinery.ModuleSpec(fullname, CheckedExtensionLoader(fullname, where), origin=where)


def install_hooks(manifest: Manifest) -> None:
    """Checked loaders only: the manifest's compiled extensions, then sys.path's files."""
    sys.meta_path.insert(0, ExtensionFinder(manifest.ext))  # type: ignore[arg-type]
    hook = machinery.FileFinder.path_hook(
        (CheckedExtensionLoader, machinery.EXTENSION_SUFFIXES),
        (CheckedSourceLoader, machinery.SOURCE_SUFFIXES),
    )
    sys.path_hooks[:] = [h for h in sys.path_hooks if "FileFinder" not in repr(h)] + [hook]
    sys.path_importer_cache.clear()
    sys.dont_write_bytecode = True


def start(root: str, *, check: bool = True) -> Manifest:
    """Set up the checked import machinery for the program on the vault at `root`, after checking
    the program itself. `check=False` only records (how `aidepy vault install` learns what a
    start loads, before there is a manifest to check against)."""
    global session
    with open(f"{root}/{MANIFEST}", encoding="utf-8") as f:
        manifest = Manifest(f.read(), root)
    if check:
        session = Session(root, manifest)
        with open(f"{root}/{PROGRAM}", "rb") as f:
            program = f.read()
        session.refuse(f"{root}/{PROGRAM}", program)
        sys.modules["aidepy.vault.bootstrap"] = sys.modules[__name__]  # where aidepy.runtime finds it
    sys.path[:] = [f"{root}/{PROGRAM}", *manifest.path]
    install_hooks(manifest)
    return manifest


def main() -> int:
    root, args = sys.argv[1], sys.argv[2:]
    try:
        start(root)
        from aidepy.cli import main as aidepy_main
        from aidepy.vault.runtime import preload

        preload()
    except (OSError, ValueError, ImportError) as exc:
        print(f"aidepy: ALERT: aidepy from the vault {root} cannot start: {exc}", file=sys.stderr)
        return REFUSED_EXIT
    assert session is not None
    session.check_loaded()
    sys.argv[0] = f"{root}/bin/aidepy"
    return int(aidepy_main(args))


if __name__ == "__main__":
    sys.exit(main())
