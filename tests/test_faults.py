"""Faults: promote killed (SIGKILL) at each of its steps, a full vault, a full state directory,
the medium pulled out in the middle of a write. Afterwards the vault always holds a baseline
that verifies (the old one or the new one), and the next run says what happened.

A vault write killed while streaming, before its fsync and before or after its rename is in
`test_vault.py`; here are the steps around it. promote runs in a child process on a pty
(pexpect); a hook in the child pauses it at a named point of a vault write (fsync of a temp
file on the vault, or right after a rename onto the vault) until the test kills it or lets it
go on.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pexpect
import pytest
from conftest import (
    ACCEPT,
    AIDEPY,
    COMMENT,
    PASSPHRASE,
    REMOVE,
    RESTORE,
    Admin,
    VaultSite,
    fill,
    promote_in_process,
    require_tool,
    requires_root,
    to_writable,
    vault_filler,
)

from aidepy.config import evaluate as config
from aidepy.errors import DatabaseWriteError
from aidepy.jobs.console import Console
from aidepy.jobs.promote import Promotion

pytestmark = requires_root

LEFT_BY_PROMOTE = "was left by an interrupted promote"

PROMOTE = r"""
import os, sys
from aidepy.cli import main
conf, mountpoint, point = sys.argv[1:4]
real_fsync, real_replace = os.fsync, os.replace

def pause(label):
    if label == point:
        print(f"PAUSED {label}", flush=True)
        sys.stdin.readline()  # the test kills us here, or pulls the medium and lets us go on

def fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if name.startswith(mountpoint + "/."):
        pause("writing " + os.path.basename(name))
    real_fsync(fd)

def replace(src, dst):
    real_replace(src, dst)
    if str(dst).startswith(mountpoint + "/"):
        pause("renamed " + os.path.basename(dst))

os.fsync, os.replace = fsync, replace
sys.exit(main(["promote", "-c", conf]))
"""


def spawn_promote(site: VaultSite, point: str = "") -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "PAGER": "cat"}
    return pexpect.spawn(sys.executable, ["-c", PROMOTE, str(site.config_path),
                                          os.path.realpath(site.mountpoint), point],
                         env=env, encoding="utf-8", timeout=60, dimensions=(200, 120))


def kill(child: pexpect.spawn) -> None:
    child.kill(signal.SIGKILL)
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus == signal.SIGKILL


def aidepy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIDEPY, *args], capture_output=True, text=True,
                          timeout=120)


def report(site: VaultSite) -> subprocess.CompletedProcess[str]:
    """The next daily run, its mail going to a sink beside the site (site.root / "mail")."""
    sink = site.root / "sendmail"
    if not sink.exists():
        sink.write_text(f"#!/bin/sh\ncat > {site.root}/mail\n")
        sink.chmod(0o755)
    return aidepy("report", "-c", str(site.config_path), "-A", f"sendmail={sink}")


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    """A vault holding generation 1, write-protected, unmounted."""
    assert promote_in_process(vault_site)[0] == 1
    vault_site.loop.set_read_only(True)
    subprocess.run([require_tool("umount"), str(vault_site.mountpoint)], check=True)
    return vault_site


LEFT_ON_VAULT = "on the vault was left by an interrupted write"
# step: (where promote is killed, the generation the vault holds then, what the next report says)
STEPS = {
    "after-scan": (ACCEPT, 1, []),
    "after-accept": (PASSPHRASE, 1, []),
    "at-the-comment": (COMMENT, 1, []),
    "while-waiting-for-writability": (REMOVE, 1, []),
    "mid-log-write": ("writing .approvals.log.tmp", 1,
                      ["mounted read-write", f".approvals.log.tmp {LEFT_ON_VAULT}"]),
    "log-renamed": ("renamed approvals.log", 1,
                    ["mounted read-write", "generation 2 was approved but its baseline never installed"]),
    "mid-database-write": ("writing .aidepy.db.tmp", 1,
                           ["mounted read-write", f".aidepy.db.tmp {LEFT_ON_VAULT}"]),
    "database-renamed": ("renamed aidepy.db", 2, ["mounted read-write"]),
    "mid-rules-copy": ("writing .aidepy.conf.tmp", 2,
                       ["mounted read-write", f".aidepy.conf.tmp {LEFT_ON_VAULT}"]),
    "while-waiting-for-protection": (RESTORE, 2, ["the vault is not write-protected"]),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_promote_killed_leaves_a_baseline_that_verifies(promoted: VaultSite, step: str) -> None:
    site = promoted
    where, generation, notes = STEPS[step]
    hooked = where.startswith(("writing ", "renamed "))
    child = spawn_promote(site, where if hooked else "")
    if hooked:
        to_writable(child, site)
        child.expect(f"PAUSED {where}")
    else:
        admin: list[tuple[str, Callable[[], object] | None]] = [
            (ACCEPT, lambda: child.sendline("y")),
            (PASSPHRASE, lambda: child.sendline(site.passphrase or "")),
            (COMMENT, lambda: child.sendline("")),
            (REMOVE, lambda: site.loop.set_read_only(False)), (RESTORE, None)]
        for prompt, action in admin:
            child.expect(prompt)
            if prompt == where or action is None:
                break
            action()
    kill(child)

    assert site.baseline()[0] == generation
    log = aidepy("log", "--json", "-c", str(site.config_path))  # baseline and log consistent
    assert log.returncode == 0 and json.loads(log.stdout)["verified"], log.stdout + log.stderr
    daily = report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert f"(generation {generation}," in daily.stdout
    for note in [*notes, LEFT_BY_PROMOTE]:
        assert note in daily.stdout
    if any("interrupted write" in n for n in notes):
        status = aidepy("vault", "status", "-c", str(site.config_path))
        assert "left by an interrupted write" in status.stdout

    # The admin promotes again: it cleans up after the killed run and moves on.
    again, out = promote_in_process(site)
    assert again == generation + 1
    assert "left by an interrupted promote" in out
    log = aidepy("log", "--json", "-c", str(site.config_path))
    assert log.returncode == 0, log.stderr
    assert json.loads(log.stdout)["records"][-1]["generation"] == again
    assert site.baseline()[0] == generation + 1
    assert not list(site.mountpoint.glob(".*.tmp")) and not list(site.state_dir.glob("promote-*"))


def test_medium_pulled_mid_write_keeps_the_old_baseline(promoted: VaultSite) -> None:
    """The admin pulls the medium while the database is being written: the loop device goes
    (`losetup -d`, done once nothing holds it) and its mount with it (`umount -l`)."""
    site = promoted
    losetup = require_tool("losetup")
    child = spawn_promote(site, "writing .aidepy.db.tmp")
    to_writable(child, site)
    child.expect("PAUSED writing .aidepy.db.tmp")
    subprocess.run([losetup, "-d", site.loop.device], check=True)
    subprocess.run([require_tool("umount"), "-l", str(site.mountpoint)], check=True)
    child.sendline("")  # promote goes on, with the medium gone
    child.expect(pexpect.EOF)
    out = child.before
    child.close()
    assert child.exitstatus not in (0, None) and "Traceback" not in out, out
    assert "the vault keeps its old baseline (generation 1)" in out
    assert "only the approval log's record (generation 2, approved, not installed;" in out
    assert "the vault went away while aidepy.db was written (medium removed?)" in out
    deadline = time.monotonic() + 30
    while site.loop.backed_by_image() and time.monotonic() < deadline:
        time.sleep(0.1)  # the kernel detaches the device once the filesystem lets go of it
    assert not site.loop.backed_by_image()

    missing = report(site)
    assert missing.returncode == 21, missing.stdout + missing.stderr
    assert "NO CHECK WAS DONE TODAY" in missing.stdout and "ALERT" in (site.root / "mail").read_text()
    assert aidepy("vault", "status", "-c", str(site.config_path)).returncode != 0

    # The medium comes back (as whatever loop device is free): the old baseline verifies.
    back = subprocess.run([losetup, "-f", "--show", site.loop.image], check=True, capture_output=True,
                          text=True).stdout.strip()
    site.loop.device = back  # so the fixture detaches it
    site.write_config(device=back)
    assert site.baseline()[0] == 1
    status = json.loads(aidepy("vault", "status", "--json", "-c", str(site.config_path)).stdout)
    assert status["database"]["verified"] and status["database"]["generation"] == 1
    daily = report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert "(generation 1," in daily.stdout


def test_a_full_vault_keeps_the_old_baseline(promoted: VaultSite) -> None:
    site = promoted
    site.loop.set_read_only(False)
    vault_filler(site, 0)
    (site.tree / "new").write_text("new\n")
    with pytest.raises(DatabaseWriteError, match="does not fit on the vault"):
        promote_in_process(site)
    assert site.baseline()[0] == 1
    status = json.loads(aidepy("vault", "status", "--json", "-c", str(site.config_path)).stdout)
    assert status["database"]["generation"] == 1 and status["database"]["verified"]
    assert not [p for p in status["problems"] if "interrupted" in p]


def test_anchored_baseline_survives_promote_killed_while_writing_the_new_anchor(promoted: VaultSite) -> None:
    """A database too big for the vault stays under state_dir, pinned by a signed anchor on the
    vault. The copy the old anchor pins must never be overwritten before the new anchor is in."""
    site = promoted
    site.loop.set_read_only(False)
    vault_filler(site, 6 * 1024)
    for i in range(300):  # a database that needs more than the 6 KiB left
        (site.tree / f"file{i:03d}").write_text(f"{i}\n")
    generation, out = promote_in_process(site)
    assert generation == 2 and "signed anchor on the vault" in out
    assert site.baseline()[0] == 2
    (site.tree / "file000").write_text("changed\n")
    site.loop.set_read_only(True)
    child = spawn_promote(site, "writing .aidepy.anchor.tmp")
    to_writable(child, site)
    child.expect("PAUSED writing .aidepy.anchor.tmp")
    kill(child)
    assert site.baseline()[0] == 2
    daily = report(site)
    assert daily.returncode == 4, daily.stdout + daily.stderr  # file000 changed since generation 2
    assert ".aidepy.anchor.tmp on the vault was left by an interrupted write" in daily.stdout
    generation, _ = promote_in_process(site)
    assert generation == 3 and site.baseline()[0] == 3
    assert [p.name for p in site.state_dir.glob("aidepy.*.db")] == ["aidepy.3.db"]


@pytest.mark.parametrize("point", ["writing .approvals.anchor.tmp", "renamed approvals.anchor"])
def test_anchored_approval_log_survives_promote_killed_around_its_anchor(promoted: VaultSite,
                                                                        point: str) -> None:
    """A log too big for the vault stays under state_dir, pinned by its own signed anchor: killed
    before the new anchor is in place, the old anchor still pins the old copy; after, the new one."""
    site = promoted
    site.loop.set_read_only(False)
    vault_filler(site, 6 * 1024)
    for i in range(300):  # 300 accepted paths: a log larger than the 6 KiB left
        (site.tree / f"file{i:03d}").write_text(f"{i}\n")
    generation, out = promote_in_process(site)
    assert generation == 2 and "Anchored: the approval log (" in out
    (site.tree / "file000").write_text("changed\n")
    site.loop.set_read_only(True)
    child = spawn_promote(site, point)
    to_writable(child, site)
    child.expect(f"PAUSED {point}")
    kill(child)
    log = aidepy("log", "--json", "-c", str(site.config_path))
    assert log.returncode == 0, log.stdout + log.stderr
    records = json.loads(log.stdout)["records"]
    assert [r["generation"] for r in records] == ([1, 2] if point.startswith("writing") else [1, 2, 3])
    daily = report(site)
    assert "APPROVAL LOG BROKEN" not in daily.stdout and "Last approval: generation" in daily.stdout
    assert promote_in_process(site)[0] == 3
    assert [p.name for p in site.state_dir.glob("approvals.*.log")] == [
        "approvals.3.log" if point.startswith("writing") else "approvals.4.log"]


def test_switch_to_the_anchored_layout_killed_before_the_old_database_is_removed(
    promoted: VaultSite,
) -> None:
    """The new anchor is on the vault beside the old aidepy.db: the newer generation wins."""
    site = promoted
    site.loop.set_read_only(False)
    vault_filler(site, 6 * 1024)
    for i in range(300):
        (site.tree / f"file{i:03d}").write_text(f"{i}\n")
    site.loop.set_read_only(True)
    child = spawn_promote(site, "renamed aidepy.anchor")
    to_writable(child, site)
    child.expect("PAUSED renamed aidepy.anchor")
    kill(child)
    assert (site.mountpoint / "aidepy.db").exists() and (site.mountpoint / "aidepy.anchor").exists()
    assert site.baseline()[0] == 2
    daily = report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert "(generation 2," in daily.stdout and LEFT_BY_PROMOTE in daily.stdout


REPORT = r"""
import os, sys
from aidepy.cli import main
conf, state_dir = sys.argv[1:3]
real_fsync = os.fsync

def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{state_dir}/.aidepy.db.new."):
        print("PAUSED", flush=True)
        sys.stdin.readline()
    real_fsync(fd)

os.fsync = fsync
sys.exit(main(["report", "-c", conf]))
"""


def test_report_killed_mid_write_is_cleaned_up_by_the_next_run(promoted: VaultSite) -> None:
    site = promoted
    child = pexpect.spawn(sys.executable, ["-c", REPORT, str(site.config_path),
                                           os.path.realpath(site.state_dir)], encoding="utf-8", timeout=60)
    child.expect("PAUSED")
    kill(child)
    [stale] = site.state_dir.glob(".aidepy.db.new.*.tmp")
    daily = report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert f"removed {stale.name}, left in {site.state_dir} by an interrupted run" in daily.stdout
    assert not list(site.state_dir.glob(".aidepy.db.new.*.tmp"))
    assert site.baseline()[0] == 1


@pytest.fixture
def small_state_dir(vault_site: VaultSite) -> Iterator[VaultSite]:
    """The site's state_dir on a 256 KiB tmpfs (unmounted afterwards)."""
    site = vault_site
    site.state_dir.mkdir(exist_ok=True)
    subprocess.run([require_tool("mount"), "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs",
                    str(site.state_dir)], check=True)
    try:
        yield site
    finally:
        subprocess.run([require_tool("umount"), "-l", str(site.state_dir)], check=False)


def test_a_full_state_dir_still_mails_the_report(small_state_dir: VaultSite) -> None:
    site = small_state_dir
    assert promote_in_process(site)[0] == 1
    assert report(site).returncode == 0
    fill(site.state_dir)
    daily = report(site)
    assert daily.returncode == 14, daily.stdout + daily.stderr
    assert "No space left on device" in daily.stdout
    assert "THE NEW DATABASE COULD NOT BE WRITTEN" in daily.stdout
    assert "the report could not be saved" in daily.stderr
    mail = (site.root / "mail").read_text()
    assert "CANNOT WRITE THE NEW DATABASE" in mail and "the report could not be saved" in mail


def test_a_full_state_dir_stops_promote_before_the_vault_is_touched(small_state_dir: VaultSite) -> None:
    site = small_state_dir
    assert promote_in_process(site)[0] == 1
    site.loop.set_read_only(True)
    fill(site.state_dir)
    admin = Admin()
    with pytest.raises(DatabaseWriteError, match="No space left on device"):
        Promotion(config.load(site.config_path), Console(io.StringIO("y\ncorrect horse\n"), admin),
                  poll=0.05, patience=60).run()
    assert "nothing was written; the vault keeps its old baseline" in admin.getvalue()
    assert REMOVE not in admin.getvalue()
    assert site.baseline()[0] == 1 and not list(site.state_dir.glob("promote-*"))
