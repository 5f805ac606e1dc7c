"""Shared fixtures: real trees, real tools, skips with a reason where the machine cannot."""

from __future__ import annotations

import contextlib
import dataclasses
import email.message
import email.policy
import fcntl
import io
import json
import mailbox
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import pexpect
import pytest

_T = TypeVar("_T")

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root in CI)")


# The program the command-line tests run: this checkout's package under the interpreter running
# pytest, or an installed program when AIDEPY_EXECUTABLE names one (.ci/run tests the Debian
# package's /usr/bin/aidepy this way, with Debian's python3 and libraries).
AIDEPY = ([os.environ["AIDEPY_EXECUTABLE"]] if os.environ.get("AIDEPY_EXECUTABLE")
          else [sys.executable, "-m", "aidepy"])


def require_tool(name: str) -> str:
    """The path of an external tool, or skip the test saying which one is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (./setup.sh installs it)")
    return path


# --- the host's own aidepy state is never touched --------------------------------------------

HOST_STATE = ("/var/lib/aidepy", "/etc/aidepy")
"""Where an aidepy installed on this machine keeps its state and config: tests use their own."""


def _snapshot(root: str) -> dict[str, tuple[int, int, int]]:
    """(mode, size, mtime) of everything under `root` (empty when it does not exist)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                found[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    with contextlib.suppress(OSError):
        st = os.lstat(root)
        found[root] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture(scope="session", autouse=True)
def host_state_untouched() -> Iterator[None]:
    """Fail the run if any test wrote under the host's /var/lib/aidepy or /etc/aidepy."""
    before = {root: _snapshot(root) for root in HOST_STATE}
    yield
    after = {root: _snapshot(root) for root in HOST_STATE}
    changed = sorted({path for root in HOST_STATE
                      for path in before[root].keys() ^ after[root].keys()
                      | {p for p in before[root].keys() & after[root].keys()
                         if before[root][p] != after[root][p]}})
    if changed:
        pytest.fail(f"the tests changed the host's aidepy state: {', '.join(changed)}")


# --- root's mailbox through Debian's exim4 (owner: operations) ---------------------------------
# Stock Debian exim4 never delivers as root (FIXED_NEVER_USERS) and its `mail4root` router puts
# root's mail into /var/mail/mail unless /etc/aliases redirects root. `root: root` loops back to
# mail4root, and `root: real-root` is refused as user 0; what works is an alias to the file
# /var/mail/root, which needs a file transport and a non-root user on the `system_aliases`
# router (Debian's SYSTEM_ALIASES_* macros, set in exim4.conf.localmacros). Every line the
# fixture adds sits in a marked block, so teardown (and a later run after a crash) removes exactly them.

MAIL_MARKER = "# aidepy-test-fixture"
ALIASES = "/etc/aliases"
LOCALMACROS = "/etc/exim4/exim4.conf.localmacros"
ROOT_MBOX = "/var/mail/root"


def _strip_marked(path: str) -> None:
    """Remove the fixture's block from `path` and re-enable lines it disabled (or drop a file it made)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.read().splitlines(keepends=True)
    if lines and lines[0] == f"{MAIL_MARKER} created\n":
        os.unlink(path)
        return
    kept, inside = [], False
    for line in lines:
        if line == f"{MAIL_MARKER} begin\n":
            inside = True
        elif line == f"{MAIL_MARKER} end\n":
            inside = False
        elif line.startswith(f"{MAIL_MARKER} disabled: "):
            kept.append(line[len(f"{MAIL_MARKER} disabled: "):])
        elif not inside:
            kept.append(line)
    with open(path, "w") as f:
        f.writelines(kept)


def _add_marked(path: str, new_lines: list[str], disable_prefix: str | None = None) -> None:
    """Append `new_lines` to `path` in a marked block; lines starting with `disable_prefix` are disabled."""
    lines = [f"{MAIL_MARKER} created\n"]
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if disable_prefix is not None:
        lines = [f"{MAIL_MARKER} disabled: {ln}" if ln.replace(" ", "").startswith(disable_prefix) else ln
                 for ln in lines]
    lines += [f"{MAIL_MARKER} begin\n", *(ln + "\n" for ln in new_lines), f"{MAIL_MARKER} end\n"]
    with open(path, "w") as f:
        f.writelines(lines)


class RootMailbox:
    """Root's mbox as the local MTA delivers it."""

    path = ROOT_MBOX

    def messages(self) -> list[email.message.EmailMessage]:
        """Every message in the mailbox, oldest first."""
        if not os.path.exists(self.path):
            return []
        box = mailbox.mbox(self.path, create=False)
        try:
            return [email.message_from_bytes(box.get_bytes(key), _class=email.message.EmailMessage,
                                             policy=email.policy.default) for key in box.iterkeys()]
        finally:
            box.close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[email.message.EmailMessage]:
        """Wait (bounded) until the mailbox holds `count` messages; returns them all."""
        deadline = time.monotonic() + timeout
        while len(found := self.messages()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(found) >= count, f"{self.path}: {len(found)} messages, expected {count} (exim4 mainlog?)"
        return found


@pytest.fixture
def root_mailbox() -> Iterator[RootMailbox]:
    """Arrange that exim4 delivers root's mail to an empty /var/mail/root; undo it afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to configure exim4 (runs as root in CI)")
    exim = require_tool("exim4")
    update = require_tool("update-exim4.conf")
    # One test run at a time owns root's mailbox (test runs in parallel on one machine).
    guard = open("/run/aidepy-test-root-mailbox.lock", "w")  # noqa: SIM115 (closed below)
    fcntl.flock(guard, fcntl.LOCK_EX)
    saved_mbox = None
    if os.path.exists(ROOT_MBOX):
        saved_mbox = ROOT_MBOX + ".aidepy-test-saved"
        os.replace(ROOT_MBOX, saved_mbox)
    try:
        for path in (ALIASES, LOCALMACROS):
            _strip_marked(path)
        _add_marked(LOCALMACROS, ["SYSTEM_ALIASES_FILE_TRANSPORT = address_file",
                                  "SYSTEM_ALIASES_USER = mail", "SYSTEM_ALIASES_GROUP = mail"])
        _add_marked(ALIASES, [f"root: {ROOT_MBOX}"], disable_prefix="root:")
        subprocess.run([update], check=True)
        route = subprocess.run([exim, "-bt", "root"], capture_output=True, text=True).stdout
        if ROOT_MBOX not in route:
            pytest.skip(f"exim4 does not route root to {ROOT_MBOX} on this machine: {route.strip()}")
        yield RootMailbox()
    finally:
        for path in (ALIASES, LOCALMACROS):
            _strip_marked(path)
        subprocess.run([update], check=False)
        if os.path.exists(ROOT_MBOX):
            os.unlink(ROOT_MBOX)
        if saved_mbox is not None:
            os.replace(saved_mbox, ROOT_MBOX)
        guard.close()


# --- loop devices (vault helper) ---------------------------------------------------------------

FLOPPY_BYTES = 1722 * 1024
"""The seed's medium: a 1722 KiB floppy (/dev/fd0u1722)."""


@dataclasses.dataclass
class LoopDevice:
    """An image file attached to a loop device (`device`), writable until `set_read_only(True)`."""

    device: str
    image: str

    def set_read_only(self, read_only: bool = True) -> None:
        """Flip the kernel's write protection, like the floppy's tab (`blockdev --setro/--setrw`)."""
        subprocess.run([require_tool("blockdev"), "--setro" if read_only else "--setrw", self.device],
                       check=True)

    def backed_by_image(self) -> bool:
        """Whether `device` is still attached to this image (a test may detach it, and another
        process may then attach something else to the same device)."""
        out = subprocess.run([require_tool("losetup"), "--list", "--json", "-O", "BACK-INO", self.device],
                             capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip() or not os.path.exists(self.image):
            return False
        return bool(json.loads(out.stdout)["loopdevices"][0]["back-ino"] == os.stat(self.image).st_ino)

    def mountpoints(self) -> list[str]:
        """Where this device is mounted now (from /proc/self/mountinfo)."""
        rdev = os.stat(self.device).st_rdev
        wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4].replace("\\040", " ") for line in f if line.split()[2] == wanted]


def _release_loop(loop: LoopDevice) -> None:
    if not loop.backed_by_image():
        return  # detached by the test, maybe reattached by someone else: not ours to touch
    for where in reversed(loop.mountpoints()):
        subprocess.run([require_tool("umount"), where], check=False)
    loop.set_read_only(False)
    subprocess.run([require_tool("losetup"), "-d", loop.device], check=False)


@pytest.fixture
def make_loop_device(tmp_path: Path) -> Iterator[Callable[..., LoopDevice]]:
    """Factory: `make_loop_device(size=FLOPPY_BYTES, name="vault.img")` attaches a fresh zeroed image
    with `losetup -f --show`; every device is unmounted, made writable and detached afterwards."""
    if os.geteuid() != 0:
        pytest.skip("loop devices need root (runs as root in CI)")
    losetup = require_tool("losetup")
    require_tool("blockdev")
    made: list[LoopDevice] = []

    def make(size: int = FLOPPY_BYTES, name: str | None = None) -> LoopDevice:
        image = tmp_path / (name or f"loop{len(made)}.img")
        with open(image, "wb") as f:
            f.truncate(size)
        out = subprocess.run([losetup, "-f", "--show", str(image)],
                             check=True, capture_output=True, text=True)
        loop = LoopDevice(out.stdout.strip(), str(image))
        made.append(loop)
        loop.set_read_only(False)  # the kernel keeps a --setro flag across detach and re-attach
        return loop

    yield make
    for loop in reversed(made):
        _release_loop(loop)


@pytest.fixture
def loop_device(make_loop_device: Callable[..., LoopDevice]) -> LoopDevice:
    """One 1722 KiB image on a loop device (see `make_loop_device` for other sizes)."""
    return make_loop_device()


# --- a vault with a signing key and a config, for promote and the daily report (owner: operations)


# promote's prompts, as the tests driving it through a pty expect them
ACCEPT = "Accept these differences"
PASSPHRASE = "Passphrase for the signing key"
COMMENT = "Comment for the approval log"
REMOVE = "Remove the write protection"
WRITABLE = "The vault is writable."
RESTORE = "restore the vault's write protection"
REVIEW = "a=accept, k=keep, d=detail"


class Admin(io.StringIO):
    """promote's output stream, playing the admin: `on(text, action)` runs `action` when promote
    says `text` (flip the write protection, take the medium out, press Ctrl-C...)."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[tuple[str, Callable[[], object]]] = []

    def on(self, text: str, action: Callable[[], object]) -> Admin:
        self.actions.append((text, action))
        return self

    def write(self, s: str) -> int:
        n = super().write(s)
        for text, action in self.actions:
            if text in s:
                action()
        return n


@dataclasses.dataclass
class VaultSite:
    """A formatted vault on a loop device, a signing key, a small tree and the config naming them."""

    loop: LoopDevice
    root: Path
    label: str
    passphrase: str | None

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def key(self) -> Path:
        return self.root / "signing.key"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def mountpoint(self) -> Path:
        return self.root / "vault"

    @property
    def config_path(self) -> Path:
        return self.root / "aidepy.conf"

    def write_config(self, device: str | None = None, extra: str = "") -> None:
        """The config: vault, key and state under `root`, one rule for `tree`."""
        self.config_path.write_text(
            f"vault_device={device or self.loop.device}\nvault_label={self.label}\n"
            f"vault_mountpoint={self.mountpoint}\nsigning_key={self.key}\nstate_dir={self.state_dir}\n"
            f"{extra}{self.tree} p+i+n+u+g+s+m+sha256\n"
        )

    def write_protected(self) -> bool:
        """The kernel's write protection of the vault's device (sysfs `ro`)."""
        return Path(f"/sys/class/block/{Path(self.loop.device).name}/ro").read_text().strip() == "1"

    def baseline(self) -> tuple[int, str]:
        """(generation, sha256 hex) of the vault's baseline, verified with the vault's key."""
        from aidepy.config import evaluate as config
        from aidepy.db import file as db
        from aidepy.vault.vault import Vault

        vault = Vault.open(config.load(self.config_path), warn=lambda m: None)
        with vault.mounted(), db.open_database(vault.baseline_path(), vault.public_key()) as base:
            return base.header.generation, base.sha256.hex()


@pytest.fixture
def vault_site(loop_device: LoopDevice, tmp_path: Path) -> VaultSite:
    """A formatted, still writable vault (label unique to the test) with an encrypted signing key
    (passphrase "correct horse") and a small tree; no baseline yet."""
    from aidepy import keys
    from aidepy.vault.vault import format_vault

    site = VaultSite(loop_device, tmp_path, f"AT{os.getpid() % 100000}{tmp_path.name[-6:]}"[:16],
                     "correct horse")
    site.tree.mkdir()
    (site.tree / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (site.tree / "motd").write_text("welcome\n")
    keys.generate_keypair(site.key, site.passphrase.encode() if site.passphrase else None)
    loop_device.set_read_only(False)  # the kernel keeps a --setro across detach and attach
    format_vault(loop_device.device, label=site.label, public_key=keys.public_key_beside(site.key),
                 warn=lambda m: None)
    site.write_config()
    return site


# --- time limits for hostile input (owner: hardening) ------------------------------------------


class TimeLimitExceeded(BaseException):
    """Raised by `time_limit` in the main thread; a BaseException so no `except Exception` in the
    code under test can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    """Run the body under SIGALRM: a hang becomes a failure naming `what` after `seconds` (main
    thread only; a blocking system call in the main thread is interrupted too)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


NOBODY = 65534


def as_nobody(work: Callable[[], _T], seconds: int = 60) -> _T:
    """`work()` in a forked child that dropped root for `nobody` (root reads everything, so
    permission tests need it); its result comes back pickled, a failure as its traceback."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result: object = work()
        except BaseException:
            result = AssertionError(f"as nobody:\n{traceback.format_exc()}")
        finally:
            with os.fdopen(write, "wb") as out:
                pickle.dump(result, out)
            os._exit(0)
    os.close(write)
    with time_limit(seconds, "the unprivileged run"), os.fdopen(read, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    got = pickle.loads(data)
    if isinstance(got, AssertionError):
        raise got
    return got  # type: ignore[no-any-return]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may search (mode 0755, under /var/tmp): the `content` attribute
    records only files anybody can read, and pytest's own temporary directories are private."""
    path = Path(tempfile.mkdtemp(prefix="aidepy-test-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def spawn_promote(site: VaultSite, *args: str, rows: int = 200, pager: str | None = "cat") -> pexpect.spawn:
    """`aidepy promote` for `site` in a real pty (pexpect), its pager `cat` (None: none set)."""
    env = {**os.environ, "TERM": "xterm"}
    env.pop("PAGER", None)
    if pager is not None:
        env["PAGER"] = pager
    return pexpect.spawn(AIDEPY[0], [*AIDEPY[1:], "promote", "-c", str(site.config_path), *args],
                         env=env, encoding="utf-8", timeout=60, dimensions=(rows, 120))


def finish(child: pexpect.spawn) -> int:
    """Wait for the end of `child`; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return int(child.exitstatus)


def to_writable(child: pexpect.spawn, site: VaultSite, comment: str = "") -> None:
    """Play the admin up to the moment the vault is writable (`comment` for the approval log)."""
    child.expect(ACCEPT)
    child.sendline("y")
    unlock(child, site, comment)


def unlock(child: pexpect.spawn, site: VaultSite, comment: str = "") -> None:
    """Play the admin from the passphrase prompt on: type it and `comment`, lift the write
    protection when asked, up to the moment the vault is writable."""
    child.expect(PASSPHRASE)
    child.sendline(site.passphrase or "")
    child.expect(COMMENT)
    child.sendline(comment)
    child.expect(REMOVE)
    site.loop.set_read_only(False)
    child.expect(WRITABLE)


def sign_and_write(child: pexpect.spawn, site: VaultSite) -> str:
    """Play the admin from the passphrase on (`unlock`), then restore the write protection when
    asked; returns the summary (promote must exit 0)."""
    unlock(child, site)
    child.expect(RESTORE)
    site.loop.set_read_only(True)
    child.expect("Promoted: ")
    summary: str = child.read()
    assert finish(child) == 0, summary
    return summary


def next_second() -> None:
    """Wait until the clock has entered the next whole second. Times are compared to the second,
    as AIDE does: what changes after a baseline taken in the same second shows no time change,
    and a directory whose only changes are its times shows no change at all."""
    time.sleep(1.02 - time.time() % 1)  # file times lag the clock by a tick at most


def backdate(path: Path) -> None:
    """Set `path`'s atime and mtime a minute back. Times are compared to the second, as AIDE
    does: a directory whose baseline is taken now and which changes now would otherwise show a
    change only when a second boundary happened to pass in between."""
    minute_ago = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(minute_ago, minute_ago))


def promote_in_process(site: VaultSite, answers: str = "y\n", **kw: object) -> tuple[int, str]:
    """A complete promote (the admin flips the protection when asked); (generation, output).
    `answers`: the lines typed before the passphrase (the differences accepted, or reviewed)."""
    from aidepy.config import evaluate as config
    from aidepy.jobs.console import Console
    from aidepy.jobs.promote import Promoted, Promotion

    admin = (Admin().on(REMOVE, lambda: site.loop.set_read_only(False))
             .on(RESTORE, lambda: site.loop.set_read_only(True)))
    console = Console(io.StringIO(f"{answers}correct horse\n"), admin)
    result = Promotion(config.load(site.config_path), console,
                       poll=0.05, patience=60, **kw).run()  # type: ignore[arg-type]
    assert isinstance(result, Promoted), f"{result}\n{admin.getvalue()}"
    return result.generation, admin.getvalue()


def fill(root: Path, leave: int = 0) -> None:
    """Fill the filesystem of `root` until at most `leave` bytes are free."""
    with open(root / "filler", "ab", buffering=0) as f:
        while (free := os.statvfs(root).f_bavail * os.statvfs(root).f_frsize) > leave:
            try:
                f.write(bytes(max(1024, min(1 << 20, free - leave))))
            except OSError:
                break
        os.fsync(f.fileno())


def vault_filler(site: VaultSite, leave: int) -> None:
    """Fill the (writable) vault as a foreign file would, leaving `leave` bytes free."""
    mount = require_tool("mount")
    subprocess.run([mount, "-t", "ext2", site.loop.device, str(site.mountpoint)], check=True)
    try:
        fill(site.mountpoint, leave)
    finally:
        subprocess.run([require_tool("umount"), str(site.mountpoint)], check=True)


def aidepy(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The aidepy command line, run as the admin would (a fresh process), `input` its stdin."""
    return subprocess.run([*AIDEPY, *args], input=input, capture_output=True, text=True, timeout=120)


def daily_report(site: VaultSite, *extra: str) -> subprocess.CompletedProcess[str]:
    """The next daily run of `site`, its mail kept in site.root / "mail" (a sendmail sink)."""
    sink = site.root / "sendmail"
    if not sink.exists():
        sink.write_text(f"#!/bin/sh\ncat > {site.root}/mail\n")
        sink.chmod(0o755)
    return aidepy("report", "-c", str(site.config_path), "-A", f"sendmail={sink}", *extra)


def sent_mail(site: VaultSite) -> email.message.EmailMessage:
    """The last mail `daily_report` sent for `site`."""
    return email.message_from_bytes((site.root / "mail").read_bytes(), policy=email.policy.default,
                                    _class=email.message.EmailMessage)


@pytest.fixture
def anchored_site(vault_site: VaultSite) -> VaultSite:
    """A vault too full for the baseline: it holds only the signed anchor of a disk copy."""
    site = vault_site
    site.mountpoint.mkdir()
    vault_filler(site, 12 * 1024)
    for i in range(600):  # a database bigger than the 12 KiB left
        (site.tree / f"file{i:03d}").write_text(f"{i}\n")
    backdate(site.tree)
    generation, out = promote_in_process(site)
    assert generation == 1 and "signed anchor on the vault" in out
    return site


def rewrite_vault(site: VaultSite, action: str) -> None:
    """Run the shell `action` in the vault's directory with its write protection lifted for a moment."""
    site.loop.set_read_only(False)
    subprocess.run(["mount", "-o", "remount,rw", str(site.mountpoint)], check=True)
    subprocess.run(["sh", "-c", action], cwd=site.mountpoint, check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(site.mountpoint)], check=True)
    site.loop.set_read_only(True)


# --- Debian's aide as an oracle: the same tree and rules for both programs ---------------------


@dataclasses.dataclass
class OracleSetup:
    """A tree and the configs that make `aide` and `aidepy` watch it the same way."""

    root: Path
    aide_conf: Path
    aidepy_conf: Path


def configure(work: Path, root: Path, rules_text: str) -> OracleSetup:
    """Equivalent configs for both programs: same rules, each its own database files."""
    work.mkdir(exist_ok=True)
    s = OracleSetup(root, work / "aide.conf", work / "aidepy.conf")
    s.aide_conf.write_text(f"database_in=file:{work}/aide.db\ndatabase_out=file:{work}/aide.db.new\n"
                           f"gzip_dbout=no\nreport_url=stdout\n{rules_text}")
    s.aidepy_conf.write_text(f"state_dir={work}/state\ndatabase_in=file:{work}/aidepy.db\n"
                             f"database_out=file:{work}/aidepy.db.new\nsigning_key={work}/no-such.key\n{rules_text}")
    return s


def oracle_aide(conf: Path, action: str, *extra: str) -> tuple[bytes, int]:
    """Run Debian's aide: its report and exit code."""
    proc = subprocess.run(["aide", "-c", str(conf), action, *extra], capture_output=True)
    assert proc.returncode < 14, proc.stderr.decode(errors="replace")
    return proc.stdout, proc.returncode


def oracle_aidepy(conf: Path, action: str, *extra: str) -> tuple[bytes, int]:
    """Run aidepy as the admin does: its report and exit code."""
    proc = subprocess.run([*AIDEPY, action, "-c", str(conf), *extra],
                          capture_output=True)
    assert proc.returncode < 14, proc.stderr.decode(errors="replace")
    return proc.stdout, proc.returncode


def init_both(s: OracleSetup) -> None:
    """Both programs record their baseline of the same tree."""
    for run, conf in ((oracle_aide, s.aide_conf), (oracle_aidepy, s.aidepy_conf)):
        run(conf, "--init")
        new = conf.parent / (("aide" if run is oracle_aide else "aidepy") + ".db.new")
        new.rename(new.with_suffix(""))
    next_second()  # so every ctime change the mutations make shows


def report_body(report: bytes) -> list[bytes]:
    """The lines AIDE and aidepy both print, from the verdict to the database section: without
    the start line, aidepy's signature notice and its Warnings section."""
    lines = report.split(b"\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Start timestamp: ")) + 1
    ends = [lines.index(h) for h in (b"Warnings:", b"The attributes of the (uncompressed) database(s):")
            if h in lines]
    ends += [i for i, line in enumerate(lines) if line.startswith(b"End timestamp: ")]
    body = lines[start:min(ends) - 1]
    while body and not body[-1]:
        body.pop()
    return body
# --- a Debian host in a tree: packages built, published in a signed repository, installed by apt --


@dataclasses.dataclass
class AptTree:
    """A host tree under `root` (used as root_prefix) with its own dpkg database and apt setup,
    a local repository signed by a test key (GNUPGHOME under `work`), and apt-get and dpkg
    working on the tree only: nothing on the machine itself is installed or changed."""

    work: Path

    @property
    def root(self) -> Path:
        return self.work / "root"

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    @property
    def gnupg(self) -> Path:
        return self.work / "gnupg"

    def setup(self) -> AptTree:
        for tool in ("dpkg-deb", "apt-ftparchive", "gpg", "gpgv", "apt-get"):
            require_tool(tool)
        r = self.root
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log/apt",
                  "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d", "etc/apt/preferences.d",
                  "etc/apt/apt.conf.d", "var/cache/apt/archives/partial", "var/lib/apt/lists/partial",
                  "usr/bin", "etc"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "var/lib/dpkg/status").touch()
        (r / "var/lib/dpkg/available").touch()
        (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (r / "etc/group").write_text("root:x:0:\n")
        self.repo.mkdir()
        (self.work / "pool").mkdir()
        self.gnupg.mkdir(mode=0o700)
        self.gpg("--quick-gen-key", "aidepy test archive <archive@example.org>", "ed25519", "sign", "never")
        (r / "etc/apt/trusted.gpg.d/test-archive.gpg").write_bytes(self.gpg("--export"))
        (r / "etc/apt/sources.list").write_text(f"deb copy:{self.repo} ./\n")
        return self

    def gpg(self, *args: str, key: str | None = None) -> bytes:
        env = {**os.environ, "GNUPGHOME": str(self.gnupg)}
        return subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", *args], env=env,
                              check=True, capture_output=True).stdout

    def build(self, name: str, version: str, files: Mapping[str, str | bytes | tuple[str | bytes, int]],
              conffiles: tuple[str, ...] = (), links: dict[str, str] | None = None) -> Path:
        """A .deb of `name` `version` (arch all) shipping `files` (path -> text or (text, mode))
        and symlinks `links` (path -> target), built with dpkg-deb."""
        src = self.work / "src" / f"{name}-{version}"
        (src / "DEBIAN").mkdir(parents=True)
        (src / "DEBIAN/control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
            f"Description: aidepy test package\n")
        if conffiles:
            (src / "DEBIAN/conffiles").write_text("".join(f"{c}\n" for c in conffiles))
        for path, spec in files.items():
            text, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
            target = src / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode() if isinstance(text, str) else text)
            target.chmod(mode)
        for path, dest in (links or {}).items():
            (src / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (src / path.lstrip("/")).symlink_to(dest)
        out = self.work / "pool" / f"{name}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(src), str(out)], check=True,
                       capture_output=True)
        return out

    def publish(self, *debs: Path) -> None:
        """The repository holds exactly `debs`: Packages, Release, InRelease signed by the test key."""
        for old in self.repo.iterdir():
            old.unlink()
        for deb in debs:
            shutil.copy(deb, self.repo)

        def ftparchive(what: str) -> bytes:
            return subprocess.run(["apt-ftparchive", what, "."], cwd=self.repo, check=True,
                                  capture_output=True).stdout

        (self.repo / "Packages").write_bytes(ftparchive("packages"))
        (self.repo / "Release").write_bytes(ftparchive("release"))
        self.gpg("--clearsign", "-o", str(self.repo / "InRelease"), str(self.repo / "Release"))

    def apt_get(self, *args: str) -> str:
        r = self.root
        options = [f"Dir={r}", f"Dir::State::status={r}/var/lib/dpkg/status", "Debug::NoLocking=1",
                   f"DPkg::Options::=--root={r}", f"DPkg::Options::=--log={r}/var/log/dpkg.log",
                   "DPkg::Options::=--force-not-root",
                   "APT::Sandbox::User=root"]
        command = ["apt-get", "-q", "-y", *(a for o in options for a in ("-o", o)), *args]
        run = subprocess.run(command, capture_output=True, text=True, check=False,
                             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def install(self, *names: str) -> None:
        self.apt_get("update")
        self.apt_get("install", *names)

    def upgrade(self) -> None:
        """`apt-get upgrade`, in a later second than any baseline recorded before it (as every
        real upgrade is): the directories it touches show their time changes."""
        next_second()
        self.apt_get("update")
        self.apt_get("upgrade")


@pytest.fixture
def apt_tree(tmp_path: Path) -> AptTree:
    return AptTree(tmp_path / "apt").setup()
