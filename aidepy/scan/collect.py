"""Per-file attribute collection: what the scanner records for one path it has already lstat'ed.

A `Plan` says, for one rule's attributes and one file type, what to collect; `collect` does it
for one path and returns what the path's `Entry` records (attributes, values) plus warnings.
Regular files are opened once (`O_RDONLY|O_NOFOLLOW|O_NOATIME|O_NONBLOCK`), checked with
`fstat` against the lstat result and hashed in one pass with every requested digest; fifos,
sockets and devices are never opened.

Values, as AIDE records them (stat fields always come from lstat):

* times (`a`, `c`, `m`) in nanoseconds since the epoch, cut to the second: AIDE records and
  compares them to the second;
* attributes that do not apply to a file type are left out of `Entry.attrs`, as AIDE leaves
  them out of its database line: hashes (regular files only), `l` (symlinks only), `acl` (not
  on symlinks), `e2fsattrs` (regular files and directories; also dropped when the file system
  has no such flags), unsupported hashes, and `acl`/`xattrs` on file systems without them;
* `acl`: getfacl-like text with numeric ids, one entry a line: the access ACL (the minimal one
  derived from the mode when there is no extended ACL, as `acl_get_file` gives AIDE), then
  the default ACL with `default:` before each line;
* `xattrs`: the `user.`, `trusted.` and `security.` attributes (AIDE's choice) as text, see
  `format_xattrs`; `b""` when there are none;
* `selinux`: the `security.selinux` label without its trailing NUL, `b""` when unlabelled;
* `e2fsattrs`: AIDE's lsattr-like string, one character per `E2FS_FLAGS` entry (the letter
  when set, `-` when not), e.g. `b"--------------e-------"`;
* `caps`: `security.capability` as text in the style of `cap_to_text` (`cap_net_raw=ep`),
  `b""` when the file has none;
* `ftype`: the type letter as bytes; `l`: the link target;
* `content` (regular files only): the zlib-compressed content, read through the same
  descriptor, of a file anybody may read (`aidepy.content` says what is refused, and why);
* `values` also holds `s` when `S` or `growing` is asked for, and `i` for `I` (compare needs
  them), without adding them to `attrs`.

None means "could not be collected" and always comes with a warning.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple, cast

from aidepy import content
from aidepy.attributes import BY_NAME, E2FS_FLAGS, SECOND, TIMES, AttrSet, Hasher, Kind
from aidepy.entry import Value

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NOATIME = getattr(os, "O_NOATIME", 0)
BUFFER_SIZE = 64 * 1024
"""Read size. Measured on /usr: reads of 64 KiB cost a third of the kernel time of 128 KiB+ reads."""

# lib/e2p's flag letters in AIDE's order (FS_IOC_GETFLAGS bits).
_FS_IOC_GETFLAGS = 0x80086601
_NO_FLAGS = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)
_NO_XATTRS = (errno.ENOTSUP, errno.ENOSYS)
_XATTR_PREFIXES = (b"user.", b"trusted.", b"security.")
# AIDE's PRINTABLE_XATTR_VALS, without '%' (the escape character here)
_PRINTABLE = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       b".-_:;,[]{}<>()!@#$^&*|\\/?~")

_ACL_TAGS = {0x01: "user", 0x02: "user", 0x04: "group", 0x08: "group", 0x10: "mask", 0x20: "other"}
_ACL_QUALIFIED = (0x02, 0x08)

CAP_NAMES: tuple[str, ...] = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)

_HASH_ONLY = "f"
_IMPLIED = (("S", "s"), ("growing", "s"), ("I", "i"))
_APPLIES: dict[str, str] = {"l": "l", "e2fsattrs": "fd", "content": "f"}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to collect for files of one type selected by one rule."""

    attrs: AttrSet  # what the entry records (the rule's attributes that apply)
    stat_fields: tuple[tuple[str, str], ...]  # (attribute, os.stat_result field)
    hashes: tuple[tuple[str, Callable[[], Hasher]], ...]
    linkname: bool
    ftype: bool
    acl: bool
    xattrs: bool
    selinux: bool
    caps: bool
    e2fsattrs: bool
    content: bool
    growing: bool
    opens: bool  # hashes, flags or content: the file is opened
    stat_only: bool  # nothing beyond the lstat result (and the type letter)
    stat_names: tuple[str, ...]
    stat_values: Callable[[os.stat_result], tuple[int, ...]]
    key: AttrSet  # the attributes the plan was made from


def make_plan(attrs: AttrSet, ftype: str) -> Plan:
    """The plan for a file of type `ftype` selected with attributes `attrs`."""
    kept: set[str] = set()
    for name in attrs:
        attr = BY_NAME[name]
        if attr.kind is Kind.HASH and (ftype != _HASH_ONLY or attr.new_hash is None):
            continue
        if ftype not in _APPLIES.get(name, ftype) or (name == "acl" and ftype == "l"):
            continue
        kept.add(name)
    hashes = tuple(sorted((n, new) for n in kept if (new := BY_NAME[n].new_hash) is not None))
    # AIDE keeps the size for `S` and `growing` without `s`, the inode for `I` without `i`:
    # compare needs them
    implied = {implied for flag, implied in _IMPLIED if flag in kept}
    fields = tuple(sorted((n, field) for n in kept | implied
                          if (field := BY_NAME[n].stat_field) is not None))
    extra = {"l", "acl", "xattrs", "selinux", "caps", "e2fsattrs", "content"} & kept
    names = tuple(n for n, _ in fields)
    return Plan(frozenset(kept), fields, hashes, "l" in kept, "ftype" in kept, "acl" in kept,
                "xattrs" in kept, "selinux" in kept, "caps" in kept, "e2fsattrs" in kept,
                "content" in kept, "growing" in kept, bool(hashes) or bool({"e2fsattrs", "content"} & kept),
                not hashes and not extra,
                names, _stat_getter([f for _, f in fields], [i for i, n in enumerate(names) if n in TIMES]),
                attrs)


def _stat_getter(fields: list[str], times: list[int]) -> Callable[[os.stat_result], tuple[int, ...]]:
    """A getter of several stat fields at once (attrgetter gives a tuple for 2+, in C); the
    fields at positions `times` (nanoseconds) are cut to the second."""
    if len(fields) > 1:
        getter: Callable[[os.stat_result], tuple[int, ...]] = attrgetter(*fields)
    elif fields:
        field = fields[0]
        getter = lambda st: (getattr(st, field),)  # noqa: E731
    else:
        return lambda st: ()
    if not times:
        return getter

    def to_the_second(st: os.stat_result) -> tuple[int, ...]:
        values = list(getter(st))
        for i in times:
            values[i] -= values[i] % SECOND
        return tuple(values)

    return to_the_second


class Job(NamedTuple):
    """One path to collect: where it is on disk, how it is recorded, its lstat result."""

    fs_path: bytes
    path: bytes
    ftype: str
    plan: Plan
    st: os.stat_result


def collect(job: Job, buf: memoryview) -> tuple[AttrSet, dict[str, Value], list[str]]:
    """Collect `job`'s attributes; `buf` is a reusable read buffer. Returns the attributes the
    entry records, their values and warnings."""
    plan = job.plan
    values: dict[str, Value] = dict(zip(plan.stat_names, plan.stat_values(job.st), strict=True))
    if plan.ftype:
        values["ftype"] = job.ftype.encode()
    if plan.stat_only:
        return plan.attrs, values, _NONE
    warnings: list[str] = []
    attrs = plan.attrs
    if plan.linkname:
        try:
            values["l"] = os.readlink(job.fs_path)
        except OSError as e:
            warnings.append(f"cannot read link target: {_reason(e)}")
            values["l"] = None
    fd = -1
    if plan.opens:
        fd = _open(job, warnings)
    try:
        target: int | bytes = fd if fd >= 0 else job.fs_path
        if plan.hashes:
            values.update(_hash(fd, job, buf, warnings) if fd >= 0 else dict.fromkeys(_names(plan)))
        if plan.e2fsattrs:
            if fd >= 0:
                flags = _e2fs_flags(fd, warnings)
                if flags is False:
                    attrs = attrs - {"e2fsattrs"}
                else:
                    values["e2fsattrs"] = flags
            else:
                values["e2fsattrs"] = None
        if plan.content:
            values["content"] = _content(fd, job, warnings) if fd >= 0 else None
        if plan.acl or plan.xattrs or plan.selinux or plan.caps:
            attrs = _meta(target, job, plan, values, attrs, warnings)
    finally:
        if fd >= 0:
            os.close(fd)
    return attrs, values, warnings


_NONE: list[str] = []  # shared, never appended to


def _names(plan: Plan) -> list[str]:
    return [name for name, _ in plan.hashes]


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def open_quietly(fs_path: bytes, flags: int, owner: int) -> int:
    """`os.open` with O_NOATIME where it may work (root, or the owner) and without it when the
    kernel says EPERM (no CAP_FOWNER), so reading leaves atimes alone where it can."""
    if NOATIME and (owner == _EUID or _EUID == 0):
        try:
            return os.open(fs_path, flags | NOATIME)
        except PermissionError as e:
            if e.errno != errno.EPERM:
                raise
    return os.open(fs_path, flags)


_EUID = os.geteuid()


def _open(job: Job, warnings: list[str]) -> int:
    """Open the lstat'ed object read-only without following links; -1 (and a warning) if not
    possible or if what was opened is not what lstat saw."""
    flags = OPEN_FLAGS | (os.O_DIRECTORY if job.ftype == "d" else 0)
    try:
        fd = open_quietly(job.fs_path, flags, job.st.st_uid)
    except FileNotFoundError:
        warnings.append("vanished before it could be opened")
        return -1
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            warnings.append("replaced by another file type between lstat and open")
        else:
            warnings.append(f"cannot open: {_reason(e)}")
        return -1
    try:
        fst = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        warnings.append(f"fstat failed: {_reason(e)}")
        return -1
    st = job.st
    if (fst.st_ino != st.st_ino or fst.st_dev != st.st_dev
            or stat.S_IFMT(fst.st_mode) != stat.S_IFMT(st.st_mode)):
        os.close(fd)
        warnings.append("replaced between lstat and open (fstat shows another file)")
        return -1
    if job.ftype == "f" and (fst.st_size != st.st_size or fst.st_mtime_ns != st.st_mtime_ns) and not (
            job.plan.growing and fst.st_size >= st.st_size):
        os.close(fd)
        warnings.append("changed between lstat and open (size or mtime differ)")
        return -1
    return fd


def _hash(fd: int, job: Job, buf: memoryview, warnings: list[str]) -> dict[str, Value]:
    """Every requested digest of the file in one read pass; None for all on a size mismatch."""
    hashers = [(name, new()) for name, new in job.plan.hashes]
    size = job.st.st_size
    growing = job.plan.growing
    cap = len(buf)
    total = 0
    reads = 0
    try:
        while True:
            # ask for one byte more than expected so growth shows; a short read is the end
            want = size - total if growing else size + 1 - total
            if want <= 0:
                break
            want = min(want, cap)
            view = buf[:want] if want < cap else buf
            n = os.readv(fd, (view,))
            reads += 1
            if n == 0:
                break
            # hashlib takes any buffer; the catalogue's Hasher protocol says bytes
            chunk = cast(bytes, view[:n] if n < want else view)
            for _, h in hashers:
                h.update(chunk)
            total += n
            if n < want and total >= size:
                break
        if reads > 2:
            after = os.fstat(fd)
            if after.st_mtime_ns != job.st.st_mtime_ns and not growing:
                warnings.append("changed while being hashed (mtime differs)")
                return dict.fromkeys(_names(job.plan))
    except OSError as e:
        warnings.append(f"read failed: {_reason(e)}")
        return dict.fromkeys(_names(job.plan))
    if total != size:
        how = "grew" if total > size else "shrank"
        warnings.append(f"{how} while being hashed ({total} bytes read, lstat said {size})")
        return dict.fromkeys(_names(job.plan))
    return {name: h.digest() for name, h in hashers}


def _content(fd: int, job: Job, warnings: list[str]) -> bytes | None:
    """The compressed content of the open file, or None (and a warning) when it may not be
    recorded or cannot be read whole."""
    stored = None
    why = content.refusal(job.st.st_mode, job.st.st_size) or _hidden_by(job.fs_path)
    if why is None:
        stored, why = _read_content(fd, job)
    if why is not None:
        warnings.append(why)
    return stored


def _read_content(fd: int, job: Job) -> tuple[bytes | None, str | None]:
    try:
        data = os.pread(fd, content.MAX_SIZE + 1, 0)
        mode = os.fstat(fd).st_mode
    except OSError as e:
        return None, f"cannot read its content: {_reason(e)}"
    if len(data) != job.st.st_size:
        return None, "content not recorded: changed while it was read"
    why = content.refusal(mode, len(data))  # the mode may have changed since lstat
    return (None, why) if why else content.compress(data)


def _hidden_by(fs_path: bytes) -> str | None:
    """Why a file is not world-readable although its mode says so: a directory above it that
    others cannot search (a private key in a 0700 directory), or None."""
    directory = os.path.dirname(fs_path)
    while True:
        try:
            mode = os.stat(directory).st_mode
        except OSError as e:
            return f"content not recorded: cannot check {os.fsdecode(directory)!r}: {_reason(e)}"
        if not mode & stat.S_IXOTH:
            return (f"content not recorded: {os.fsdecode(directory)!r} is not searchable by others "
                    "(its content never goes onto the vault)")
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _e2fs_flags(fd: int, warnings: list[str]) -> bytes | bool | None:
    """The flag string; False when the file system has no such flags (AIDE drops the attribute)."""
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, b"\0" * 8)
    except OSError as e:
        if e.errno in _NO_FLAGS:
            return False
        warnings.append(f"cannot read e2fsattrs: {_reason(e)}")
        return None
    return e2fs_string(int.from_bytes(raw[:4], "little"))


def e2fs_string(flags: int) -> bytes:
    """AIDE's lsattr-like rendering of FS_IOC_GETFLAGS bits."""
    return "".join(c if flags & bit else "-" for bit, c in E2FS_FLAGS).encode()


def _getxattr(target: int | bytes, name: bytes) -> bytes | None:
    """An xattr's value, None if absent (or the file system has no xattrs)."""
    try:
        return os.getxattr(target, name, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno in (errno.ENODATA, *_NO_XATTRS):
            return None
        raise


def _meta(target: int | bytes, job: Job, plan: Plan, values: dict[str, Value], attrs: AttrSet,
          warnings: list[str]) -> AttrSet:
    """acl, xattrs, selinux and caps from extended attributes (by fd when the file is open)."""
    dropped: set[str] = set()
    for name, wanted, get in (("acl", plan.acl, _acl), ("xattrs", plan.xattrs, _xattrs),
                              ("selinux", plan.selinux, _selinux), ("caps", plan.caps, _caps)):
        if not wanted:
            continue
        try:
            values[name] = get(target, job.st.st_mode)
        except FileNotFoundError:
            warnings.append(f"vanished before its {name} could be read")
            values[name] = None
        except OSError as e:
            if e.errno in _NO_XATTRS and name in ("acl", "xattrs"):
                dropped.add(name)
                continue
            warnings.append(f"cannot read {name}: {_reason(e)}")
            values[name] = None
    return attrs - dropped if dropped else attrs


def _acl(target: int | bytes, mode: int) -> bytes:
    access = _getxattr(target, b"system.posix_acl_access")
    text = _mode_acl(mode) if access is None else decode_acl(access, "")
    if stat.S_ISDIR(mode):
        default = _getxattr(target, b"system.posix_acl_default")
        if default is not None:
            text += decode_acl(default, "default:")
    return text.encode()


def _perm(bits: int) -> str:
    return ("r" if bits & 4 else "-") + ("w" if bits & 2 else "-") + ("x" if bits & 1 else "-")


def _mode_acl(mode: int) -> str:
    return f"user::{_perm(mode >> 6)}\ngroup::{_perm(mode >> 3)}\nother::{_perm(mode)}\n"


def decode_acl(raw: bytes, prefix: str) -> str:
    """The kernel's posix_acl xattr (version 2: tag, perm, id entries) as getfacl -n lines."""
    lines = []
    for off in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", raw, off)
        qualifier = str(ident) if tag in _ACL_QUALIFIED else ""
        lines.append(f"{prefix}{_ACL_TAGS.get(tag, f'tag{tag}')}:{qualifier}:{_perm(perm)}\n")
    return "".join(lines)


def _xattrs(target: int | bytes, _mode: int) -> bytes:
    try:
        names = os.listxattr(target, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno == errno.ENODATA:
            return b""
        raise
    values = {}
    for name in map(os.fsencode, names):
        if name.startswith(_XATTR_PREFIXES) and (value := _getxattr(target, name)) is not None:
            values[name] = value
    return format_xattrs(values)


def format_xattrs(values: dict[bytes, bytes]) -> bytes:
    """Extended attributes as sorted lines like AIDE's report: `name = value` when the value is
    printable in AIDE's sense, `name <=> base64` otherwise. Names are %-escaped outside that set,
    so no name holds a space or a newline and the text is unambiguous."""
    lines = []
    for name in sorted(values):
        value = values[name]
        shown = "".join(chr(c) if c in _PRINTABLE else f"%{c:02X}" for c in name)
        if value and all(c in _PRINTABLE for c in value):
            lines.append(f"{shown} = {value.decode('ascii')}\n")
        else:
            lines.append(f"{shown} <=> {base64.b64encode(value).decode('ascii')}\n")
    return "".join(lines).encode("ascii")


def _selinux(target: int | bytes, _mode: int) -> bytes:
    label = _getxattr(target, b"security.selinux")
    return label.rstrip(b"\0") if label else b""


def _caps(target: int | bytes, _mode: int) -> bytes:
    raw = _getxattr(target, b"security.capability")
    return decode_caps(raw).encode() if raw else b""


def decode_caps(raw: bytes) -> str:
    """`security.capability` (vfs_cap_data v1-v3) as text like libcap's `cap_to_text`."""
    if len(raw) < 12:
        return "invalid"
    magic = int.from_bytes(raw[:4], "little")
    words = 1 if magic >> 24 == 1 else 2
    effective = bool(magic & 1)
    permitted = inheritable = 0
    for i in range(words):
        off = 4 + 8 * i
        if off + 8 > len(raw):
            break
        permitted |= int.from_bytes(raw[off:off + 4], "little") << (32 * i)
        inheritable |= int.from_bytes(raw[off + 4:off + 8], "little") << (32 * i)
    groups: dict[str, list[str]] = {}
    for bit in range(32 * words):
        p, i = permitted >> bit & 1, inheritable >> bit & 1
        if not (p or i):
            continue
        flags = ("e" if effective else "") + ("i" if i else "") + ("p" if p else "")
        name = f"cap_{CAP_NAMES[bit]}" if bit < len(CAP_NAMES) else str(bit)
        groups.setdefault(flags, []).append(name)
    text = " ".join(",".join(names) + "=" + flags for flags, names in groups.items())
    if magic >> 24 == 3 and len(raw) >= 24:
        text += f" [rootid={int.from_bytes(raw[20:24], 'little')}]"
    return text
