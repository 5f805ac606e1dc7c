"""Random config lines, read by aidepy and by `aide -D`: both accept or both refuse, with equal rules.

The lines are built from the pieces AIDE's lexer cares about (escapes, macros, operators,
restrictions, keywords, stray characters), with fixed seeds so a failure is reproducible.
Lines ending in ` \\` are left out: there aidepy deliberately continues the line (its one
extension) where aide refuses it.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from test_config_aide import aide_rules, our_rules

from aidepy.config.evaluate import load
from aidepy.errors import ConfigError

pytestmark = pytest.mark.skipif(shutil.which("aide") is None, reason="Debian's aide is not installed")

PIECES = [
    "/a", "=/b", "!/c", "/", " ", " ", "\t", "p", "+", "-", ",", "f", "d", "R", "Foo", "foo", "@@define",
    "@@undef", "@@{X}", "@@{", "}", "\\", "\\\\", "\\ ", "@", "#", "=", " = ", "X", "0", "@@if", "defined",
    "not", "@@endif", "@@else", "database_in", "file:/x", "report_level", "summary", "G1", "my_G", "s", "$",
    "(", ")", ".*", "[[:alnum:]]", "\r", "sha256", "tiger", ">", "@@ifdef", "!", "%", "ä", "l", "E",
]
LINES = [
    "@@if defined X", "@@if not defined Y", "@@ifdef X", "@@ifndef X", "@@else", "@@endif", "@@endif # c",
    "/a p", "!/b", "=/c f G1", "@@define Y", "@@undef X", "@@define X z", "/@@{X} p", "G2 = G1+u", "/d G2",
    "@@if exists /etc", "@@if hostname nothere", "@@ifhost nothere", "@@ifnhost nothere", "# comment", "",
    "report_level=summary", "@@else # x", "/e f,d G1-p+u", "database_in=file:/q", "/f 0 R",
    "@@x_include_setenv A b", "@@if not not defined X", "/g/@@{Y}h p",
]


def _same_verdict(config: Path) -> None:
    aide = subprocess.run(["aide", "-D", "-c", str(config)], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)
    try:
        ours = our_rules(load(config))
    except ConfigError as exc:
        assert aide.returncode == 17, f"aidepy refuses ({exc}), aide accepts: {config.read_bytes()!r}"
        return
    assert aide.returncode == 0, f"aide refuses, aidepy accepts: {config.read_bytes()!r}"
    assert ours == aide_rules(config)


@pytest.mark.parametrize("seed", range(4))
def test_random_lines_read_alike(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    config = tmp_path / "c.conf"
    for _ in range(40):
        line = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))
        if line.rstrip(" \t").endswith("\\"):
            continue
        config.write_text(f"G1 = p\n@@define X y\n{line}\n/z p\n")
        _same_verdict(config)


@pytest.mark.parametrize("seed", range(4))
def test_random_blocks_read_alike(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    config = tmp_path / "c.conf"
    for _ in range(25):
        body = "\n".join(rng.choice(LINES) for _ in range(rng.randint(1, 9)))
        config.write_text(f"G1 = p\n{body}\n")
        _same_verdict(config)
