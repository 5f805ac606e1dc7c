"""The manual pages aidepy(8) and aidepy.conf(5): in step with --help and the config parser, and
clean for man(1) as lintian checks them."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool

from aidepy.cli import AIDE_SPELLINGS, build_parser
from aidepy.config.options import IGNORED
from aidepy.config.syntax import DEPRECATED_OPTIONS, OPTIONS

MAN = Path(__file__).resolve().parent.parent / "docs" / "man"
PROGRAM = MAN / "aidepy.8.rst"
CONFIG = MAN / "aidepy.conf.5.rst"


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and vault action, by its full name ("check", "vault format")."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(subcommands(sub, f"{prefix}{name} "))
    return found


def test_every_command_and_option_of_help_is_in_aidepy_8() -> None:
    page = PROGRAM.read_text()
    parser = build_parser()
    commands = subcommands(parser)
    assert "vault format" in commands and "demo" in commands
    for name, sub in [("", parser), *commands.items()]:
        assert not name or f"**aidepy {name}" in page, name
        for action in sub._actions:
            for option in action.option_strings:
                assert f"**{option}**" in page, (name, option)
    for spelling in AIDE_SPELLINGS:
        assert f"**{spelling}**" in page, spelling


def test_every_exit_code_of_help_is_in_aidepy_8() -> None:
    status = PROGRAM.read_text().split("EXIT STATUS\n")[1].split("FILES\n")[0]
    epilog = build_parser().epilog or ""
    codes = {int(code) for code in re.findall(r"\b(\d+) [a-z]", epilog)}
    assert {1, 2, 4, 14, 20, 21, 22, 130} <= codes
    for code in codes:
        assert f"**{code}**" in status, code


def test_every_option_the_config_parser_knows_is_in_aidepy_conf_5() -> None:
    page = CONFIG.read_text()
    for option in OPTIONS:
        assert f"**{option}**" in page, option
    assert set(DEPRECATED_OPTIONS) <= set(OPTIONS) and set(IGNORED) <= set(OPTIONS)


@pytest.mark.parametrize("source", [PROGRAM, CONFIG], ids=lambda p: p.name)
def test_man_page_builds_and_man_reports_no_warnings(source: Path, tmp_path: Path) -> None:
    # What debian/rules runs, then what lintian runs on the result.
    page = tmp_path / source.stem
    subprocess.run([require_tool("rst2man"), "--strict", str(source), str(page)], check=True)
    man = [require_tool("man"), "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)]
    env = {"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(man, capture_output=True, text=True, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert source.stem.split(".")[0].upper() in result.stdout  # the title, in troff's output
