"""Every name has one home: the files in state_dir are spelled in `aidepy.state`, the files on
the vault in `aidepy.vault.layout`; nothing else in the package spells them again. Every
error an admin sees is defined in `aidepy.errors`, with its exit code."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import socket
import stat
from pathlib import Path
from types import ModuleType

import pytest

import aidepy
from aidepy import errors, state
from aidepy.entry import LINUX_TYPE_LETTERS, TYPE_BY_FMT, TYPE_LETTERS, TYPE_NAMES
from aidepy.errors import AidepyError, ExitCode
from aidepy.vault import bootstrap
from aidepy.vault import layout as vault_layout

PACKAGE = Path(state.__file__).parent
HOMES = {Path(state.__file__), Path(vault_layout.__file__)}


def spelled_names(module: ModuleType) -> dict[str, str]:
    """The module's file names (its upper-case str constants), by constant name. Plain words
    (`rules`, `lib`) are left out: a dict key or a tool's argument spells them too."""
    return {k: v for k, v in vars(module).items()
            if k.isupper() and isinstance(v, str) and (re.search(r"[./-]", v) or v.isupper())}


NAMES = {**{f"state.{k}": v for k, v in spelled_names(state).items()},
         **{f"vault_layout.{k}": v for k, v in spelled_names(vault_layout).items()}}


def test_the_homes_name_what_the_issue_lists() -> None:
    assert {"aidepy.lock", "generations.seen", "generation.seen", "aidepy.db.new", "report.seen",
            "last-report.txt", "promote-"} <= set(NAMES.values())
    assert {"aidepy.db", "aidepy.pub", "aidepy.anchor", "aidepy.conf", "RUNTIME", "lib/aidepy.zip",
            "bin/aidepy", "lib/bootstrap.py", "VAULT"} <= set(NAMES.values())


@pytest.mark.parametrize("constant", sorted(NAMES))
def test_a_file_name_is_spelled_only_in_its_home(constant: str) -> None:
    literal = re.compile(r"""(?<![\w.])["']""" + re.escape(NAMES[constant]) + r"""["']""")
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}"
             for path in sorted(PACKAGE.rglob("*.py")) if path not in HOMES | {Path(bootstrap.__file__)}
             for n, line in enumerate(path.read_text().splitlines(), 1) if literal.search(line)]
    assert found == [], f"{NAMES[constant]!r} is spelled outside its home; import {constant}"


def test_bootstrap_spells_the_vault_names_as_the_layout_does() -> None:
    """bootstrap.py runs before aidepy can be imported, so it keeps its own copy of two names."""
    assert (bootstrap.MANIFEST, bootstrap.PROGRAM) == (vault_layout.MANIFEST, vault_layout.PROGRAM)
    spelled = {v for v in vars(bootstrap).values() if isinstance(v, str)} & set(NAMES.values())
    assert spelled == {bootstrap.MANIFEST, bootstrap.PROGRAM}


def aidepy_errors() -> list[type[AidepyError]]:
    """Every AidepyError subclass in the package, each module imported (pkgutil's walk)."""
    for info in pkgutil.walk_packages(aidepy.__path__, "aidepy."):
        if info.name != "aidepy.__main__":
            importlib.import_module(info.name)
    found, todo = [], [AidepyError]
    while todo:
        todo += (children := todo.pop().__subclasses__())
        found += children
    return found


def test_every_error_is_defined_in_errors_with_its_exit_code() -> None:
    found = aidepy_errors()
    strays = [f"{e.__module__}.{e.__qualname__}" for e in found if e.__module__ != errors.__name__]
    assert strays == [], "define these in aidepy/errors.py"
    assert {"VaultFullError", "KeyFileError", "PassphraseError", "UnsupportedFormatError",
            "ConfigReadError"} <= {e.__name__ for e in found}
    assert all(isinstance(e.exit_code, ExitCode) and e.alarm.isupper() for e in found)


def test_the_file_type_catalogue_names_every_file_linux_has(tmp_path: Path) -> None:
    """One catalogue of file types: a scan's letter, a rule's restriction and the report's name."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("nowhere")
    (tmp_path / "file").write_bytes(b"")
    block = next((p for p in sorted(Path("/dev").iterdir()) if p.is_block_device()), None)
    if block is None:
        pytest.skip("no block device under /dev")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "socket"))
        files = [*tmp_path.iterdir(), tmp_path, Path("/dev/null"), block]
        kinds = [stat.S_IFMT(os.lstat(p).st_mode) for p in files]
    assert sorted(TYPE_BY_FMT[k] for k in kinds) == sorted(LINUX_TYPE_LETTERS)
    assert set(TYPE_NAMES) == set(TYPE_LETTERS) > set(LINUX_TYPE_LETTERS)
