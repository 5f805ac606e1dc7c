"""`aidepy config-check` on a valid config: the summary, warnings and ignored options it prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import AIDEPY

from aidepy.cli import main


def test_config_check_summary_lists_warnings_and_ignored_options(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ok.conf"
    lines = ["gzip_dbout=yes", "Weird_Name = p+tiger", "/a f Weird_Name", "!/a/tmp"]
    lines += [f"/h{n} p+haval" for n in range(5)]
    config.write_text("\n".join(lines) + "\n")
    assert main(["config-check", "-c", str(config), "-B", "G = p", "-A", "/after G"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["rules: 8 (7 regular, 1 negative)",
                       "groups defined: 2", "files read: 1"]
    assert f"warning: {config}:2: special characters in group names are deprecated: 'Weird_Name' " \
           "(use only A-Za-z0-9)" in out
    assert f"warning: {config}:3: ignoring unsupported hash algorithm(s): tiger" in out
    folded = [line for line in out if "haval" in line]
    assert folded == [f"warning: {config}:5: ignoring unsupported hash algorithm(s): haval "
                      f"(and 4 more lines: {config}:6, {config}:7, {config}:8, ...)"]
    assert out[-1] == f"ignored option: {config}:1: gzip_dbout (aidepy's signed database format is its own)"


def test_all_warnings_lists_every_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ok.conf"
    config.write_text("".join(f"/h{n} p+gost\n" for n in range(6)))
    assert main(["config-check", "--all-warnings", "-c", str(config)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {config}:{n}: ignoring unsupported hash algorithm(s): gost"
                        for n in range(1, 7)]


def test_config_from_stdin() -> None:
    result = subprocess.run([*AIDEPY, "config-check", "-c", "-"],
                            input="/etc p+sha256\n/x Bad\n", capture_output=True, text=True, check=False)
    assert result.returncode == 17
    assert result.stderr == "aidepy: (stdin):2: group 'Bad' is not defined\n"


def test_config_check_warns_about_a_report_option_after_the_last_report_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "late.conf"
    config.write_text("report_url=stdout\n/etc p\nreport_format=json\n")
    assert main(["config-check", "-c", str(config)]) == 0
    assert f"warning: {config}:3: 'report_format' follows the last report_url ({config}:1) and applies " \
           "to no report (a report option shapes the report_url lines after it; move it before them)" \
           in capsys.readouterr().out.splitlines()
