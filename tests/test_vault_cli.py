"""`aidepy vault …` end to end, as the admin types it, on a real loop device."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import AIDEPY, LoopDevice, require_tool

from aidepy.keys import fingerprint, generate_keypair
from aidepy.vault.bootstrap import file_sha256


def aidepy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIDEPY, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """The failure an admin sees: the exit code and one line on stderr, no traceback."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidepy: ") and text in lines[0], result.stderr


@pytest.fixture
def config(loop_device: LoopDevice, tmp_path: Path) -> Path:
    """A config naming the loop device as vault, a key pair and an included rules file."""
    generate_keypair(tmp_path / "signing.key", None)
    (tmp_path / "state").mkdir()
    (tmp_path / "extra.conf").write_text("/etc/hostname p+sha256\n")
    conf = tmp_path / "aidepy.conf"
    conf.write_text(
        f"vault_device={loop_device.device}\nvault_mountpoint={tmp_path / 'mnt'}\n"
        f"state_dir={tmp_path / 'state'}\nsigning_key={tmp_path / 'signing.key'}\n"
        f"@@include {tmp_path / 'extra.conf'}\n/etc/passwd p+sha256\n"
    )
    return conf


def status(conf: Path) -> dict[str, object]:
    result = aidepy("vault", "status", "--json", "-c", str(conf))
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_format_mount_status_umount_and_the_write_protect_tab(
    config: Path, loop_device: LoopDevice, tmp_path: Path,
) -> None:
    conf = str(config)
    result = aidepy("vault", "format", loop_device.device, "--label", "CLIVAULT1", "-c", conf)
    assert result.returncode == 0, result.stderr
    from aidepy.keys import load_public_key

    state = status(config)
    assert state["is_vault"] and state["label"] == "CLIVAULT1" and state["mounted"] is None
    assert state["write_protected"] is False
    assert state["key_fingerprint"] == fingerprint(load_public_key(tmp_path / "signing.key.pub"))

    assert aidepy("vault", "mount", "-c", conf).returncode == 0
    assert loop_device.mountpoints() == [str(tmp_path / "mnt")]
    text = aidepy("vault", "status", "-c", conf)
    assert "mounted:         read-only" in text.stdout and "write-protected: NO" in text.stdout
    assert aidepy("vault", "mount", "--rw", "-c", conf).returncode == 0
    assert status(config)["mounted"] == "rw"
    assert aidepy("vault", "umount", "-c", conf).returncode == 0
    assert loop_device.mountpoints() == []

    loop_device.set_read_only(True)
    before = hashlib.sha256(Path(loop_device.device).read_bytes()).digest()
    one_line_error(aidepy("vault", "mount", "--rw", "-c", conf), 21, "write-protected")
    one_line_error(aidepy("vault", "install", "-c", conf), 21, "write-protected")
    assert loop_device.mountpoints() == []
    assert hashlib.sha256(Path(loop_device.device).read_bytes()).digest() == before
    text = aidepy("vault", "status", "-c", conf)
    assert ("write-protected: yes (software: root can undo this): the device is read-only (sysfs ro=1)"
            in text.stdout)
    assert status(config)["write_protect_kind"] == "software: root can undo this"
    assert status(config)["write_protected"] is True


def test_format_refusals_are_one_line(config: Path, loop_device: LoopDevice) -> None:
    subprocess.run([require_tool("mke2fs"), "-q", "-L", "DATA", loop_device.device], check=True)
    one_line_error(aidepy("vault", "format", loop_device.device, "-c", str(config)), 21,
                   "not an aidepy vault; use --force")
    one_line_error(aidepy("vault", "mount", "-c", str(config)), 21, "not an aidepy vault")
    one_line_error(aidepy("vault", "format", "/nonexistent/dev", "-c", str(config)), 21,
                   "/nonexistent/dev")


def test_install_puts_rules_runtime_and_program_on_the_vault(
    config: Path, loop_device: LoopDevice, tmp_path: Path,
) -> None:
    conf = str(config)
    assert aidepy("vault", "format", loop_device.device, "-c", conf).returncode == 0
    assert aidepy("vault", "mount", "-c", conf).returncode == 0
    empty = os.statvfs(tmp_path / "mnt")
    assert aidepy("vault", "umount", "-c", conf).returncode == 0
    result = aidepy("vault", "install", "-c", conf)
    assert result.returncode == 0, result.stderr
    assert f"rules: {config} and 1 included file(s) copied" in result.stdout and "installed" in result.stdout
    assert loop_device.mountpoints() == []  # put back as it was
    assert aidepy("vault", "mount", "-c", conf).returncode == 0
    root = tmp_path / "mnt"
    assert (root / "aidepy.conf").read_bytes() == config.read_bytes()
    assert (root / f"rules{tmp_path / 'extra.conf'}").read_text() == "/etc/hostname p+sha256\n"
    manifest = (root / "RUNTIME").read_text()
    assert manifest.startswith("aidepy-runtime 1\n") and "\ned25519 " in manifest
    assert f"sha256 {file_sha256(os.path.realpath(sys.executable))} {os.path.realpath(sys.executable)}\n" \
        in manifest
    assert "ext cryptography.hazmat.bindings._rust " in manifest
    launched = subprocess.run([root / "bin" / "aidepy", "--version"], capture_output=True, text=True)
    assert launched.returncode == 0 and launched.stdout.startswith("aidepy "), launched.stderr
    where = subprocess.run([root / "bin" / "aidepy", "path-check", "--help"], capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    with zipfile.ZipFile(root / "lib" / "aidepy.zip") as program:
        names = set(program.namelist())
    assert {"aidepy/compare.py", "pyudev/core.py", "cryptography/__init__.py"} <= names
    assert {"sh/__init__.py", "sh.py"} & names  # sh 2 is a package (PyPI), sh 1.14 a module (Debian 12)
    assert not [n for n in names if not n.endswith(".py")]  # compiled parts stay on the host
    assert "runtime:         unchanged since install" in aidepy("vault", "status", "-c", conf).stdout
    # README, "The checker on the vault": the program takes under 700 KiB of the 1722 KiB floppy
    # (648 KiB measured, python-debian for explanations included), the rest stays free for the baseline.
    full = os.statvfs(root)
    used = (empty.f_bfree - full.f_bfree) * full.f_frsize
    assert 300 * 1024 < used < 700 * 1024 and full.f_bfree * full.f_frsize > 950 * 1024, (used, full.f_bfree)


def test_a_directory_vault_warns_on_every_command(tmp_path: Path) -> None:
    trial = tmp_path / "trial"
    trial.mkdir()
    generate_keypair(tmp_path / "signing.key", None)
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"vault_device={trial}\nsigning_key={tmp_path / 'signing.key'}\n"
                    f"state_dir={tmp_path / 'state'}\n/etc p\n")
    for args in (["format", str(trial)], ["mount"], ["install"], ["status"], ["umount"]):
        result = aidepy("vault", *args, "-c", str(conf))
        assert "WARNING" in result.stderr and "NOTHING protects it" in result.stderr, args
        assert result.returncode == (21 if args == ["status"] else 0), (args, result.stderr)
    assert (trial / "VAULT").is_file() and (trial / "aidepy.conf").read_bytes() == conf.read_bytes()
