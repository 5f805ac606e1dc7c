"""`aidepy path-check`: aide -p's line format, --json, argument errors (no aide needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aidepy.cli import main
from aidepy.errors import ExitCode

CONFIG = """\
Base = p+u+g
/etc/ f,l Base+sha256
=/var/log/ Base
!/etc/shadow$
/etc/ssh/ d Base+i
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rules.conf"
    path.write_text(CONFIG)
    return path


def run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, list[str]]:
    code = main(["path-check", *args])
    return code, capsysbinary.readouterr().out.decode().split("\n")[:-1]


def test_each_kind_of_decision_prints_like_aide_p(config: Path, capsysbinary: pytest.CaptureFixture[bytes]
                                                  ) -> None:
    code, lines = run(capsysbinary, "-c", str(config), "f:/etc/passwd", "f:/var/log/syslog",
                      "f:/etc/shadow", "d:/srv", "d:/etc/ssh", "d:/etc/ssh/x")
    assert lines == [
        f"[X] f '/etc/passwd': selective rule: '/etc/ f,l p+u+g+sha256' "
        f"({config}:2: '/etc/ f,l Base+sha256')",
        f"[X] f '/var/log/syslog': equal rule: '=/var/log/ (none) p+u+g' ({config}:3: '=/var/log/ Base')",
        f"[ ] f '/etc/shadow': negative rule: '!/etc/shadow$ (none)' ({config}:4: '!/etc/shadow$')",
        "[ ] d '/srv': no matching rule",
        "[ ] d '/etc/ssh': no matching rule",  # `/etc/ssh/` hangs below /etc/ssh; `/etc/` is f,l only
        f"[X] d '/etc/ssh/x': selective rule: '/etc/ssh/ d p+u+g+i' ({config}:5: '/etc/ssh/ d Base+i')",
    ]
    assert code == 1


def test_all_selected_exits_0_and_control_characters_in_paths_are_escaped(
        config: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, lines = run(capsysbinary, "-c", str(config), "f:/etc/a\nb\tc")
    assert code == 0
    assert lines[0].startswith("[X] f '/etc/a\\012b\\011c': selective rule:")


def test_json_lists_decision_rule_and_attributes_in_aide_order(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["path-check", "--json", "-c", str(config), "f:/etc/passwd", "f:/etc/shadow", "p:/srv/x"])
    assert json.loads(capsys.readouterr().out) == [
        {"path": "/etc/passwd", "type": "f", "selected": True, "rule": f"{config}:2",
         "attributes": ["p", "u", "g", "sha256"]},
        {"path": "/etc/shadow", "type": "f", "selected": False, "rule": f"{config}:4", "attributes": []},
        {"path": "/srv/x", "type": "p", "selected": False, "rule": None, "attributes": []},
    ]


@pytest.mark.parametrize(("argument", "reason"), [
    ("x:/etc", "invalid file type 'x'"), ("/etc", "invalid file type"), ("f:etc", "absolute path"),
    ("D:/etc", "invalid file type 'D'"),
])
def test_malformed_argument_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str],
                                             argument: str, reason: str) -> None:
    assert main(["path-check", "-c", str(config), argument]) == ExitCode.INVALID_ARGUMENT
    assert reason in capsys.readouterr().err


def test_invalid_config_line_exits_17(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("/etc/(unclosed p\n")
    assert main(["path-check", "-c", str(bad), "f:/etc/passwd"]) == ExitCode.INVALID_CONFIG
    assert f"{bad}:1:" in capsys.readouterr().err
