"""`aidepy report`, the daily job, end to end: vault on a loop device, real scanner, real MTA.

The mails are delivered by Debian's exim4 into /var/mail/root (see the `root_mailbox` fixture).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import io
import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import AIDEPY, RESTORE, Admin, RootMailbox, VaultSite, aidepy, backdate

from aidepy.config import evaluate as config
from aidepy.jobs.console import Console
from aidepy.jobs.promote import Promotion
from aidepy.state import NEW_DATABASE

HOST = socket.gethostname()


def promote_tree(site: VaultSite) -> None:
    """Promote a baseline of the site's tree with the real scanner, then protect the vault."""
    backdate(site.tree)  # so that the tests' changes to it show in its mtime
    site.loop.set_read_only(False)
    admin = Admin().on(RESTORE, lambda: site.loop.set_read_only(True))
    Promotion(config.load(site.config_path), Console(io.StringIO("y\ncorrect horse\n"), admin),
              poll=0.05, patience=60).run()


@pytest.fixture
def baselined(vault_site: VaultSite) -> VaultSite:
    """A protected vault holding a verified baseline of the site's tree."""
    promote_tree(vault_site)
    return vault_site


def test_clean_run_mails_no_changes(baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    run = aidepy("report", "-c", str(baselined.config_path))
    assert run.returncode == 0, run.stderr
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"] == f"aidepy: {HOST}: no changes"
    body = mail.get_content()
    assert "signature verified with the vault's key SHA256:" in body
    assert "AIDE found NO differences" in body
    assert (baselined.state_dir / NEW_DATABASE).is_file()
    assert (baselined.state_dir / "last-report.txt").read_text() == run.stdout


def test_run_with_changes_mails_the_counts(baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    (baselined.tree / "motd").write_text("a different welcome\n")
    (baselined.tree / "backdoor").write_text("#!/bin/sh\n")
    run = aidepy("report", "-c", str(baselined.config_path))
    assert run.returncode == 1 | 4, run.stderr  # added and changed
    [mail] = root_mailbox.wait_for(1)
    # The tree's directory changed too (its mtime): 2 changed; all three are new today.
    assert mail["Subject"] == f"aidepy: {HOST}: 2 changed, 1 added; 3 new, 3 pending"
    assert f"{baselined.tree}/backdoor" in mail.get_content()


def test_the_next_report_marks_what_is_new_and_still_lists_everything(
        baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    site = baselined
    (site.tree / "motd").write_text("a different welcome\n")
    (site.tree / "backdoor").write_text("#!/bin/sh\n")
    aidepy("report", "-c", str(site.config_path))
    aidepy("report", "-c", str(site.config_path))
    (site.tree / "backdoor").write_text("#!/bin/sh\nexec nc -l 4444\n")  # changed once more
    aidepy("report", "-c", str(site.config_path))
    _, second, third = root_mailbox.wait_for(3)
    assert second["Subject"] == f"aidepy: {HOST}: 2 changed, 1 added; 0 new, 3 pending"
    assert third["Subject"] == f"aidepy: {HOST}: 2 changed, 1 added; 1 new, 3 pending"
    body = third.get_content()
    new = body.split("New since the last report:\n", 1)[1].split("\n\n", 2)[1]
    assert new.splitlines() == [f"f+++++++++++++++++: {site.tree}/backdoor"]
    # the pending changes are all listed, new or not
    assert f": {site.tree}/motd" in body and "New since the last report: 1 new, 3 pending" in body
    # a lost record can only make changes look new, never hide one
    (site.state_dir / "report.seen").unlink()
    aidepy("report", "-c", str(site.config_path))
    assert root_mailbox.wait_for(4)[3]["Subject"].endswith("; 3 new, 3 pending")


def test_report_checks_with_the_vaults_rules_not_the_tampered_live_ones(
        baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    (baselined.tree / "passwd").write_text("root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    live = baselined.config_path.read_text()
    baselined.config_path.write_text(f"!{baselined.tree}/passwd$\n{live}")  # the attacker hides it
    run = aidepy("report", "-c", str(baselined.config_path))
    assert run.returncode & 4, run.stdout + run.stderr
    assert f"{baselined.tree}/passwd" in run.stdout
    assert "Rules: the copy on the vault" in run.stdout
    assert f"{baselined.config_path} differs from the copy on the vault" in run.stdout
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"].strip() == \
        f"aidepy: {HOST}: ALERT: RULES DIFFER FROM THE VAULT'S COPY; 1 changed; 1 new, 1 pending"


def test_report_from_the_hosts_copy_warns_that_the_host_can_change_it(
        baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    run = aidepy("report", "-c", str(baselined.config_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ("WARNING: runtime: this report comes from the host's aidepy, which the host can change; "
            f"run {baselined.mountpoint}/bin/aidepy") in run.stdout
    root_mailbox.wait_for(1)


def test_report_says_that_root_can_lift_a_loop_devices_write_protection(
        baselined: VaultSite, root_mailbox: RootMailbox) -> None:
    run = aidepy("report", "-c", str(baselined.config_path))
    assert ("Note: the vault is write-protected (software: root can undo this): the device is read-only "
            "(sysfs ro=1).") in run.stdout
    root_mailbox.wait_for(1)


def test_baseline_failing_verification_is_mailed_loudly(baselined: VaultSite,
                                                        root_mailbox: RootMailbox) -> None:
    baselined.loop.set_read_only(False)
    subprocess.run(["mount", "-o", "remount,rw", str(baselined.mountpoint)], check=True)
    database = baselined.mountpoint / "aidepy.db"
    data = bytearray(database.read_bytes())
    data[len(data) // 2] ^= 0xFF  # an attacker's edit
    database.write_bytes(bytes(data))
    subprocess.run(["mount", "-o", "remount,ro", str(baselined.mountpoint)], check=True)
    run = aidepy("report", "-c", str(baselined.config_path))
    assert run.returncode == 20, run.stderr
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"] == f"aidepy: {HOST}: ALERT: BASELINE FAILED VERIFICATION, NO CHECK DONE"
    assert mail["Importance"] == "high"
    assert "NO CHECK WAS DONE TODAY" in mail.get_content()
    assert not (baselined.state_dir / NEW_DATABASE).exists(), "scanned although the baseline failed"


def mail_sink(tmp_path: Path) -> Path:
    """A `sendmail` that keeps the last message in tmp_path/mail."""
    sink = tmp_path / "sendmail"
    sink.write_text(f"#!/bin/sh\n[ \"$*\" = '-t -oi' ] || exit 64\ncat > {tmp_path}/mail\n")
    sink.chmod(0o755)
    return sink


def sunk_mail(tmp_path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes((tmp_path / "mail").read_bytes(), policy=email.policy.default,
                                    _class=email.message.EmailMessage)


def test_a_long_report_is_cut_in_the_mail_at_report_mail_limit_and_kept_whole(
        baselined: VaultSite, tmp_path: Path) -> None:
    for i in range(80):
        (baselined.tree / f"dropped-{i:02}").write_text("x\n")
    run = aidepy("report", "-c", str(baselined.config_path), "-A", f"sendmail={mail_sink(tmp_path)}",
                 "-A", "report_mail_limit=2K")
    assert run.returncode == 1 | 4, run.stderr
    body = sunk_mail(tmp_path).get_content()
    assert len(body) < 2048 + 300 and "[aidepy: report cut here:" in body
    assert f"the full report is in {baselined.state_dir}/last-report.txt" in body
    kept = (baselined.state_dir / "last-report.txt").read_text()
    assert all(f"{baselined.tree}/dropped-{i:02}" in kept for i in range(80))


def test_older_generation_is_refused_as_a_rollback(baselined: VaultSite, tmp_path: Path) -> None:
    old = (baselined.mountpoint / "aidepy.db").read_bytes()  # generation 1, validly signed
    promote_tree(baselined)  # generation 2
    conf = ["-c", str(baselined.config_path), "-A", f"sendmail={mail_sink(tmp_path)}"]
    run = aidepy("report", *conf, "--mail", "admin@example.org")
    assert run.returncode == 0, run.stderr  # this host has now verified generation 2
    assert sunk_mail(tmp_path)["To"] == "admin@example.org"
    baselined.loop.set_read_only(False)
    subprocess.run(["mount", "-o", "remount,rw", str(baselined.mountpoint)], check=True)
    (baselined.mountpoint / "aidepy.db").write_bytes(old)
    subprocess.run(["mount", "-o", "remount,ro", str(baselined.mountpoint)], check=True)
    run = aidepy("report", *conf)
    assert run.returncode == 20, run.stderr
    mail = sunk_mail(tmp_path)
    assert mail["To"] == "root"
    assert "rollback: the baseline is generation 1, but this host has already verified generation 2" \
        in mail.get_content()


def test_overlapping_runs_never_scan_side_by_side(baselined: VaultSite, tmp_path: Path) -> None:
    """The first run is held inside its mail delivery (a sendmail that waits on a fifo); the
    second gives up with a clear message, does not scan, and mails an ALERT naming the holder."""
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    sink = tmp_path / "sendmail"
    sink.write_text(f"#!/bin/sh\ncat >> {tmp_path}/mails\necho delivering > {tmp_path}/started\n"
                    f"read line < {fifo}\n")
    sink.chmod(0o755)
    conf = ["-c", str(baselined.config_path), "-A", f"sendmail={sink}"]
    first = subprocess.Popen([*AIDEPY, "report", *conf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        started = tmp_path / "started"
        while not started.exists():
            assert first.poll() is None, first.communicate()[1]
            os.sched_yield()
        new_db = baselined.state_dir / NEW_DATABASE
        scanned = new_db.stat()
        (tmp_path / "second").mkdir()
        second = aidepy("report", *conf, "-A", f"sendmail={mail_sink(tmp_path / 'second')}", "--wait", "0")
        assert second.returncode == 22
        assert f"another aidepy run (pid {first.pid}) holds" in second.stderr
        alarm = sunk_mail(tmp_path / "second")
        assert alarm["Subject"] == f"aidepy: {HOST}: ALERT: ANOTHER RUN HOLDS THE LOCK, NO CHECK DONE"
        assert f"pid {first.pid}" in alarm.get_content() and "NO CHECK WAS DONE" in second.stdout
        assert new_db.stat().st_ino == scanned.st_ino and new_db.stat().st_mtime_ns == scanned.st_mtime_ns
    finally:
        with open(fifo, "w") as f:
            f.write("go\n")
        first.wait(timeout=60)
    assert first.returncode == 0
    assert (tmp_path / "mails").read_text().count("Subject: ") == 1


def test_missing_vault_is_mailed_as_an_alert(tmp_path: Path) -> None:
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"vault_device={tmp_path}/no-such-medium\nstate_dir={tmp_path}/state\n"
                    f"sendmail={mail_sink(tmp_path)}\n{tmp_path} p\n")
    run = aidepy("report", "-c", str(conf))
    assert run.returncode == 21, run.stderr
    mail = sunk_mail(tmp_path)
    assert mail["Subject"] == f"aidepy: {HOST}: ALERT: BASELINE NOT USABLE, NO CHECK DONE"
    assert "no-such-medium" in mail.get_content()
