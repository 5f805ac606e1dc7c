"""Attacks on the state directory and the vault's mountpoint by local users, performed for real:
the account that owns state_dir (least privilege) or any user plants links, FIFOs and files or
holds the lock; root's report, promote and vault commands neither follow, block nor hang, and
every refusal is mailed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    NOBODY,
    VaultSite,
    aidepy,
    as_nobody,
    daily_report,
    promote_in_process,
    requires_root,
    sent_mail,
)

from aidepy.errors import ExitCode
from aidepy.state import ANCHORED_DATABASE

pytestmark = requires_root

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
sys.stdin.readline()
"""


def owned_by_nobody(path: Path) -> Path:
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


def plant(directory: Path, how: str, name: str, target: Path | None = None) -> None:
    """As nobody, put a symlink (`link`) or FIFO (`fifo`) named `name` into `directory`, reached
    through a descriptor root opened (pytest's temporary directory is root's, 0700)."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if how == "link":
            assert target is not None, "a link needs a target"
            as_nobody(lambda: os.symlink(target, name, dir_fd=dfd))
        else:
            as_nobody(lambda: os.mkfifo(name, dir_fd=dfd))
    finally:
        os.close(dfd)


def report_config(tmp_path: Path, state_dir: Path, extra: str = "") -> Path:
    """A config whose vault is missing (the report mails an ALERT) and whose mail goes to
    tmp_path/mail."""
    sink = tmp_path / "sendmail"
    sink.write_text(f"#!/bin/sh\ncat > {tmp_path}/mail\n")
    sink.chmod(0o755)
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"vault_device={tmp_path}/no-such-medium\nstate_dir={state_dir}\n"
                    f"sendmail={sink}\n{extra}{tmp_path}/tree p\n")
    return conf


def mail_of(tmp_path: Path) -> str:
    return (tmp_path / "mail").read_text()


def test_a_link_at_the_lock_is_not_followed_and_is_mailed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's data\n")
    state = owned_by_nobody(tmp_path / "state")
    plant(state, "link", "aidepy.lock", victim)
    run = aidepy("report", "-c", str(report_config(tmp_path, state)))
    assert victim.read_text() == "root's data\n"  # not truncated through the link
    assert run.returncode == ExitCode.UNSAFE_LAYOUT, run.stderr
    assert "aidepy.lock is a symbolic link: refusing to follow it" in run.stderr
    assert "Traceback" not in run.stderr
    assert "ALERT: UNSAFE LAYOUT, NO CHECK DONE" in mail_of(tmp_path)


def test_a_state_dir_aidepy_creates_is_its_owners_only(tmp_path: Path) -> None:
    aidepy("report", "-c", str(report_config(tmp_path, tmp_path / "new" / "state")))
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700


def test_no_other_user_can_open_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "aidepy.lock").write_text("")
    (state / "aidepy.lock").chmod(0o644)  # as an earlier aidepy left it
    aidepy("report", "-c", str(report_config(tmp_path, state)))
    assert stat.S_IMODE((state / "aidepy.lock").stat().st_mode) == 0o600
    dfd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(AssertionError, match="PermissionError"):
            as_nobody(lambda: os.open("aidepy.lock", os.O_RDONLY, dir_fd=dfd))  # flock needs only this
    finally:
        os.close(dfd)


def test_a_lock_root_makes_in_the_accounts_state_dir_is_the_accounts(tmp_path: Path) -> None:
    """`vault mount` run as root before the unprivileged report makes the lock:
    the report must still be able to open it."""
    state = owned_by_nobody(tmp_path / "state")
    aidepy("report", "-c", str(report_config(tmp_path, state)))
    assert (state / "aidepy.lock").stat().st_uid == NOBODY
    dfd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        as_nobody(lambda: os.close(os.open("aidepy.lock", os.O_RDWR, dir_fd=dfd)))
    finally:
        os.close(dfd)


@pytest.fixture
def held_by_nobody(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A state directory owned by nobody, whose lock nobody holds (as its owner may)."""
    state = owned_by_nobody(tmp_path / "state")
    dfd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    python = "/usr/bin/python3"  # the test's own may lie where nobody cannot reach it
    holder = subprocess.Popen([python, "-c", HOLD, f"/proc/self/fd/{dfd}/aidepy.lock"],
                              pass_fds=[dfd], user=NOBODY, group=NOBODY, extra_groups=[],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    os.close(dfd)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield state, holder.pid
    finally:
        holder.communicate("")


def test_a_report_that_cannot_get_the_lock_mails_an_alert_naming_the_holder(
        tmp_path: Path, held_by_nobody: tuple[Path, int]) -> None:
    state, pid = held_by_nobody
    run = aidepy("report", "-c", str(report_config(tmp_path, state)), "--wait", "0")
    assert run.returncode == ExitCode.BUSY
    mail = mail_of(tmp_path)
    assert "ALERT: ANOTHER RUN HOLDS THE LOCK, NO CHECK DONE" in mail and f"pid {pid}" in mail
    assert not (state / "last-report.txt").exists()  # nothing written without the lock


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    assert promote_in_process(vault_site)[0] == 1
    aidepy("vault", "umount", "-c", str(vault_site.config_path))  # every mount of the medium
    return vault_site


def is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


@pytest.mark.parametrize("how", ["link", "dangling link", "directory"])
def test_a_mountpoint_in_a_directory_another_account_owns_is_refused(
        promoted: VaultSite, tmp_path: Path, how: str) -> None:
    """As in the old least-privilege layout (the mountpoint inside the account's state_dir):
    its owner could swap the mountpoint for a link to any directory."""
    site = promoted
    victim = tmp_path / "etc-like"
    victim.mkdir()
    state = owned_by_nobody(tmp_path / "owned")
    if how == "directory":
        (state / "vault").mkdir()
    else:
        plant(state, "link", "vault", victim if how == "link" else tmp_path / "nowhere")
    run = aidepy("vault", "mount", "-c", str(site.config_path), "-A", f"vault_mountpoint={state}/vault")
    assert run.returncode == ExitCode.UNSAFE_LAYOUT, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and f"{state} belongs to uid {NOBODY}" in run.stderr
    assert not is_mountpoint(victim) and not (tmp_path / "nowhere").exists()


def test_a_mountpoint_that_is_a_file_is_an_alert_mail_not_a_traceback(promoted: VaultSite) -> None:
    site = promoted
    site.mountpoint.rmdir()
    site.mountpoint.write_text("not a directory\n")
    run = daily_report(site)
    assert run.returncode == ExitCode.UNSAFE_LAYOUT, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    mail = sent_mail(site)
    assert "ALERT: UNSAFE LAYOUT, NO CHECK DONE" in mail["Subject"]
    assert f"{site.mountpoint} is not a directory" in mail.get_content()


def test_a_fifo_in_place_of_the_anchored_database_hangs_nothing(anchored_site: VaultSite) -> None:
    site = anchored_site
    state = site.state_dir
    os.chown(state, NOBODY, NOBODY)  # least privilege: the database's directory is the account's
    (state / ANCHORED_DATABASE.format(generation=1)).unlink()
    plant(state, "fifo", ANCHORED_DATABASE.format(generation=1))
    status = aidepy("vault", "status", "-c", str(site.config_path))
    assert "DOES NOT VERIFY: anchored database" in status.stdout and "not a regular file" in status.stdout
    run = daily_report(site)
    assert run.returncode == ExitCode.VERIFICATION_FAILED, run.stdout + run.stderr
    assert "ANCHORED COPY MISSING OR CHANGED" in sent_mail(site)["Subject"]
    promote = aidepy("promote", "--yes", "-c", str(site.config_path))
    assert "Traceback" not in promote.stderr


def test_a_fifo_as_the_rollback_record_hangs_nothing(promoted: VaultSite) -> None:
    site = promoted
    os.chown(site.state_dir, NOBODY, NOBODY)
    (site.state_dir / "generations.seen").unlink()
    plant(site.state_dir, "fifo", "generations.seen")
    run = daily_report(site)
    assert run.returncode == 0, run.stdout + run.stderr
    body = sent_mail(site).get_content()
    assert "the rollback record" in body and "generations.seen is not a regular file" in body


def test_vault_commands_wait_for_no_one_and_never_unmount_under_a_running_report(
        promoted: VaultSite) -> None:
    """The daily report (here: a process holding the lock) has the vault mounted; `vault umount`,
    `vault status`, `check` and `compare` of the vault's baseline, `check --vault-rules` and
    `promote --yes` are refused and leave it as it is."""
    site = promoted
    assert aidepy("vault", "mount", "-c", str(site.config_path)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(site.state_dir / "aidepy.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = site.baseline()
        for command in (["vault", "umount"], ["vault", "status"], ["check", "--vault-rules"],
                        ["check"], ["compare"], ["promote", "--yes"]):  # check: the vault's baseline
            run = aidepy(*command, "-c", str(site.config_path))
            assert run.returncode == ExitCode.BUSY, (command, run.stdout + run.stderr)
            assert f"another aidepy run (pid {holder.pid}) holds" in run.stderr
            assert is_mountpoint(site.mountpoint), command
        assert site.baseline() == before
    finally:
        holder.communicate("")
    aidepy("vault", "umount", "-c", str(site.config_path))


def test_what_aidepy_writes_is_for_root_only(promoted: VaultSite) -> None:
    site = promoted
    daily_report(site)
    written = [site.state_dir / name for name in ("aidepy.db.new", "last-report.txt", "aidepy.lock",
                                                  "generations.seen")]
    assert aidepy("vault", "mount", "-c", str(site.config_path)).returncode == 0
    try:
        written += [site.mountpoint / "aidepy.db", site.mountpoint / "aidepy.conf"]
        modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in written}
    finally:
        aidepy("vault", "umount", "-c", str(site.config_path))
    assert modes == {str(p): 0o600 for p in written}


def test_a_sendmail_that_hangs_or_fails_still_leaves_the_report(promoted: VaultSite) -> None:
    site = promoted
    hang = site.root / "hanging-sendmail"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    run = aidepy("report", "-c", str(site.config_path), "-A", f"sendmail={hang}", "-A", "sendmail_timeout=1")
    assert run.returncode == 0, run.stderr  # the check's own code: nothing changed
    assert "MAIL NOT SENT" in run.stderr and "did not finish within 1 s" in run.stderr
    assert f"it is kept in {site.state_dir}/last-report.txt" in run.stderr
    assert run.stdout == (site.state_dir / "last-report.txt").read_text()
    fail = site.root / "failing-sendmail"
    fail.write_text("#!/bin/sh\necho 'queue full' >&2\nexit 75\n")
    fail.chmod(0o755)
    run = aidepy("report", "-c", str(site.config_path), "-A", f"sendmail={fail}")
    assert run.returncode == 0, run.stderr
    assert "MAIL NOT SENT" in run.stderr and "exited with 75: queue full" in run.stderr
    assert run.stdout == (site.state_dir / "last-report.txt").read_text()


def test_sendmail_timeout_is_validated(promoted: VaultSite) -> None:
    run = aidepy("report", "-c", str(promoted.config_path), "-A", "sendmail_timeout=soon")
    assert run.returncode == ExitCode.INVALID_CONFIG
    assert "invalid number of seconds: 'soon'" in run.stderr
