"""The units, udev rule and cron file in systemd/ are valid for the tools that read them."""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LoopDevice, require_tool

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNITS = ("aidepy-report.service", "aidepy-report.timer", "var-lib-aidepy-vault.mount")
INSTALLED_AIDEPY = "/usr/local/bin/aidepy"
RULE = "90-aidepy-vault.rules"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name)
    return parser


def test_every_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    # verify insists that ExecStart's program exists; the README installs it as /usr/local/bin/aidepy,
    # here the console script of this checkout stands in for it (nothing else is changed).
    here = shutil.which("aidepy", path=os.path.dirname(sys.executable)) or shutil.which("aidepy")
    assert here, "the aidepy console script is not installed (pip install -e .)"
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (tmp_path / name).write_text(text.replace(INSTALLED_AIDEPY, here))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_service_runs_the_report_and_counts_differences_as_success() -> None:
    service = unit("aidepy-report.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == f"{INSTALLED_AIDEPY} report"
    assert service["SuccessExitStatus"].split() == [str(code) for code in range(1, 8)]


def test_timer_fires_daily_at_0725_and_catches_up_after_downtime() -> None:
    timer = unit("aidepy-report.timer")["Timer"]
    assert timer["Persistent"] == "true"
    analyze = require_tool("systemd-analyze")
    out = subprocess.run([analyze, "calendar", timer["OnCalendar"]], capture_output=True, text=True,
                         check=True).stdout
    assert "Normalized form: *-*-* 07:25:00" in out


def test_mount_unit_mounts_the_labelled_vault_read_only() -> None:
    mount = unit("var-lib-aidepy-vault.mount")["Mount"]
    assert mount["What"] == "/dev/disk/by-label/AIDEPY"
    assert mount["Where"] == "/var/lib/aidepy/vault"
    assert "ro" in mount["Options"].split(",")


CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def cron_field_ok(field: str, low: int, high: int) -> bool:
    """One cron time field: `*`, numbers, ranges, lists and steps within [low, high]."""
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            return False
    return True


def test_cron_file_is_a_valid_cron_d_file() -> None:
    jobs = []
    for line in (SYSTEMD / "aidepy").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\s*=.*", line):
            continue  # environment setting
        jobs.append(line.split(None, 6))
    assert len(jobs) == 1
    fields = jobs[0]
    assert len(fields) == 7, "cron.d lines have 5 time fields, a user and a command"
    assert all(cron_field_ok(f, lo, hi) for f, (lo, hi) in zip(fields[:5], CRON_RANGES, strict=True))
    assert fields[:5] == ["25", "7", "*", "*", "*"]
    assert pwd.getpwnam(fields[5]).pw_uid == 0
    assert "aidepy report" in fields[6]


def test_cron_file_name_is_one_cron_runs() -> None:
    # cron(8) ignores files in /etc/cron.d whose names contain dots or other odd characters.
    assert re.fullmatch(r"[A-Za-z0-9_-]+", "aidepy") and (SYSTEMD / "aidepy").is_file()


@pytest.fixture(params=["AIDEPY", "OTHER"])
def labelled_loop_device(make_loop_device: Callable[..., LoopDevice], request: pytest.FixtureRequest) -> Path:
    """A loop device holding an ext2 filesystem labelled AIDEPY (or not)."""
    loop = make_loop_device()
    subprocess.run([require_tool("mke2fs"), "-q", "-L", request.param, "-m", "0", loop.device], check=True)
    return Path(loop.device)


def test_udev_rule_wants_the_mount_only_for_a_medium_with_the_vault_label(labelled_loop_device: Path) -> None:
    """`udevadm test` runs the installed rules on the device: our rule parses and sets SYSTEMD_WANTS."""
    udevadm = require_tool("udevadm")
    installed = Path("/etc/udev/rules.d") / RULE
    if installed.exists():
        pytest.skip(f"{installed} is already installed here; not touching it")
    shutil.copy(SYSTEMD / RULE, installed)
    try:
        sysfs = f"/sys/class/block/{labelled_loop_device.name}"
        result = subprocess.run([udevadm, "test", "--action=add", sysfs], capture_output=True, text=True)
    finally:
        installed.unlink()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"Reading rules file: {installed}" in out
    assert not [ln for ln in out.splitlines() if ln.startswith(f"{installed}:")], "udevadm found errors"
    label = labelled_loop_device_label(out)
    assert label in ("AIDEPY", "OTHER"), "udev's blkid builtin did not see the filesystem label"
    wants = "SYSTEMD_WANTS=var-lib-aidepy-vault.mount" in out.splitlines()
    assert wants == (label == "AIDEPY"), f"label {label}: SYSTEMD_WANTS set: {wants}"
    if wants:
        assert any(ln.startswith("TAGS=") and ":systemd:" in ln for ln in out.splitlines())


def labelled_loop_device_label(udevadm_output: str) -> str | None:
    """The ID_FS_LABEL that udev's blkid builtin found."""
    found = [ln.split("=", 1)[1] for ln in udevadm_output.splitlines() if ln.startswith("ID_FS_LABEL=")]
    return found[0] if found else None
