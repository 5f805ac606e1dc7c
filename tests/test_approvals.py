"""The approval log: every promote appends a signed record chained to the one before; `aidepy
log` verifies and prints it; the daily report names the last approval and raises an alarm when
the log is broken. Records are checked with real Ed25519 keys; promote, the log command and the
daily report run on a loop-device vault."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from conftest import (
    VaultSite,
    aidepy,
    backdate,
    daily_report,
    promote_in_process,
    requires_root,
    rewrite_vault,
    sent_mail,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aidepy.errors import ApprovalLogError, ExitCode
from aidepy.keys import fingerprint
from aidepy.report.escape import escape_path
from aidepy.vault import approvals
from aidepy.vault.approvals import MAGIC, Approval, ApprovedPath

VAULT_KEY = Ed25519PrivateKey.generate()
ODD = b"/etc/caf\xc3\xa9 \\x41\n\xff\x1b[2J"
"""A file name that is no UTF-8, with a newline, a backslash and an escape sequence."""


def approval(generation: int, comment: str | None = None, key: Ed25519PrivateKey = VAULT_KEY) -> Approval:
    paths = (ApprovedPath(ODD, None, "ab" * 32), ApprovedPath(b"/etc/passwd", "cd" * 32, "ef" * 32))
    return Approval(generation, "2026-12-05T07:33:05Z", "root", "/dev/tty1", 2, 1, paths, comment,
                    fingerprint(key.public_key()))


def chain(*generations: int) -> bytes:
    log = b""
    for generation in generations:
        log = approvals.append(log, approval(generation, f"promote {generation}"), VAULT_KEY)
    return log


def records(log: bytes) -> list[bytes]:
    return log[len(MAGIC):].splitlines(keepends=True)


def refused(log: bytes) -> str:
    with pytest.raises(ApprovalLogError) as caught:
        approvals.verify(log, VAULT_KEY.public_key())
    assert caught.value.exit_code == ExitCode.VERIFICATION_FAILED
    return str(caught.value)


def test_a_chain_of_records_verifies_and_odd_file_names_round_trip() -> None:
    found = approvals.verify(chain(1, 2, 3), VAULT_KEY.public_key())
    assert [r.generation for r in found] == [1, 2, 3]
    assert found[0].previous is None and found[1].previous and found[2].previous
    assert found[2].paths[0].path == ODD and found[2].comment == "promote 3"
    assert found[2].describe() == ("generation 3, 2026-12-05T07:33:05Z by root on /dev/tty1: 2 accepted, "
                                   "1 kept — promote 3")
    shown = found[0].text().splitlines()
    assert len(shown) == 8 and shown[6].endswith(escape_path(ODD))  # six lines, then one per path
    assert chain(1, 2, 3).isascii()


def test_a_comment_never_reaches_a_terminal_or_a_mail_raw() -> None:
    [found] = approvals.verify(approvals.append(b"", approval(1, "ok\nSubject: x\x1b[2J"), VAULT_KEY),
                               VAULT_KEY.public_key())
    assert found.comment == "ok\nSubject: x\x1b[2J"  # kept as typed, shown escaped
    assert found.describe().endswith("— ok\\012Subject: x\\033[2J")
    assert "comment   ok\\012Subject" in found.text()


def test_an_edited_record_is_refused() -> None:
    log = chain(1, 2, 3)
    edited = log.replace(b"promote 2", b"promote X")
    assert "record 2 (generation 2) has a bad signature" in refused(edited)


def test_reordered_records_are_refused() -> None:
    first, second, third = records(chain(1, 2, 3))
    assert "chain is broken at record 2 (generation 3)" in refused(MAGIC + first + third + second)


def test_a_deleted_middle_record_is_refused() -> None:
    first, _, third = records(chain(1, 2, 3))
    assert "chain is broken at record 2 (generation 3): it does not follow record 1" in refused(
        MAGIC + first + third)


def test_a_truncated_last_record_is_refused() -> None:
    log = chain(1, 2)
    assert "last record (record 2) is truncated" in refused(log[:-40])
    assert "it is empty (truncated)" in refused(b"")


def test_a_record_signed_with_a_foreign_key_is_refused() -> None:
    intruder = Ed25519PrivateKey.generate()
    log = approvals.append(chain(1), approval(2, key=intruder), intruder)
    reason = refused(log)
    assert (f"record 2 (generation 2) is signed by key {fingerprint(intruder.public_key())}, not the vault's "
            f"key {fingerprint(VAULT_KEY.public_key())}") in reason
    claimed = approvals.append(chain(1), replace(approval(2), comment="claims the vault's key"), intruder)
    assert "record 2 (generation 2) has a bad signature" in refused(claimed)


def test_generations_going_backwards_are_refused_and_a_repeated_one_is_not() -> None:
    assert "generations go backwards at record 3 (generation 2): it follows generation 3" in refused(
        chain(1, 3, 2))
    # promote stopped after its record: the next promote approves that generation again
    assert [r.generation for r in approvals.verify(chain(1, 2, 2), VAULT_KEY.public_key())] == [1, 2, 2]


# -- on a loop-device vault ----------------------------------------------------------------------


def log_json(site: VaultSite) -> Any:
    run = aidepy("log", "--json", "-c", str(site.config_path))
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


@requires_root
def test_a_chain_of_promotes_verifies_and_names_what_each_accepted(vault_site: VaultSite) -> None:
    site = vault_site
    motd = str(site.tree / "motd")
    assert promote_in_process(site, comment="first baseline")[0] == 1
    (site.tree / "motd").write_text("changed once\n")  # the directory stays as it was
    assert promote_in_process(site, comment="motd edited")[0] == 2
    (site.tree / "motd").write_text("changed twice\n")
    (site.tree / "new").write_text("new\n")
    backdate(site.tree)  # the directory changed too, whatever second it is
    assert promote_in_process(site)[0] == 3

    log = log_json(site)
    assert log["verified"] is True and log["anchored"] is None and log["note"] is None
    first, second, third = log["records"]
    assert [r["generation"] for r in (first, second, third)] == [1, 2, 3]
    assert (first["accepted"], second["accepted"], third["kept"]) == (3, 1, 0)
    assert third["accepted"] == 3  # the directory, motd and new
    assert [p["path"] for p in second["paths"]] == [motd]
    assert second["comment"] == "motd edited" and third["comment"] is None
    # each accepted change starts from the record the previous promote accepted
    accepted = {p["path"]: p for p in third["paths"]}
    assert accepted[motd]["old"] == second["paths"][0]["new"]
    assert accepted[str(site.tree / "new")]["old"] is None
    text = aidepy("log", "-c", str(site.config_path))
    assert text.returncode == 0 and "Verified: 3 records (on the vault)" in text.stdout
    assert text.stdout.count("Approval: generation ") == 3 and "comment   motd edited" in text.stdout


@requires_root
def test_the_daily_report_names_the_last_approval(vault_site: VaultSite) -> None:
    site = vault_site
    promote_in_process(site, comment="routine update")
    daily = daily_report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    assert re.search(r"Last approval: generation 1, \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ by \S+ on no terminal: "
                     r"3 accepted, 0 kept — routine update", daily.stdout), daily.stdout
    assert "ALERT" not in str(sent_mail(site)["Subject"])


@requires_root
def test_an_edited_log_on_the_vault_is_an_alarm_and_stops_promote(vault_site: VaultSite) -> None:
    site = vault_site
    promote_in_process(site, comment="routine update")
    rewrite_vault(site, "sed -i 's/routine/ROUTINE/' approvals.log")
    log = aidepy("log", "-c", str(site.config_path))
    assert log.returncode == ExitCode.VERIFICATION_FAILED
    assert "record 1 (generation 1) has a bad signature" in log.stderr
    daily = daily_report(site)
    assert daily.returncode == 0, daily.stdout + daily.stderr  # the check itself was done
    assert "ALERT APPROVAL LOG BROKEN: the approval log's record 1" in daily.stdout
    assert "ALERT: APPROVAL LOG BROKEN" in str(sent_mail(site)["Subject"])
    before = site.baseline()
    with pytest.raises(ApprovalLogError, match="promote does not append to a broken approval log"):
        promote_in_process(site)
    assert site.baseline() == before


@requires_root
def test_a_log_that_outgrows_the_vault_is_anchored_and_its_disk_copy_checked(
        anchored_site: VaultSite) -> None:
    site = anchored_site  # 600 files accepted: a log far larger than the 12 KiB left on the vault
    assert not (site.mountpoint / "approvals.log").exists()
    assert (site.mountpoint / "approvals.anchor").exists()
    log = log_json(site)
    assert log["anchored"] == str((site.state_dir / "approvals.1.log").resolve())
    (site.tree / "file000").write_text("changed\n")
    assert promote_in_process(site, comment="second")[0] == 2
    assert sorted(p.name for p in site.state_dir.glob("approvals.*.log")) == ["approvals.2.log"]
    assert [r["comment"] for r in log_json(site)["records"]] == [None, "second"]

    copy = site.state_dir / "approvals.2.log"  # root on the host rewrites the disk copy
    copy.write_bytes(copy.read_bytes().replace(b'"second"', b'"SECOND"'))
    broken = aidepy("log", "-c", str(site.config_path))
    assert broken.returncode == ExitCode.VERIFICATION_FAILED
    assert f"the approval log kept in {copy.resolve()} does not match the vault's anchor" in broken.stderr
    daily = daily_report(site)
    assert "ALERT: APPROVAL LOG BROKEN" in str(sent_mail(site)["Subject"]), daily.stdout
