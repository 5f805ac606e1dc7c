"""Changes explained by signed packages: a tree with its own dpkg database, packages built with
dpkg-deb, a repository signed by a test key, installed and upgraded by apt-get; the vault keeps
the keyrings promote copied. What the daily report and `check --json` say about each change."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    ACCEPT,
    REVIEW,
    AptTree,
    VaultSite,
    aidepy,
    daily_report,
    promote_in_process,
    requires_root,
    sent_mail,
    sign_and_write,
    spawn_promote,
)

from aidepy.compare import Change, compare
from aidepy.config.evaluate import parse_text
from aidepy.entry import Entry
from aidepy.explain.archive import Member, dearmor
from aidepy.explain.engine import Sources, explain
from aidepy.explain.judge import Ids, Shipped, judge
from aidepy.explain.model import Evidence, Explanation, Kind
from aidepy.jobs.selective import kept_records, with_old_records
from aidepy.scan.walk import scan

HOST = socket.gethostname()
RULE = "p+i+l+n+u+g+s+m+c+sha256"


def site_config(site: VaultSite, tree: AptTree, extra: str = "") -> None:
    """The site's vault and key, the apt tree as root_prefix, its /usr and /etc checked."""
    site.config_path.write_text(
        f"vault_device={site.loop.device}\nvault_label={site.label}\nvault_mountpoint={site.mountpoint}\n"
        f"signing_key={site.key}\nstate_dir={site.state_dir}\nroot_prefix={tree.root}\n{extra}"
        f"/usr {RULE}\n/etc {RULE}\n")


def version_1(tree: AptTree) -> list[Path]:
    a = tree.build("aidepy-test-a", "1.0", {
        "/usr/bin/aidepy-test-a": ("#!/bin/sh\necho one\n", 0o755),
        "/usr/share/aidepy-test-a/data": "old data\n",
        "/usr/share/aidepy-test-a/gone": "only in 1.0\n",
        "/etc/aidepy-test-a/a.conf": "setting=1\n",
    }, conffiles=("/etc/aidepy-test-a/a.conf",), links={"/usr/bin/aidepy-test-a-link": "aidepy-test-a"})
    b = tree.build("aidepy-test-b", "1.0", {"/usr/bin/aidepy-test-b": ("#!/bin/sh\necho b\n", 0o755)})
    return [a, b]


def version_2(tree: AptTree) -> Path:
    return tree.build("aidepy-test-a", "2.0", {
        "/usr/bin/aidepy-test-a": ("#!/bin/sh\necho two\n", 0o755),
        "/usr/share/aidepy-test-a/data": "new data\n",
        "/usr/share/aidepy-test-a/new": "only in 2.0\n",
        "/etc/aidepy-test-a/a.conf": "setting=2\n",
    }, conffiles=("/etc/aidepy-test-a/a.conf",), links={"/usr/bin/aidepy-test-a-link": "aidepy-test-a"})


@pytest.fixture
def upgraded(vault_site: VaultSite, apt_tree: AptTree) -> tuple[VaultSite, AptTree]:
    """Version 1 of two packages installed and promoted; then a upgraded to 2.0 from the signed
    repository, and b's binary changed by hand."""
    site, tree = vault_site, apt_tree
    a1, b1 = version_1(tree)
    tree.publish(a1, b1)
    tree.install("aidepy-test-a", "aidepy-test-b")
    site_config(site, tree)
    assert promote_in_process(site)[0] == 1
    tree.publish(version_2(tree), b1)
    tree.upgrade()
    (tree.root / "usr/bin/aidepy-test-b").write_text("#!/bin/sh\necho trojan\n")
    return site, tree


def explanations(check_json: str) -> dict[str, dict[str, str]]:
    doc = json.loads(check_json)
    return {e["path"]: e["explanation"] for kind in ("added", "removed", "changed") for e in doc[kind]}


@requires_root
def test_daily_report_explains_an_upgrade_and_leaves_the_changed_binary(
        upgraded: tuple[VaultSite, AptTree]) -> None:
    site, _ = upgraded
    run = daily_report(site)
    assert run.returncode & 4, run.stdout + run.stderr
    mail = sent_mail(site)
    body = mail.get_content()
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    archive = {"kind": "package", "package": "aidepy-test-a", "version": "2.0", "evidence": "archive"}
    assert {p for p, e in found.items() if e == archive} == {
        "/usr/bin", "/usr/bin/aidepy-test-a", "/usr/bin/aidepy-test-a-link", "/usr/share/aidepy-test-a",
        "/usr/share/aidepy-test-a/data", "/usr/share/aidepy-test-a/new", "/usr/share/aidepy-test-a/gone",
        "/etc/aidepy-test-a", "/etc/aidepy-test-a/a.conf"}
    unexplained = {p: e for p, e in found.items() if e["kind"] not in ("package", "generated")}
    assert list(unexplained) == ["/usr/bin/aidepy-test-b"]
    assert unexplained["/usr/bin/aidepy-test-b"]["kind"] == "mismatch"
    n = len(found) - 1
    subject = f"aidepy: {HOST}: 1 unexplained, {n} explained (1 package); {n + 1} new, {n + 1} pending"
    assert mail["Subject"].strip() == subject  # a long subject is folded onto a second line
    assert f"Explanations: 1 unexplained, {n} explained (1 package)" in body
    first, explained_part = body.split("Explained by package updates:", 1)
    assert "Unexplained changes:" in first and "/usr/bin/aidepy-test-b" in first
    assert "aidepy-test-b 1.0: differs from what the package ships" in first
    assert f"aidepy-test-a 1.0 → 2.0: {n} entries (evidence archive)" in explained_part
    # the AIDE sections after it list only what is unexplained
    assert "/usr/share/aidepy-test-a/new" not in explained_part.split("Detailed information", 1)[1]


@requires_root
def test_a_removal_rests_on_the_verified_deb_that_drops_it(upgraded: tuple[VaultSite, AptTree]) -> None:
    site, tree = upgraded
    gone = "/usr/share/aidepy-test-a/gone"
    # 2.0's signed .deb ships no `gone`, and 1.0's .deb shipped what the baseline recorded there
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found[gone] == {"kind": "package", "package": "aidepy-test-a", "version": "2.0",
                           "evidence": "archive"}
    # a file the intruder deleted that 2.0 still ships is not the upgrade's doing
    (tree.root / "usr/share/aidepy-test-a/data").unlink()
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found["/usr/share/aidepy-test-a/data"] == {
        "kind": "unexplained", "reason": "removed, but the installed package still ships it"}
    # without 2.0's .deb, only the old .deb (no longer in the signed index) and dpkg's log are left
    (tree.root / "var/cache/apt/archives/aidepy-test-a_2.0_all.deb").unlink()
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found[gone] == {"kind": "package", "package": "aidepy-test-a", "version": "1.0",
                           "evidence": "dpkg"}
    # with no .deb that shipped it at hand, nothing explains the removal
    (tree.root / "var/cache/apt/archives/aidepy-test-a_1.0_all.deb").unlink()
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found[gone]["kind"] == "unexplained"


@requires_root
def test_forged_dpkg_md5sums_never_make_an_archive_explanation(upgraded: tuple[VaultSite, AptTree]) -> None:
    site, tree = upgraded
    binary = tree.root / "usr/bin/aidepy-test-b"
    md5sums = tree.root / "var/lib/dpkg/info/aidepy-test-b.md5sums"
    md5sums.write_text(f"{hashlib.md5(binary.read_bytes()).hexdigest()}  usr/bin/aidepy-test-b\n")
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found["/usr/bin/aidepy-test-b"]["kind"] == "mismatch"  # the signed .deb says otherwise
    # without the .deb at hand, dpkg's word is all there is: shown as evidence dpkg, never archive
    for deb in (tree.root / "var/cache/apt/archives").glob("aidepy-test-b_*.deb"):
        deb.unlink()
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found["/usr/bin/aidepy-test-b"] == {"kind": "package", "package": "aidepy-test-b",
                                               "version": "1.0", "evidence": "dpkg"}
    # package_cache names another directory of .deb files: the signed archive's word is back
    site_config(site, tree, f"package_cache={tree.work / 'pool'}\n")
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found["/usr/bin/aidepy-test-b"]["kind"] == "mismatch"


@requires_root
def test_a_keyring_added_on_the_host_after_promote_is_not_trusted(
        vault_site: VaultSite, apt_tree: AptTree) -> None:
    site, tree = vault_site, apt_tree
    a1, b1 = version_1(tree)
    tree.publish(a1, b1)
    tree.install("aidepy-test-a", "aidepy-test-b")
    site_config(site, tree)
    assert promote_in_process(site)[0] == 1
    # the attacker's own key, trusted by apt on the host from now on, signs a trojaned b 1.1
    tree.gpg("--quick-gen-key", "intruder <intruder@example.org>", "ed25519", "sign", "never")
    (tree.root / "etc/apt/trusted.gpg.d/intruder.gpg").write_bytes(tree.gpg("--export"))
    evil = tree.build("aidepy-test-b", "1.1", {"/usr/bin/aidepy-test-b": ("#!/bin/sh\necho trojan\n", 0o755)})
    tree.publish(a1, evil)
    tree.gpg("--yes", "--local-user", "intruder@example.org", "--clearsign", "-o",
             str(tree.repo / "InRelease"), str(tree.repo / "Release"))
    tree.upgrade()
    check = aidepy("check", "-c", str(site.config_path), "--json")
    found = explanations(check.stdout)
    assert found["/usr/bin/aidepy-test-b"]["evidence"] == "dpkg"  # dpkg's own word only
    assert found["/etc/apt/trusted.gpg.d/intruder.gpg"] == {"kind": "unexplained",
                                                            "reason": "no installed package owns it"}
    report = daily_report(site)
    assert report.returncode & 5, report.stdout + report.stderr
    body = sent_mail(site).get_content()
    assert ("apt keyring /etc/apt/trusted.gpg.d/intruder.gpg is trusted by apt but not on the vault"
            in body)
    assert "aidepy-test-b 1.0 → 1.1: 2 entries (evidence dpkg)" in body
    # promote shows the keyring change before it asks; once accepted, the keyring is the vault's
    generation, shown = promote_in_process(site)
    assert generation == 2
    assert "Note: apt keyring /etc/apt/trusted.gpg.d/intruder.gpg is trusted by apt but not on the vault" \
        in shown.split("Accept these differences")[0]
    (tree.root / "usr/bin/aidepy-test-b").write_text("#!/bin/sh\necho again\n")
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    # compared with the .deb the now trusted key vouches for (a mismatch needs a verified .deb)
    assert found["/usr/bin/aidepy-test-b"]["kind"] == "mismatch"
    assert found["/usr/bin/aidepy-test-b"]["version"] == "1.1"


@requires_root
def test_a_modified_conffile_is_shown_as_such_and_stays_unexplained(
        vault_site: VaultSite, apt_tree: AptTree) -> None:
    site, tree = vault_site, apt_tree
    tree.publish(*version_1(tree))
    tree.install("aidepy-test-a", "aidepy-test-b")
    site_config(site, tree)
    assert promote_in_process(site)[0] == 1
    (tree.root / "etc/aidepy-test-a/a.conf").write_text("setting=local\n")
    check = aidepy("check", "-c", str(site.config_path))
    assert check.returncode == 4, check.stdout + check.stderr
    assert "aidepy-test-a 1.0: modified conffile" in check.stdout
    assert "Explanations: 1 unexplained, 0 explained (0 packages)" in check.stdout
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found == {"/etc/aidepy-test-a/a.conf": {"kind": "mismatch", "package": "aidepy-test-a",
                                                   "version": "1.0", "reason": "modified conffile"}}


@requires_root
def test_explain_changes_no_keeps_the_plain_report(upgraded: tuple[VaultSite, AptTree]) -> None:
    site, tree = upgraded
    site_config(site, tree)
    with_explanations = aidepy("check", "-c", str(site.config_path))
    site_config(site, tree, "explain_changes=no\n")
    plain = aidepy("check", "-c", str(site.config_path))
    assert "Explanations:" in with_explanations.stdout
    assert "Explanations:" not in plain.stdout and "Explained by" not in plain.stdout
    doc = json.loads(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert "explained" not in doc["summary"] and "explanation" not in doc["changed"][0]
    # without explanations AIDE's lists carry every change; with them, only the unexplained
    added = "Added entries:\n---------------------------------------------------\n\n" \
            "f+++++++++++++++++: /usr/share/aidepy-test-a/new"
    assert added in plain.stdout and added not in with_explanations.stdout


# --- the pure judgement -------------------------------------------------------------------------


def _entry(path: bytes, ftype: str = "f", /, **values: object) -> Entry:
    return Entry(path, ftype, frozenset(values), values)  # type: ignore[arg-type]


def _member(content: bytes, mode: int = 0o755, **kw: object) -> Member:
    fields: dict[str, object] = dict(ftype="f", mode=mode, uname="root", gname="root", uid=0, gid=0,
                                     size=len(content), mtime=1_700_000_000, linkname=b"",
                                     digests={"sha256": hashlib.sha256(content).digest(),
                                              "crc32": b"\0\0\0\1"})
    fields.update(kw)
    return Member(**fields)  # type: ignore[arg-type]


IDS = Ids({"root": 0}, {"root": 0})


def _installed(content: bytes, mode: int = 0o100755, **extra: object) -> Entry:
    return _entry(b"/usr/bin/x", p=mode, u=0, g=0, s=len(content), m=1_700_000_000 * 10**9,
                  sha256=hashlib.sha256(content).digest(), **extra)


def test_a_setuid_bit_the_package_does_not_ship_is_a_mismatch() -> None:
    old, new = _installed(b"x"), _installed(b"x", 0o104755)
    change = Change(b"/usr/bin/x", "f", old, new, ("p", "c"))
    owner = Shipped("pkg", "1", _member(b"x"))
    assert judge(change, [owner], IDS).kind is Kind.MISMATCH
    assert judge(Change(b"/usr/bin/x", "f", old, old, ("c",)), [owner], IDS).kind is Kind.PACKAGE


def test_content_is_proven_only_by_a_cryptographic_hash() -> None:
    new = _entry(b"/usr/bin/x", p=0o100755, crc32=b"\0\0\0\1")
    owner = Shipped("pkg", "1", _member(b"x"))
    explained = judge(Change(b"/usr/bin/x", "f", None, new), [owner], IDS)
    assert explained.kind is Kind.UNEXPLAINED  # crc32 agrees, but anyone can make it agree
    assert explained.reason == "its content is recorded without a cryptographic hash"


def test_a_link_pointing_elsewhere_is_a_mismatch() -> None:
    link = _member(b"", ftype="l", mode=0o777, linkname=b"x", digests={})
    new = _entry(b"/usr/bin/y", "l", p=0o120777, l=b"/tmp/evil")
    assert judge(Change(b"/usr/bin/y", "l", None, new), [Shipped("pkg", "1", link)], IDS).kind \
        is Kind.MISMATCH


# --- files package scripts write ----------------------------------------------------------------


@requires_root
def test_generated_files_are_explained_only_when_recomputed(vault_site: VaultSite, apt_tree: AptTree) -> None:
    site, tree = vault_site, apt_tree
    r = tree.root
    work = tree.work
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", "/CN=aidepy test CA",
                    "-keyout", str(work / "ca.key"), "-out", str(work / "ca.crt"), "-days", "2"],
                   check=True, capture_output=True)
    tools = tree.build("aidepy-test-tools", "1.0", {
        "/usr/bin/aidepy-test-editor-1": ("#!/bin/sh\necho 1\n", 0o755),
        "/usr/bin/aidepy-test-editor-2": ("#!/bin/sh\necho 2\n", 0o755),
        "/usr/share/ca-certificates/aidepy/test-ca.crt": (work / "ca.crt").read_text(),
        "/usr/lib/aidepy-test/libz.so.1": Path("/usr/lib/x86_64-linux-gnu/libz.so.1").read_bytes(),
    })
    tree.publish(tools)
    tree.install("aidepy-test-tools")
    (r / "etc/ld.so.conf").write_text("/usr/lib/aidepy-test\n")
    alternatives = ["update-alternatives", "--root", str(r), "--install", "/usr/bin/aidepy-test-editor",
                    "aidepy-test-editor"]
    subprocess.run([*alternatives, "/usr/bin/aidepy-test-editor-1", "10"], check=True, capture_output=True)
    site_config(site, tree)
    assert promote_in_process(site)[0] == 1
    # what the package scripts and triggers would do after an upgrade
    subprocess.run([*alternatives, "/usr/bin/aidepy-test-editor-2", "20"], check=True, capture_output=True)
    certs = r / "etc/ssl/certs"
    certs.mkdir(parents=True)
    (certs / "aidepy-test.pem").symlink_to("/usr/share/ca-certificates/aidepy/test-ca.crt")
    subject_hash = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(work / "ca.crt")],
                                  check=True, capture_output=True, text=True).stdout.strip()
    (certs / f"{subject_hash}.0").symlink_to("aidepy-test.pem")  # as `openssl rehash` names it
    (certs / "00000000.0").symlink_to("aidepy-test.pem")  # a name that is not the subject's hash
    subprocess.run(["ldconfig", "-r", str(r)], check=True, capture_output=True)
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    hash_link = f"/etc/ssl/certs/{subject_hash}.0"
    assert found["/etc/alternatives/aidepy-test-editor"] == {"kind": "generated", "by": "update-alternatives"}
    assert found[hash_link] == {"kind": "generated", "by": "update-ca-certificates"}
    assert found["/etc/ssl/certs/aidepy-test.pem"] == {"kind": "generated", "by": "update-ca-certificates"}
    assert found["/etc/ld.so.cache"] == {"kind": "generated", "by": "ldconfig"}
    assert found["/etc/ssl/certs/00000000.0"]["kind"] == "unexplained"
    # a generated file that is not what its generator makes from the inputs stays unexplained
    (r / "etc/alternatives/aidepy-test-editor").unlink()
    (r / "etc/alternatives/aidepy-test-editor").symlink_to("/usr/bin/aidepy-test-editor-1")
    with open(r / "etc/ld.so.cache", "ab") as cache:
        cache.write(b"\0")
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert found["/etc/alternatives/aidepy-test-editor"]["kind"] == "unexplained"  # auto mode: the best is 2
    assert found["/etc/ld.so.cache"]["kind"] == "unexplained"


def test_dpkg_evidence_never_explains_a_mode_change() -> None:
    content = b"x"
    md5 = hashlib.md5(content).hexdigest()
    old, new = _installed(content), _installed(content, 0o104755)
    owner = Shipped("pkg", "1", None, md5)
    assert judge(Change(b"/usr/bin/x", "f", old, new, ("p",)), [owner], IDS, md5).kind is Kind.UNEXPLAINED
    assert judge(Change(b"/usr/bin/x", "f", old, old, ("c",)), [owner], IDS, md5) == \
        Explanation(Kind.PACKAGE, "pkg", "1", Evidence.DPKG)


def test_without_a_vault_explanations_are_limited_to_dpkg_evidence(apt_tree: AptTree, tmp_path: Path) -> None:
    tree = apt_tree
    a1, b1 = version_1(tree)
    tree.publish(a1, b1)
    tree.install("aidepy-test-a", "aidepy-test-b")
    config = tmp_path / "aidepy.conf"
    config.write_text(f"database_in=file:{tmp_path}/aidepy.db\ndatabase_out=file:{tmp_path}/aidepy.db\n"
                      f"state_dir={tmp_path}/state\nsigning_key={tmp_path}/none.key\nroot_prefix={tree.root}\n"
                      f"/usr {RULE}\n")
    assert aidepy("init", "-c", str(config)).returncode == 0
    tree.publish(version_2(tree), b1)
    tree.upgrade()
    doc = json.loads(aidepy("check", "-c", str(config), "--json").stdout)
    assert any("explanations are limited to evidence 'dpkg'" in n for n in doc["notices"])
    found = explanations(json.dumps(doc))
    assert found["/usr/bin/aidepy-test-a"] == {"kind": "package", "package": "aidepy-test-a",
                                              "version": "2.0", "evidence": "dpkg"}
    assert all(e.get("evidence") != "archive" for e in found.values())


# --- promote --explained-only -------------------------------------------------------------------


@requires_root
def test_promote_explained_only_accepts_what_the_archive_explains(
        upgraded: tuple[VaultSite, AptTree]) -> None:
    site, _ = upgraded
    generation, shown = promote_in_process(site, explained_only=True)
    assert generation == 2
    assert "--explained-only: accepting the 9 changes explained with evidence archive; keeping the old " \
           "record of the other 1" in shown
    check = aidepy("check", "-c", str(site.config_path), "--json")
    found = explanations(check.stdout)
    # only the hand-made change stays
    assert list(found) == ["/usr/bin/aidepy-test-b"]
    assert found["/usr/bin/aidepy-test-b"]["kind"] == "mismatch"
    assert json.loads(check.stdout)["summary"]["unexplained"] == 1
    # the approval log says what promote decided: 9 accepted, 1 kept, and names only the accepted
    record = json.loads(aidepy("log", "--json", "-c", str(site.config_path)).stdout)["records"][-1]
    assert (record["generation"], record["accepted"], record["kept"]) == (2, 9, 1)
    assert not {p["path"] for p in record["paths"]} & set(found)


@requires_root
def test_the_review_at_the_console_accepts_the_archive_in_one_answer(
        upgraded: tuple[VaultSite, AptTree]) -> None:
    site, _ = upgraded
    site.loop.set_read_only(True)
    child = spawn_promote(site)
    child.expect(ACCEPT)
    child.sendline("r")
    child.expect("Accept the 9 changes explained by package updates with evidence archive?")
    child.sendline("y")
    child.expect(r"\[1/1\] f.*: /usr/bin/aidepy-test-b\r?\n +unexplained: aidepy-test-b 1\.0: differs from "
                 "what the package ships")
    child.expect(REVIEW)
    child.sendline("d")
    child.expect("File: /usr/bin/aidepy-test-b")
    child.expect(REVIEW)
    child.sendline("k")
    child.expect("Make this the vault's new baseline: 9 changes accepted, 1 kept as before")
    child.sendline("y")
    assert "generation   2 (was 1)" in sign_and_write(child, site)
    found = explanations(aidepy("check", "-c", str(site.config_path), "--json").stdout)
    assert list(found) == ["/usr/bin/aidepy-test-b"]


def test_with_old_records_keeps_what_was_not_accepted() -> None:
    old = {p: _entry(p, s=1) for p in (b"/a", b"/a/x", b"/b")}
    fresh = [_entry(b"/a", s=2), _entry(b"/a/new", s=2), _entry(b"/a/x", s=2)]  # /b removed
    changes = [Change(b"/a", "f", old[b"/a"], fresh[0], ("s",)), Change(b"/a/new", "f", None, fresh[1]),
               Change(b"/a/x", "f", old[b"/a/x"], fresh[2], ("s",)), Change(b"/b", "f", old[b"/b"], None)]
    kept = kept_records(changes, {b"/a": True})
    assert list(with_old_records(fresh, kept)) == [fresh[0], old[b"/a/x"], old[b"/b"]]


def test_an_armored_keyring_is_read_as_gpg_dearmors_it(tmp_path: Path) -> None:
    gpg = subprocess.run(["gpg", "--batch", "--homedir", str(tmp_path), "--quiet", "--passphrase", "",
                          "--quick-gen-key", "armored <a@example.org>", "ed25519", "sign", "never"],
                         capture_output=True, check=True)
    assert gpg.returncode == 0
    armored = subprocess.run(["gpg", "--homedir", str(tmp_path), "--armor", "--export"], capture_output=True,
                             check=True).stdout
    binary = subprocess.run(["gpg", "--homedir", str(tmp_path), "--export"], capture_output=True,
                            check=True).stdout
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert dearmor(armored) == binary and dearmor(binary) == binary


def test_a_merged_usr_path_is_explained_by_the_name_the_package_ships(apt_tree: AptTree) -> None:
    tree = apt_tree
    (tree.root / "bin").symlink_to("usr/bin")  # Debian 12: /bin is a link to usr/bin
    ships = {"/bin/aidepy-test-m": ("#!/bin/sh\necho 1\n", 0o755)}
    tree.publish(tree.build("aidepy-test-m", "1.0", ships))
    tree.install("aidepy-test-m")
    config = parse_text(f"root_prefix={tree.root}\n/usr/bin {RULE}\n")
    before = list(scan(config.ruleset, root_prefix=config.root_prefix, on_warning=print))
    since = time.time() - 1
    tree.publish(tree.build("aidepy-test-m", "2.0", {"/bin/aidepy-test-m": ("#!/bin/sh\necho 2\n", 0o755)}))
    tree.upgrade()
    changes = list(compare(before, scan(config.ruleset, root_prefix=config.root_prefix, on_warning=print)))
    keyring = (tree.root / "etc/apt/trusted.gpg.d/test-archive.gpg").read_bytes()
    explained = explain(changes, Sources(config.root_prefix, [keyring], since))
    assert explained is not None
    assert explained.of(b"/usr/bin/aidepy-test-m") == Explanation(Kind.PACKAGE, "aidepy-test-m", "2.0",
                                                                  Evidence.ARCHIVE, previous="1.0")
