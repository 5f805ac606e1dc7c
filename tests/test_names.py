"""Every name has one home: the files in state_dir are spelled in `aidepy.state`, the files on
the vault in `aidepy.vault_layout`; nothing else in the package spells them again."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from aidepy import bootstrap, state, vault_layout

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
