"""The vault's medium: which device a vault spec names, and what the kernel says about it.

Resolves `/dev/…`, `LABEL=…`, `UUID=…` (pyudev, falling back to `blkid` when udev has no
filesystem properties), image files and directories; attaches images through loop devices;
reads mounts from /proc/self/mountinfo and the write-protect state from sysfs; runs the
util-linux and e2fsprogs tools through `sh`, turning their failures into one-line `VaultError`s.
`aidepy.vault.vault` builds the vault's layout on top of this.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import grp
import json
import os
import shutil
import stat
import struct
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pyudev
import sh

from aidepy.errors import VaultError
from aidepy.state import root_controlled

# Floppy nodes the seed practice used, with their (major, minor) numbers (Linux devices.txt).
FLOPPY_MAJOR = 2
FLOPPY_NODES = {"fd0": (FLOPPY_MAJOR, 0), "fd0u1440": (FLOPPY_MAJOR, 28), "fd0u1722": (FLOPPY_MAJOR, 60)}
FLOPPY_MODE = 0o660
FLOPPY_GROUP = "floppy"
BLKROSET, BLKROGET = 0x125D, 0x125E  # <linux/fs.h>: set and get a block device's read-only flag
SOFTWARE = "software: root can undo this"
HARDWARE = "hardware"

Warn = Callable[[str], None]

# sh 2 returns a command's stdout as a string unless asked for the command itself; sh 1 (Debian
# 12 ships 1.14) always returns the command and takes no such argument. (Asked of sh itself: its
# __version__ is "unknown" when it runs from the vault's zip.)
_RETURN_CMD: dict[str, Any] = {"_return_cmd": True} if "return_cmd" in sh.Command._call_args else {}


def warn_stderr(message: str) -> None:
    """Default warning sink: one line on stderr."""
    print(f"aidepy: {message}", file=sys.stderr)


class MediumKind(Enum):
    """What a vault spec names."""

    BLOCK = "block"
    IMAGE = "image"
    DIRECTORY = "directory"


@dataclass(frozen=True)
class Medium:
    """A resolved vault spec: the configured text, its kind and the path it names."""

    spec: str
    kind: MediumKind
    path: Path


@dataclass(frozen=True)
class Filesystem:
    """What a probe found on a device."""

    type: str
    label: str | None
    uuid: str | None


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    mountpoint: Path
    source: str
    fstype: str
    devno: int
    read_only: bool


@dataclass(frozen=True)
class ToolOutput:
    """What an external tool printed."""

    stdout: str
    stderr: str


def find_tool(name: str) -> str | None:
    """Where the program `name` is installed (PATH, then the sbin and bin directories), or None."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def run_tool(name: str, *args: str) -> ToolOutput:
    """Run `name args…` (no shell); a failure becomes a VaultError naming the tool and its message."""
    path = find_tool(name)
    if path is None:
        raise VaultError(f"{name} is not installed")
    env = {**os.environ, "LC_ALL": "C"}
    try:
        result = sh.Command(path)(*args, _env=env, _tty_out=False, **_RETURN_CMD)
    except sh.ErrorReturnCode as exc:
        message = _message(exc.stderr) or _message(exc.stdout) or f"exit status {exc.exit_code}"
        raise VaultError(f"{name} {' '.join(args)}: {message}") from None
    return ToolOutput(_text(result.stdout), _text(result.stderr))


def _text(data: bytes | str) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _message(data: bytes | str) -> str:
    """A tool's complaint as one line (without mount's hint to read dmesg)."""
    lines = [line.strip() for line in _text(data).splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("dmesg(1)"))


def resolve(spec: str, *, warn: Warn, context: pyudev.Context | None = None) -> Medium:
    """The medium a vault spec names; a directory draws a warning every time."""
    key, _, value = spec.partition("=")
    if key in ("LABEL", "UUID") and value:
        return Medium(spec, MediumKind.BLOCK, find_by_property(key, value, context=context))
    path = Path(spec)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise VaultError(f"vault device {spec}: {exc.strerror}") from None
    if stat.S_ISBLK(mode):
        return Medium(spec, MediumKind.BLOCK, path)
    if stat.S_ISREG(mode):
        return Medium(spec, MediumKind.IMAGE, path.resolve())
    if stat.S_ISDIR(mode):
        warn(f"WARNING: vault {spec} is a plain directory: NOTHING protects it from being "
             "rewritten (use it for trials only)")
        return Medium(spec, MediumKind.DIRECTORY, path.resolve())
    raise VaultError(f"vault device {spec}: not a block device, image file or directory")


@functools.cache
def udev_context() -> pyudev.Context:
    """One libudev context per process: creating one looks the library up through ldconfig,
    too slow for a loop that polls the medium twice a second."""
    return pyudev.Context()


def find_by_property(key: str, value: str, *, context: pyudev.Context | None = None) -> Path:
    """The one block device whose filesystem has LABEL or UUID `value`: udev's candidates (or
    blkid's, where udev knows none), each confirmed by probing the device itself, because the
    udev database goes stale while no udevd runs."""
    context = context or udev_context()
    udev_key = {"LABEL": "ID_FS_LABEL", "UUID": "ID_FS_UUID"}[key]
    candidates = {
        Path(dev.device_node)
        for dev in context.list_devices(subsystem="block").match_property(udev_key, value)
        if dev.device_node
    }
    found = {dev for dev in candidates if _has_property(dev, key, value)}
    if not found:
        found = {dev for dev in _blkid_search(key, value) if _has_property(dev, key, value)}
    if not found:
        raise VaultError(f"no block device has a filesystem with {key}={value} (is the vault inserted?)")
    if len(found) > 1:
        names = ", ".join(sorted(str(p) for p in found))
        raise VaultError(f"several devices have {key}={value} ({names}); name the vault device explicitly")
    return found.pop()


def _has_property(device: Path, key: str, value: str) -> bool:
    try:
        fs = probe_filesystem(device)
    except VaultError:
        return False
    return fs is not None and (fs.label if key == "LABEL" else fs.uuid) == value


def _blkid_search(key: str, value: str) -> list[Path]:
    try:
        # -c /dev/null: probe the devices now instead of trusting blkid's cache.
        out = run_tool("blkid", "-c", "/dev/null", "-o", "device", "-t", f"{key}={value}")
    except VaultError:
        return []  # blkid exits 2 when nothing matches
    return [Path(line) for line in out.stdout.split()]


def udev_device(device: Path, context: pyudev.Context | None = None) -> pyudev.Device:
    """The udev (sysfs) view of a block device node."""
    try:
        return pyudev.Devices.from_device_file(context or udev_context(), str(device))
    except (pyudev.DeviceNotFoundError, ValueError, OSError) as exc:
        raise VaultError(f"{device}: not known to udev/sysfs ({exc})") from None


def probe_filesystem(device: Path) -> Filesystem | None:
    """The filesystem on `device`, probed from its content (`blkid -p`), or None if none is recognised."""
    try:
        out = run_tool("blkid", "-p", "-o", "export", str(device))
    except VaultError:
        return None  # blkid exits 2 when it recognises nothing
    fields = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if "TYPE" not in fields:
        return None
    return Filesystem(fields["TYPE"], fields.get("LABEL"), fields.get("UUID"))


def sysfs_read_only(device: Path, context: pyudev.Context | None = None) -> bool:
    """The kernel's read-only flag of the device (sysfs `ro`: `blockdev --setro`, lock switches);
    asked with `blockdev --getro` for nodes sysfs does not list (a floppy's format nodes)."""
    try:
        return bool(udev_device(device, context).attributes.asint("ro"))
    except (VaultError, KeyError, ValueError):
        return run_tool("blockdev", "--getro", str(device)).stdout.strip() == "1"


def write_protection(device: Path, context: pyudev.Context | None = None) -> str | None:
    """Why the kernel will refuse writes to `device`, or None when it accepts them."""
    if sysfs_read_only(device, context):
        return "the device is read-only (sysfs ro=1)"
    return _refuses_writers(device)


def _refuses_writers(device: Path) -> str | None:
    """A floppy drive's write-protect tab: why the drive refuses to open for writing, or None."""
    if os.major(os.stat(device).st_rdev) != FLOPPY_MAJOR:
        # Opening other disks for writing would only make udev (which watches them) re-probe.
        return None
    try:
        # The floppy driver reads the write-protect tab only when the drive is opened for writing
        # (and not with O_NONBLOCK, which skips the media checks).
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES):
            return f"the device refuses to open for writing ({exc.strerror})"
        return None  # no disk in the drive and the like: mounting will say so
    os.close(fd)
    return None


def hardware_protected(device: Path, context: pyudev.Context | None = None) -> bool:
    """Whether the write protection of `device` (known to be on) is the medium's own, which root on
    this host cannot lift: a floppy drive refusing writers (it reads the tab), or a physical device
    whose driver set the kernel's read-only flag because the device reported write protection
    (sd from the SCSI mode page's WP bit: USB sticks and card readers with a lock switch; mmc from
    the card slot's switch). Never for a virtual device (loop, device-mapper, md, zram: whoever set
    it read-only, `blockdev --setro` or `losetup -r`, can set it writable) or an image file."""
    if os.major(os.stat(device).st_rdev) == FLOPPY_MAJOR:
        # The fd driver never sets the read-only flag itself: only its refusal is the tab.
        return _refuses_writers(device) is not None
    try:
        found = udev_device(device, context)
    except VaultError:
        return False
    if found.sys_path.startswith("/sys/devices/virtual/"):
        return False
    if found.device_type == "partition" and found.parent is not None and found.parent.device_node:
        return driver_read_only(Path(found.parent.device_node))  # the driver's flag is the disk's
    return driver_read_only(device)


def driver_read_only(device: Path) -> bool:
    """Whether the driver of `device` holds the kernel's read-only flag, as opposed to root's
    `blockdev --setro` (ioctl BLKROSET). Linux (5.12 and later) keeps the two apart but shows
    only their union (sysfs ro, BLKROGET), so root's flag is cleared for a moment and the union
    read again; root's flag is put back unless the driver's is set (then the device stays
    read-only anyway). Needs CAP_SYS_ADMIN; without it the answer is False (not proven)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not _get_ro(fd):
            return False
        fcntl.ioctl(fd, BLKROSET, struct.pack("i", 0))
        driver = _get_ro(fd)
        if not driver:
            fcntl.ioctl(fd, BLKROSET, struct.pack("i", 1))
        return driver
    except OSError:
        return False
    finally:
        os.close(fd)


def _get_ro(fd: int) -> bool:
    return bool(struct.unpack("i", fcntl.ioctl(fd, BLKROGET, struct.pack("i", 0)))[0])


def image_write_protection(image: Path) -> str | None:
    """An image file's write-protect tab: no write permission bits (root ignores them otherwise)."""
    if not image.stat().st_mode & 0o222 or not os.access(image, os.W_OK):
        return "the image file is read-only (no write permission)"
    return None


def probe_write(root: Path) -> str | None:
    """A real write on a read-write mount (the last word on write protection, e.g. for media whose
    driver learns of the tab only when writing); None when it succeeded."""
    probe = root / ".aidepy-probe"
    try:
        with open(probe, "wb", buffering=0) as f:
            f.write(b"probe")
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        with suppress(OSError):
            probe.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return None  # full, not protected: the write itself will say how much is missing
        return f"a test write failed ({exc.strerror})"
    return None


def device_size(device: Path) -> int:
    """Size of a block device in bytes."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def mounts() -> list[Mount]:
    """Every mount of this process's namespace."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        major, minor = (int(n) for n in fields[2].split(":"))
        options = set(fields[5].split(",")) | set(fields[sep + 3].split(","))
        result.append(Mount(
            mountpoint=Path(_unescape(fields[4])), source=_unescape(fields[sep + 2]),
            fstype=fields[sep + 1], devno=os.makedev(major, minor), read_only="ro" in options,
        ))
    return result


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_of(device: Path) -> list[Mount]:
    """Where `device` (or one of its partitions) is mounted."""
    devnos = {os.stat(device).st_rdev}
    with suppress(VaultError):  # not in sysfs (a floppy's format node): it has no partitions
        devnos.update(child.device_number for child in udev_device(device).children
                      if child.subsystem == "block")
    return [m for m in mounts() if m.devno in devnos]


def mount_at(mountpoint: Path) -> Mount | None:
    """The mount whose mountpoint is `mountpoint` (the topmost one)."""
    found = [m for m in mounts() if m.mountpoint == mountpoint]
    return found[-1] if found else None


def mount(device: Path, mountpoint: Path, *, read_only: bool) -> Mount:
    """Mount the ext2 filesystem on `device` with nosuid,nodev; returns the mount as the kernel made
    it (it may be ro). Only ext2, which vaults use: a journalled filesystem would be written to
    (its journal replayed) even by a read-only mount."""
    root_controlled(mountpoint)  # never mount over a link or inside a directory others control
    mountpoint = mountpoint.resolve()  # mountinfo lists it without links (root's own, checked)
    mountpoint.mkdir(parents=True, exist_ok=True)
    mode = "ro" if read_only else "rw"
    run_tool("mount", "-t", "ext2", "-o", f"{mode},nosuid,nodev", str(device), str(mountpoint))
    made = mount_at(mountpoint)
    if made is None:
        raise VaultError(f"mount {device} {mountpoint}: no mount appeared")
    return made


def remount(mountpoint: Path, *, read_only: bool) -> Mount:
    """Switch a mount between ro and rw."""
    run_tool("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(mountpoint))
    made = mount_at(mountpoint)
    if made is None:
        raise VaultError(f"remount {mountpoint}: the mount disappeared")
    return made


def umount(mountpoint: Path) -> None:
    """Unmount `mountpoint`."""
    run_tool("umount", str(mountpoint))


def attach(image: Path, *, read_only: bool) -> Path:
    """Attach an image file to a free loop device."""
    args = ["-f", "--show", *(["-r"] if read_only else []), str(image)]
    return Path(run_tool("losetup", *args).stdout.strip())


def detach(device: Path) -> None:
    """Detach a loop device."""
    run_tool("losetup", "-d", str(device))


def loop_devices_of(image: Path) -> list[Path]:
    """The loop devices an image file is attached to (matched by inode, so renames do not hide them)."""
    try:
        st = image.stat()
    except OSError as exc:
        raise VaultError(f"vault image {image}: {exc.strerror}") from None
    out = run_tool("losetup", "--list", "--json", "--output", "NAME,BACK-INO,BACK-MAJ:MIN")
    listed = json.loads(out.stdout or '{"loopdevices": []}')["loopdevices"]
    backing = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    return sorted(Path(loop["name"]) for loop in listed
                  if loop.get("back-ino") == st.st_ino and str(loop.get("back-maj:min")).strip() == backing)


def ensure_device_node(path: Path) -> bool:
    """Create a missing floppy node the way the seed did (block 2,60 for fd0u1722, mode 660, group
    floppy); returns whether it created one. Other missing paths are left for the caller to refuse."""
    if path.exists() or path.name not in FLOPPY_NODES:
        return False
    major, minor = FLOPPY_NODES[path.name]
    try:
        os.mknod(path, stat.S_IFBLK | FLOPPY_MODE, os.makedev(major, minor))
        os.chmod(path, FLOPPY_MODE)  # mknod honours the umask
        with suppress(KeyError):  # no floppy group on this host: root-only access is the safe default
            os.chown(path, -1, grp.getgrnam(FLOPPY_GROUP).gr_gid)
    except OSError as exc:
        raise VaultError(f"mknod {path} b {major} {minor}: {exc.strerror}") from None
    return True
