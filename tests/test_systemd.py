"""The units, udev rule and cron file in systemd/ are valid for the tools that read them."""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LoopDevice, RootMailbox, require_tool

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNITS = ("aidepy-report.service", "aidepy-alarm.service", "aidepy-report.timer", "var-lib-aidepy-vault.mount")
INSTALLED_AIDEPY = "/usr/local/bin/aidepy"
VAULT = "/var/lib/aidepy/vault"
VAULT_AIDEPY = f"{VAULT}/bin/aidepy"
RULE = "90-aidepy-vault.rules"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name)
    return parser


def test_every_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    # verify insists that ExecStart's program exists; the README installs it as /usr/local/bin/aidepy,
    # `aidepy vault install` puts the vault's at /var/lib/aidepy/vault/bin/aidepy; here the console
    # script of this checkout stands in for both (nothing else is changed).
    here = shutil.which("aidepy", path=os.path.dirname(sys.executable)) or shutil.which("aidepy")
    assert here, "the aidepy console script is not installed (pip install -e .)"
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (tmp_path / name).write_text(text.replace(INSTALLED_AIDEPY, here).replace(VAULT_AIDEPY, here))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_service_runs_the_vaults_aidepy_and_counts_differences_as_success() -> None:
    report = unit("aidepy-report.service")
    service = report["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == f"{VAULT_AIDEPY} report"
    assert service["SuccessExitStatus"].split() == [str(code) for code in range(1, 8)]
    assert report["Unit"]["Wants"] == "var-lib-aidepy-vault.mount"  # not Requires: a failure must run
    assert "var-lib-aidepy-vault.mount" in report["Unit"]["After"].split()


def test_a_failed_run_starts_the_hosts_alarm_and_nothing_else() -> None:
    assert unit("aidepy-report.service")["Unit"]["OnFailure"] == "aidepy-alarm.service"
    alarm = unit("aidepy-alarm.service")["Service"]
    assert alarm["ExecStart"] == f"{INSTALLED_AIDEPY} vault alarm"


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
    options = mount["Options"].split(",")
    assert "ro" in options and "nodev" in options and "nosuid" in options
    assert "noexec" not in options  # the vault's bin/aidepy runs from it


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
    assert f"{VAULT_AIDEPY} report" in fields[6]


def cron_command() -> str:
    line = next(ln for ln in (SYSTEMD / "aidepy").read_text().splitlines() if ln.startswith("25 "))
    return line.split(None, 6)[6]


def test_cron_line_mails_the_alarm_when_the_vault_is_missing(
        root_mailbox: RootMailbox, tmp_path: Path) -> None:
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"vault_mountpoint={tmp_path / 'vault'}\nstate_dir={tmp_path / 'state'}\n/etc p\n")
    configured = tmp_path / "configured.conf"  # the job waits for vault_device in aidepy.conf
    configured.write_text("vault_device=LABEL=AIDEPY\n")
    alarm = f"{sys.executable} -m aidepy vault alarm -c {conf}"
    command = (cron_command().replace(VAULT, str(tmp_path / "vault"))
               .replace("/etc/aidepy/aidepy.conf", str(configured))
               .replace(f"{INSTALLED_AIDEPY} vault alarm", alarm)
               .replace("test -d /run/systemd/system", "false"))
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"] == (f"aidepy: {socket.gethostname()}: ALERT: THE VAULT'S AIDEPY DID NOT RUN, "
                               "NO CHECK DONE")
    assert f"the vault is not mounted at {tmp_path / 'vault'}" in mail.get_content()


@pytest.mark.parametrize(("setting", "runs"), [
    ("# vault_device=LABEL=AIDEPY", False),
    ("vault_device=/dev/fd0u1722", True),
    (" vault_device = LABEL=AIDEPY", True),
])
def test_cron_job_runs_the_report_only_once_a_vault_is_configured(
    tmp_path: Path, setting: str, runs: bool,
) -> None:
    # Installed by the package before any vault exists, the job must not mail an ALERT each
    # morning. Its command runs under sh with the paths moved into tmp_path, the vault's
    # program and `mountpoint` stubs.
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"{setting}\n/etc p\n")
    vault, bin_dir = tmp_path / "vault", tmp_path / "bin"
    (vault / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for stub, body in ((vault / "bin" / "aidepy", f"echo \"$*\" > {tmp_path / 'ran'}"),
                       (bin_dir / "mountpoint", "exit 0")):
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    command = (cron_command().replace("/etc/aidepy/aidepy.conf", str(conf))
               .replace("/run/systemd/system", str(tmp_path / "no-systemd"))
               .replace(VAULT, str(vault)))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    result = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "ran").exists() == runs
    if runs:
        assert (tmp_path / "ran").read_text() == "report\n"


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
