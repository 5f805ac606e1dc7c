"""pyudev really finds the vault: the loop device and its `ro` attribute, and the label through
a running udevd (started here when none runs, stopped again by its pid)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pyudev
from conftest import LoopDevice, require_tool

from aidepy.keys import generate_keypair
from aidepy.vault import medium
from aidepy.vault.vault import format_vault

UDEVD = Path("/lib/systemd/systemd-udevd")


def test_pyudev_lists_the_loop_device_and_reads_its_ro_attribute(loop_device: LoopDevice) -> None:
    context = pyudev.Context()
    found = [d for d in context.list_devices(subsystem="block") if d.device_node == loop_device.device]
    assert len(found) == 1 and found[0].attributes.asint("ro") == 0
    assert medium.write_protection(Path(loop_device.device)) is None
    loop_device.set_read_only(True)
    assert pyudev.Devices.from_device_file(context, loop_device.device).attributes.asint("ro") == 1
    assert medium.write_protection(Path(loop_device.device)) == "the device is read-only (sysfs ro=1)"


def test_root_can_tell_blockdev_setro_from_a_driver_that_keeps_the_device_read_only(
    loop_device: LoopDevice, tmp_path: Path,
) -> None:
    device = Path(loop_device.device)
    sysfs_ro = Path(f"/sys/class/block/{device.name}/ro")
    assert not medium.driver_read_only(device) and sysfs_ro.read_text() == "0\n"  # writable: untouched
    loop_device.set_read_only(True)  # root's flag (BLKROSET)
    assert not medium.driver_read_only(device)
    assert sysfs_ro.read_text() == "1\n"  # and root's flag is back
    assert not medium.hardware_protected(device)
    # losetup -r: the loop driver sets the read-only flag itself, as sd does for a lock switch
    out = subprocess.run(["losetup", "-f", "--show", "-r", loop_device.image], capture_output=True,
                         text=True, check=True)
    driver_ro = Path(out.stdout.strip())
    try:
        assert medium.driver_read_only(driver_ro)
        assert Path(f"/sys/class/block/{driver_ro.name}/ro").read_text() == "1\n"
        assert not medium.hardware_protected(driver_ro)  # a loop device all the same: root detaches it
    finally:
        subprocess.run(["losetup", "-d", str(driver_ro)], check=True)


def _udevd_answers(udevadm: str) -> bool:
    return subprocess.run([udevadm, "control", "--ping", "-t", "2"], capture_output=True).returncode == 0


@pytest.fixture
def udevd() -> Iterator[str]:
    """A running udevd (this test's own if none runs); yields the udevadm path."""
    udevadm = require_tool("udevadm")
    if not UDEVD.exists():
        pytest.skip("systemd-udevd is not installed (./setup.sh installs udev)")
    if _udevd_answers(udevadm):
        yield udevadm
        return
    daemon = subprocess.Popen([str(UDEVD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if _udevd_answers(udevadm):
                break
            if daemon.poll() is not None:
                pytest.skip(f"systemd-udevd exited with status {daemon.returncode} on this machine")
        yield udevadm
        subprocess.run([udevadm, "settle", "-t", "10"], check=False)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def test_the_vault_appears_by_label_through_udev(
    udevd: str, make_loop_device: Callable[..., LoopDevice], tmp_path: Path,
) -> None:
    loop = make_loop_device()  # attached while udevd runs: udev records and watches it
    generate_keypair(tmp_path / "k", None)
    label = "U" + uuid.uuid4().hex[:12]
    format_vault(loop.device, label=label, public_key=tmp_path / "k.pub")
    subprocess.run([udevd, "trigger", "--settle", "--action=change", loop.device], check=True)
    context = pyudev.Context()
    labelled = context.list_devices(subsystem="block").match_property("ID_FS_LABEL", label)
    assert [d.device_node for d in labelled] == [loop.device]
    assert Path(f"/dev/disk/by-label/{label}").resolve() == Path(loop.device)
    assert medium.find_by_property("LABEL", label, context=context) == Path(loop.device)
    # Wipe the filesystem while udevd still runs, so its database forgets the label again.
    subprocess.run([require_tool("wipefs"), "-q", "-a", loop.device], check=True)
    subprocess.run([udevd, "trigger", "--settle", "--action=change", loop.device], check=True)
    assert not list(pyudev.Context().list_devices(subsystem="block").match_property("ID_FS_LABEL", label))
