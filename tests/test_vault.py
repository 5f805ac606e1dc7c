"""The vault on real loop devices (1722 KiB images, like the seed's floppy): format, status,
write protection with `blockdev --setro`, atomic writes, full media, anchored layout, killed writers."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from conftest import LoopDevice, require_tool
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aidepy.db.file import open_database, write_database
from aidepy.entry import Entry
from aidepy.errors import DatabaseWriteError, VaultError, VaultFullError, VerificationError
from aidepy.keys import fingerprint, generate_keypair, load_private_key
from aidepy.vault import medium
from aidepy.vault.vault import Vault, VaultSettings, format_vault, read_chunks

KeyPair = tuple[Ed25519PrivateKey, Path]  # a signing key and its public key file


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    """A signing key without passphrase and its public key file."""
    generate_keypair(tmp_path / "signing.key", None)
    return load_private_key(tmp_path / "signing.key", None), tmp_path / "signing.key.pub"

FIBMAP = 1  # ioctl: the file system block that holds a block of a file


@pytest.fixture
def vault(
    loop_device: LoopDevice, keypair: KeyPair, tmp_path: Path,
) -> Iterator[Vault]:
    """A freshly formatted vault on a loop device, not mounted."""
    format_vault(loop_device.device, label=unique_label(), public_key=keypair[1], warn=_no_warning)
    v = Vault(VaultSettings(loop_device.device, tmp_path / "mnt", tmp_path / "state"), warn=_no_warning)
    (tmp_path / "state").mkdir()
    yield v
    loop_device.set_read_only(False)
    v.umount()


def _no_warning(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


def unique_label() -> str:
    """A label no other test's device carries (labels must be unique to be found)."""
    return "T" + uuid.uuid4().hex[:12]


def entries(n: int, generation: int = 0) -> list[Entry]:
    """n entries with incompressible digests (about 70 bytes each in a database)."""
    return [Entry(b"/f%07d" % i, "f", frozenset({"sha512"}), {"sha512": os.urandom(64)}) for i in range(n)]


def database(key: Ed25519PrivateKey, generation: int, n: int = 50) -> list[bytes]:
    """A signed database of `n` entries in chunks, written to disk and read back as promote does."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aidepy.db"
        write_database(path, entries(n), host="test", rules_digest=bytes(32), generation=generation,
                       signing_key=key)
        return list(read_chunks(path))


def device_digest(loop: LoopDevice) -> str:
    with open(loop.device, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_formatted_vault_is_writable_then_shows_the_signed_baseline(vault: Vault, keypair: KeyPair) -> None:
    key, _ = keypair
    status = vault.status()
    assert status.is_vault and status.fstype == "ext2"
    assert not status.write_protected and status.mounted is None
    assert status.key_fingerprint == fingerprint(key.public_key())
    assert status.database.layout == "none"
    assert status.free_bytes is not None and 1_600_000 < status.free_bytes <= 1722 * 1024
    with vault.mounted(rw=True):
        chunks = database(key, generation=1)
        written = vault.write_database(chunks)
        assert written.path.read_bytes() == b"".join(chunks)
    assert vault.current_mount() is None  # put back as it was: unmounted
    status = vault.status()
    assert status.database.layout == "vault" and status.database.verified and status.database.signed
    assert status.database.generation == 1 and status.database.created is not None
    assert status.problems == []


def test_write_protected_vault_refuses_rw_mount_and_writes_and_nothing_changes(
    vault: Vault, keypair: KeyPair, loop_device: LoopDevice,
) -> None:
    key, _ = keypair
    with vault.mounted(rw=True):
        vault.write_database(database(key, generation=1))
    before = device_digest(loop_device)
    loop_device.set_read_only(True)
    status = vault.status()
    assert status.write_protected and "sysfs ro=1" in (status.write_protect_reason or "")
    assert status.database.verified and status.database.generation == 1
    with pytest.raises(VaultError, match="write-protected"):
        vault.mount(rw=True)
    vault.mount()
    with pytest.raises(VaultError, match="mounted read-only"):
        vault.write_database(database(key, generation=2))
    with pytest.raises(VaultError, match="mounted read-only"):
        vault.write_file("note", [b"x"])
    vault.umount()
    assert device_digest(loop_device) == before


def test_mount_falling_back_to_read_only_counts_as_write_protection(
    vault: Vault, loop_device: LoopDevice,
) -> None:
    vault.mount()  # read-only, then the tab goes on and promote asks for rw: remount must fail
    loop_device.set_read_only(True)
    with pytest.raises(VaultError, match="write-protected"):
        vault.mount(rw=True)


def test_setrw_makes_the_vault_writable_again(
        vault: Vault, keypair: KeyPair, loop_device: LoopDevice) -> None:
    key, _ = keypair
    loop_device.set_read_only(True)
    assert vault.is_write_protected()
    loop_device.set_read_only(False)
    assert not vault.is_write_protected()
    with vault.mounted(rw=True):
        vault.write_database(database(key, generation=2))
    assert vault.status().database.generation == 2


def test_database_too_large_is_refused_with_missing_bytes_and_old_intact(
        vault: Vault, keypair: KeyPair) -> None:
    key, _ = keypair
    with vault.mounted(rw=True) as root:
        old = vault.write_database(database(key, generation=1))
        free = vault.free_bytes()
        with pytest.raises(VaultFullError) as refused:
            vault.write_database(database(key, generation=2, n=30_000))
        assert refused.value.missing > 0 and f"{refused.value.missing} bytes missing" in str(refused.value)
        assert refused.value.free == free
        assert vault.free_bytes() == free
        assert not (root / ".aidepy.db.tmp").exists()
        assert hashlib.sha256(vault.database_path.read_bytes()).digest() == old.sha256
        with pytest.raises(VaultFullError, match="bytes missing"):  # refused up front when the size is known
            vault.write_database(iter([]), size=3_000_000)
    assert vault.status().database.generation == 1


def test_anchored_layout_pins_the_disk_copy(vault: Vault, keypair: KeyPair, tmp_path: Path) -> None:
    key, _ = keypair
    disk = vault.settings.state_dir / "aidepy.db"
    with vault.mounted(rw=True):
        vault.write_database(database(key, generation=1))
        listed = entries(30_000)
        info = write_database(disk, listed, host="test", rules_digest=bytes(32), generation=2,
                              signing_key=key)
        anchor = vault.write_anchor(disk, info, key)
        assert not vault.database_path.exists() and vault.anchor_path.exists()
        assert vault.anchor_path.stat().st_size < 1024
    assert anchor.generation == 2 and anchor.size == info.size
    status = vault.status()
    assert status.database.layout == "anchored" and status.database.verified
    assert status.database.generation == 2 and status.database.path == str(disk.resolve())
    with vault.mounted():
        assert vault.baseline_path() == disk.resolve()
    # An attacker swaps in another validly signed database of the same generation and the same
    # size (made a second later): the anchor no longer matches, by digest, not by size.
    other = write_database(disk, listed, host="test", rules_digest=bytes(32), generation=2,
                           signing_key=key, created=info.header.created + 1)
    assert other.size == info.size and other.sha256 != info.sha256
    with vault.mounted(), pytest.raises(VerificationError, match="does not match the vault's anchor"):
        vault.baseline_path()
    assert not vault.status().database.verified


def test_a_medium_that_reads_back_other_bytes_than_were_written_is_caught(
        vault: Vault, loop_device: LoopDevice) -> None:
    """The medium lies: once the new file has been written and read back, its first block is
    changed underneath the file system, in the loop device's backing image (as a failing
    medium returns other bytes than it was given); the read-back after the rename sees it."""
    data = os.urandom(20_000)

    def medium_changes(tmp: Path) -> None:
        with open(tmp, "rb") as f:
            block = struct.unpack("i", fcntl.ioctl(f.fileno(), FIBMAP, struct.pack("i", 0)))[0]
        size = os.statvfs(tmp).f_bsize
        with open(loop_device.image, "r+b") as image:
            image.seek(block * size)
            image.write(bytes(b ^ 0xFF for b in image.read(16)).rjust(16, b"\0"))
            image.flush()
            os.fsync(image.fileno())

    with vault.mounted(rw=True) as root:
        with pytest.raises(DatabaseWriteError, match="reads back differently from what was written"):
            vault.write_file("note", [data], verify=medium_changes)
        assert (root / "note").read_bytes() != data  # what the medium now holds: not what was written


def test_anchor_needs_the_vaults_own_key(vault: Vault, keypair: KeyPair, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    disk = vault.settings.state_dir / "aidepy.db"
    info = write_database(disk, entries(5), host="t", rules_digest=bytes(32), generation=1, signing_key=other)
    with vault.mounted(rw=True), pytest.raises(VaultError, match="does not belong"):
        vault.write_anchor(disk, info, other)


KILLED_WRITER = r"""
import os, sys, time
from pathlib import Path
from aidepy.db.file import write_database
from aidepy.entry import Entry
from aidepy.keys import load_private_key
from aidepy.vault.vault import Vault, VaultSettings

device, mountpoint, keyfile, point = sys.argv[1:5]

def pause(label):
    if label == point:
        print(label, flush=True)
        time.sleep(60)

real_fsync, real_replace = os.fsync, os.replace

def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".aidepy.db.tmp"):
        pause("before-fsync")
    real_fsync(fd)

def replace(src, dst):
    pause("before-rename")
    real_replace(src, dst)
    pause("after-rename")

key = load_private_key(Path(keyfile), None)
entries = [Entry(b"/g%06d" % i, "f", frozenset({"sha512"}), {"sha512": os.urandom(64)}) for i in range(15000)]
signed = Path(keyfile).with_name("next.db")
write_database(signed, entries, host="t", rules_digest=bytes(32), generation=2, signing_key=key)
os.fsync, os.replace = fsync, replace  # from here on, the vault's write

def chunks():
    with open(signed, "rb") as f:
        yield f.read(4096)
        pause("streaming")
        yield f.read()

Vault(VaultSettings(device, Path(mountpoint))).write_database(chunks())
print("done", flush=True)
"""


@pytest.mark.parametrize(("point", "generation"), [
    ("streaming", 1), ("before-fsync", 1), ("before-rename", 1), ("after-rename", 2),
])
def test_writer_killed_mid_write_leaves_a_database_that_verifies(
    vault: Vault, keypair: KeyPair, tmp_path: Path, point: str, generation: int,
) -> None:
    key, _ = keypair
    with vault.mounted(rw=True) as root:
        vault.write_database(database(key, generation=1))
        writer = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, vault.settings.device, str(root),
             str(tmp_path / "signing.key"), point],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert writer.stdout is not None
        reached = writer.stdout.readline().strip()
        writer.send_signal(signal.SIGKILL)
        _, err = writer.communicate()
        assert reached == point, err
        with open_database(vault.database_path, key.public_key()) as db:
            assert db.header.generation == generation
        leftover = [p for p in vault.status().problems if "left by an interrupted write" in p]
        assert leftover == ([] if point == "after-rename" else [leftover[0]])
        vault.write_database(database(key, generation=3))  # the next write cleans up the leftover
        assert not (root / ".aidepy.db.tmp").exists()
    assert vault.status().database.generation == 3


def test_format_refuses_a_mounted_device(vault: Vault, keypair: KeyPair, loop_device: LoopDevice) -> None:
    vault.mount()
    with pytest.raises(VaultError, match="is mounted at"):
        format_vault(loop_device.device, label="AIDEPY", public_key=keypair[1])


def test_format_refuses_a_foreign_filesystem_unless_forced(loop_device: LoopDevice, keypair: KeyPair) -> None:
    subprocess.run([require_tool("mke2fs"), "-q", "-L", "HOME", loop_device.device], check=True)
    with pytest.raises(VaultError, match="ext2 filesystem labelled 'HOME' that is not an aidepy vault"):
        format_vault(loop_device.device, label="AIDEPY", public_key=keypair[1])
    subprocess.run([require_tool("mkswap"), "-q", loop_device.device], check=True, capture_output=True)
    with pytest.raises(VaultError, match=r"swap filesystem.*--force"):
        format_vault(loop_device.device, label="AIDEPY", public_key=keypair[1])
    label = unique_label()
    format_vault(loop_device.device, label=label, public_key=keypair[1], force=True)
    format_vault(loop_device.device, label=label, public_key=keypair[1])  # a vault may be redone
    assert subprocess.run([require_tool("blkid"), "-p", "-o", "value", "-s", "LABEL", loop_device.device],
                          capture_output=True, text=True).stdout.strip() == label


def test_fdformat_on_a_usb_drive_runs_ufiformat_or_names_its_package(
    loop_device: LoopDevice, keypair: KeyPair,
) -> None:
    # A loop device is a disk like a USB floppy drive: --fdformat picks ufiformat, which refuses it.
    expected = (rf"^ufiformat {loop_device.device}: {loop_device.device}: device is not usb fdd$"
                if medium.find_tool("ufiformat") else
                r"^--fdformat: ufiformat is not installed \(USB floppy drives .*apt install ufiformat\)")
    with pytest.raises(VaultError, match=expected):
        format_vault(loop_device.device, label="AIDEPY", public_key=keypair[1], fdformat=True)
    assert medium.probe_filesystem(Path(loop_device.device)) is None  # mke2fs never ran


def test_format_needs_a_usable_public_key(loop_device: LoopDevice, tmp_path: Path) -> None:
    (tmp_path / "bad.pub").write_text("not a key\n")
    with pytest.raises(VaultError, match="aidepy keygen"):
        format_vault(loop_device.device, label="AIDEPY", public_key=tmp_path / "bad.pub")


def test_mount_is_read_only_nosuid_nodev_and_refuses_a_non_vault(
    vault: Vault, loop_device: LoopDevice,
) -> None:
    root = vault.mount()
    options = next(line.split()[5] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                   if line.split()[4] == str(root))
    assert {"ro", "nosuid", "nodev"} <= set(options.split(","))
    vault.umount()
    assert loop_device.mountpoints() == []
    subprocess.run([require_tool("mke2fs"), "-q", "-F", loop_device.device], check=True)
    with pytest.raises(VaultError, match="not an aidepy vault"):
        vault.mount()
    assert loop_device.mountpoints() == []


def test_vault_is_found_by_label_and_uuid(vault: Vault, loop_device: LoopDevice, tmp_path: Path) -> None:
    status = vault.status()
    by_label = Vault(VaultSettings(f"LABEL={status.label}", tmp_path / "m2"), warn=_no_warning)
    assert str(by_label.medium.path) == loop_device.device
    by_uuid = Vault(VaultSettings(f"UUID={status.uuid}", tmp_path / "m2"), warn=_no_warning)
    assert str(by_uuid.medium.path) == loop_device.device
    with pytest.raises(VaultError, match="no block device has a filesystem with LABEL="):
        _ = Vault(VaultSettings(f"LABEL={unique_label()}")).medium


def test_an_image_file_vault_is_attached_read_only_and_detached(keypair: KeyPair, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root (runs as root in CI)")
    image = tmp_path / "vault.img"
    image.write_bytes(b"")
    os.truncate(image, 1722 * 1024)
    format_vault(str(image), label=unique_label(), public_key=keypair[1])
    vault = Vault(VaultSettings(str(image), tmp_path / "mnt"), warn=_no_warning)
    assert vault.status().fstype == "ext2" and vault.device() is None
    try:
        vault.mount()
        device = vault.device()
        assert device is not None and (Path("/sys/block") / device.name / "ro").read_text().strip() == "1"
        assert not vault.is_write_protected()  # the image is writable: only attached read-only
        with vault.mounted(rw=True):
            vault.write_database(database(keypair[0], generation=1))
        mount = vault.current_mount()
        assert mount is not None and mount.read_only
        vault.umount()
        assert vault.device() is None
        image.chmod(0o444)  # the image's write-protect tab
        assert vault.is_write_protected()
        with pytest.raises(VaultError, match="write-protected"):
            vault.mount(rw=True)
        with pytest.raises(VaultError, match="write-protected"):
            format_vault(str(image), label="AIDEPY", public_key=keypair[1], force=True)
        assert vault.status().database.generation == 1
    finally:
        vault.umount()


def test_a_failed_test_write_counts_as_write_protection(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (runs as root in CI)")
    from aidepy.vault.medium import probe_write

    assert probe_write(tmp_path) is None and list(tmp_path.iterdir()) == []
    where = tmp_path / "ro"
    where.mkdir()
    subprocess.run([require_tool("mount"), "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)],
                   check=True)
    try:
        assert probe_write(where) == "a test write failed (Read-only file system)"
    finally:
        subprocess.run([require_tool("umount"), str(where)], check=True)


def test_a_directory_vault_warns_every_time(keypair: KeyPair, tmp_path: Path) -> None:
    warnings: list[str] = []
    format_vault(str(tmp_path), label="TRIAL", public_key=keypair[1], warn=warnings.append)
    vault = Vault(VaultSettings(str(tmp_path)), warn=warnings.append)
    vault.write_database(database(keypair[0], generation=1))
    status = vault.status()
    assert status.database.verified and not status.write_protected
    assert any("nothing protects it" in p for p in status.problems)
    assert len(warnings) == 2 and all("NOTHING protects it" in w for w in warnings)


def test_missing_floppy_node_is_created_like_the_seed(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root (runs as root in CI)")
    from aidepy.vault.medium import ensure_device_node

    node = tmp_path / "fd0u1722"
    assert ensure_device_node(node)
    st = node.stat()
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (2, 60)
    assert stat.S_IMODE(st.st_mode) == 0o660
    import grp

    assert grp.getgrgid(st.st_gid).gr_name == "floppy"
    assert not ensure_device_node(node)  # present: left alone
    assert not ensure_device_node(tmp_path / "sdz1")  # not a floppy: not invented


def test_rules_are_copied_with_their_includes(vault: Vault, tmp_path: Path) -> None:
    main, include = tmp_path / "aidepy.conf", tmp_path / "conf.d" / "extra.conf"
    include.parent.mkdir()
    main.write_text(f"@@include {include}\n/etc p\n")
    include.write_text("/bin p\n")
    with vault.mounted(rw=True) as root:
        vault.write_rules([main, include])
        assert (root / "aidepy.conf").read_bytes() == main.read_bytes()
        assert (root / f"rules{include}").read_bytes() == include.read_bytes()
        assert vault.rules_changes([main, include]) == []
        assert vault.rules_changes([main]) == [f"{include} is no longer part of the live rules"]
        include.write_text("/bin p+sha256\n")
        assert vault.rules_changes([main, include]) == [f"{include} differs from the copy on the vault"]
        vault.write_rules([main])
        assert not (root / f"rules{include}").exists()


def test_install_skips_the_program_when_it_does_not_fit_beside_the_next_baseline(
    vault: Vault, keypair: KeyPair,
) -> None:
    from aidepy.vault.program import install
    from aidepy.vault.runtime import check_manifest

    with vault.mounted(rw=True) as root:
        assert install(vault, keypair[0]).program_installed  # an empty vault has room
        assert check_manifest(root, vault.public_key()) == []
        # a baseline that fits beside the program, but leaves no room for the program and the
        # next baseline both (more than half of what is left): sized from what is free here,
        # since the program's size depends on where its dependencies come from (pip, Debian)
        per_entry = len(b"".join(database(keypair[0], generation=1, n=2_000))) / 2_000
        vault.write_database(database(keypair[0], generation=1, n=int(0.75 * vault.free_bytes() / per_entry)))
        report = install(vault, keypair[0])
        assert not report.program_installed and "keeping" in report.message
        program = [p for d in ("lib", "bin") for p in (root / d).rglob("*") if p.is_file()]
        assert program == [] and not (root / "RUNTIME").exists()  # an old copy would not match
        assert check_manifest(root, vault.public_key()) is None


def test_install_refuses_a_signing_key_that_is_not_the_vaults(vault: Vault, tmp_path: Path) -> None:
    from aidepy.vault.program import install

    generate_keypair(tmp_path / "other.key", None)
    with vault.mounted(rw=True) as root:
        with pytest.raises(VaultError, match="does not belong"):
            install(vault, load_private_key(tmp_path / "other.key", None))
        assert not (root / "RUNTIME").exists()


def test_a_tool_failure_is_one_clear_line(loop_device: LoopDevice, tmp_path: Path) -> None:
    from aidepy.vault import medium
    with pytest.raises(VaultError) as failed:
        medium.mount(Path(loop_device.device), tmp_path / "m", read_only=True)  # nothing on it to mount
    message = str(failed.value)
    assert message.startswith("mount -t ext2 -o ro,nosuid,nodev") and "wrong fs type" in message
    assert "\n" not in message and "dmesg" not in message


def test_a_mountpoint_behind_a_symlink_works(vault: Vault, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    linked = Vault(VaultSettings(vault.settings.device, tmp_path / "link"), warn=_no_warning)
    assert linked.mount() == tmp_path / "real"
    assert linked.current_mount() is not None and linked.status().mounted == "ro"
    linked.umount()


def test_a_full_vault_is_full_not_write_protected(vault: Vault) -> None:
    with vault.mounted(rw=True) as root:
        with open(root / "filler", "wb", buffering=0) as f:
            for size in (65536, 4096, 1024, 1):  # until not one block is left
                with suppress(OSError):
                    while True:
                        f.write(b"\0" * size)
        assert vault.free_bytes() == 0
        assert vault.write_protection() is None  # the test write fails with ENOSPC: full, not protected
        with pytest.raises(VaultFullError, match="bytes missing") as refused:
            vault.write_file("note", [b"x" * 200_000])
        assert refused.value.missing >= 200_000 - refused.value.free > 0
        assert not (root / "note").exists() and not (root / ".note.tmp").exists()


def test_a_failure_inside_mounted_is_not_hidden_by_a_busy_umount(vault: Vault) -> None:
    with pytest.raises(RuntimeError, match="scan failed"), vault.mounted() as root:
        held = (root / "VAULT").open("rb")  # keeps the mount busy
        raise RuntimeError("scan failed")
    held.close()
    assert vault.current_mount() is not None  # it was busy
    vault.umount()
    assert vault.current_mount() is None


def test_format_creates_the_missing_floppy_node_then_reports_the_absent_drive(
    keypair: KeyPair, tmp_path: Path,
) -> None:
    node = Path("/dev/fd0u1722")
    if os.geteuid() != 0:
        pytest.skip("mknod in /dev needs root (runs as root in CI)")
    if node.exists() or Path("/sys/block/fd0").exists():
        pytest.skip("this machine has a floppy drive or node: not touching it")
    warnings: list[str] = []
    try:
        with pytest.raises(VaultError, match="fd0u1722") as refused:
            format_vault(str(node), label="AIDEPY", public_key=keypair[1], warn=warnings.append)
        assert "\n" not in str(refused.value)
        st = node.stat()
        assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (2, 60)
        assert warnings == ["created /dev/fd0u1722 (block 2,60, mode 660, group floppy)"]
        status = Vault(VaultSettings(str(node), tmp_path / "mnt"), warn=_no_warning).status()
        assert not status.is_vault and status.problems and all("\n" not in p for p in status.problems)
    finally:
        node.unlink(missing_ok=True)


def test_the_program_zip_holds_each_file_once() -> None:
    """Under Debian's packages two distributions name the same module (setuptools' egg-info
    lists python3-debian's `debian`): the zip still holds each file once."""
    from aidepy.vault.runtime import program_zip

    names = zipfile.ZipFile(io.BytesIO(program_zip())).namelist()
    assert {"aidepy/__init__.py", "debian/deb822.py"} <= set(names)
    assert len(names) == len(set(names))
