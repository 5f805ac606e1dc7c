"""init / check / update / compare as the admin runs them: signing, verification, limits, exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import AIDEPY

from aidepy.db.file import open_database
from aidepy.db.format import SIGNATURE_CONTEXT, TAIL_SIZE
from aidepy.keys import fingerprint, generate_keypair, load_private_key

pytest.importorskip("aidepy.scan.walk", reason="the scanner is not built yet")


@dataclass
class Site:
    tree: Path
    work: Path
    conf: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*AIDEPY, *args, "-c", str(self.conf)],
                              capture_output=True)

    def promote(self) -> None:
        """What the admin does after reviewing: the new database becomes the baseline."""
        (self.work / "db.new").replace(self.work / "db")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "passwd").write_text("root:x:0:0\n")
    (tree / "bin").mkdir()
    (tree / "bin" / "ls").write_bytes(b"\x7fELF ls")
    work = tmp_path / "work"
    work.mkdir()
    conf = work / "aidepy.conf"
    conf.write_text(
        f"state_dir={work}/state\ndatabase_in=file:{work}/db\ndatabase_out=file:{work}/db.new\ndatabase_new=file:{work}/db.new\n"
        f"signing_key={work}/signing.key\n{tree} p+u+g+s+m+c+i+n+sha256\n"
    )
    return Site(tree, work, conf)


def with_public_key(site: Site) -> None:
    site.conf.write_text(site.conf.read_text() + f"public_key={site.work}/signing.key.pub\n")


def test_init_then_check_on_untouched_tree_exits_zero_and_says_so(site: Site) -> None:
    init = site.run("init")
    assert init.returncode == 0, init.stderr
    assert b"is NOT signed" in init.stdout.split(b"\n")[0]
    assert b"UNSIGNED" in init.stderr
    site.promote()
    check = site.run("check")
    assert check.returncode == 0, check.stderr
    first = check.stdout.split(b"\n")[0]
    assert b"is NOT signed and no public_key is configured" in first
    assert b"AIDE found NO differences between database and filesystem. Looks okay!!" in check.stdout


def test_signed_baseline_is_verified_and_its_key_named_in_the_report(site: Site) -> None:
    public = generate_keypair(site.work / "signing.key", None)
    assert site.run("init").returncode == 0
    site.promote()
    with_public_key(site)
    check = site.run("check")
    assert check.returncode == 0, check.stderr
    first = check.stdout.split(b"\n")[0]
    assert f"signature verified with the pinned key {fingerprint(public)}".encode() in first


def test_check_refuses_unsigned_baseline_when_a_public_key_is_configured(site: Site) -> None:
    assert site.run("init").returncode == 0  # no signing key yet: unsigned
    site.promote()
    generate_keypair(site.work / "signing.key", None)
    with_public_key(site)
    check = site.run("check")
    assert check.returncode == 20
    assert check.stdout == b""  # no report from a database that failed verification
    assert b"aidepy:" in check.stderr


def test_check_refuses_a_baseline_signed_by_another_key(site: Site) -> None:
    generate_keypair(site.work / "signing.key", None)
    assert site.run("init").returncode == 0
    site.promote()
    generate_keypair(site.work / "other.key", None)
    site.conf.write_text(site.conf.read_text() + f"public_key={site.work}/other.key.pub\n")
    check = site.run("check")
    assert (check.returncode, check.stdout) == (20, b"")


def test_check_refuses_a_tampered_baseline(site: Site) -> None:
    generate_keypair(site.work / "signing.key", None)
    assert site.run("init").returncode == 0
    site.promote()
    with_public_key(site)
    db = site.work / "db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0x01
    db.write_bytes(bytes(data))
    check = site.run("check")
    assert (check.returncode, check.stdout) == (20, b"")


def test_check_and_update_refuse_a_sealed_baseline_with_a_malformed_record(site: Site) -> None:
    # digest and signature are right (the key holder wrote nonsense): the records are checked as
    # they are read, and nothing is reported or written before the refusal
    generate_keypair(site.work / "signing.key", None)
    key = load_private_key(site.work / "signing.key", None)
    assert site.run("init").returncode == 0
    site.promote()
    with_public_key(site)
    db = site.work / "db"
    data = db.read_bytes()
    body = data[:-TAIL_SIZE] + b"junk" + data[-TAIL_SIZE:-96]
    digest = hashlib.sha256(body).digest()
    db.write_bytes(body + digest + key.sign(SIGNATURE_CONTEXT + digest))
    assert not (site.work / "db.new").exists()  # promote moved it
    for command in ("check", "update"):
        run = site.run(command)
        assert (run.returncode, run.stdout) == (20, b""), run.stderr
        assert b"structure" in run.stderr and str(db).encode() in run.stderr
    assert not (site.work / "db.new").exists()


def test_encrypted_key_signs_only_with_a_passphrase_file(site: Site) -> None:
    generate_keypair(site.work / "signing.key", b"correct horse")
    without = site.run("init")
    assert without.returncode == 0 and b"UNSIGNED" in without.stderr
    with open_database(site.work / "db.new", None) as db:
        assert not db.signed
    (site.work / "pass").write_bytes(b"correct horse\n")
    signed = site.run("init", "--passphrase-file", str(site.work / "pass"))
    assert signed.returncode == 0, signed.stderr
    with open_database(site.work / "db.new", None) as db:
        assert db.signed
    (site.work / "pass").write_bytes(b"wrong\n")
    wrong = site.run("init", "--passphrase-file", str(site.work / "pass"))
    assert wrong.returncode == 15 and b"passphrase" in wrong.stderr


def test_check_reports_setuid_change_and_update_writes_next_generation(site: Site) -> None:
    assert site.run("init").returncode == 0
    site.promote()
    (site.tree / "bin" / "ls").chmod(0o4755)  # was 0644 (umask 022)
    (site.tree / "etc" / "shadow").write_text("root:!:1\n")
    check = site.run("check", "--json")
    assert check.returncode == 5, check.stderr
    doc = json.loads(check.stdout)
    changed = {c["path"]: c["attributes"] for c in doc["changed"]}
    assert changed[f"{site.tree}/bin/ls"]["p"] == {"old": 0o100644, "new": 0o104755}
    assert [a["path"] for a in doc["added"]] == [f"{site.tree}/etc/shadow"]
    update = site.run("update")
    assert update.returncode == 5
    assert f"New AIDE database written to {site.work}/db.new".encode() in update.stdout
    with open_database(site.work / "db.new", None) as new, open_database(site.work / "db", None) as old:
        assert new.header.generation == old.header.generation + 1
    compare = site.run("compare", str(site.work / "db"), str(site.work / "db.new"))
    assert compare.returncode == 5
    assert b"AIDE found differences between the two databases!!" in compare.stdout
    site.promote()
    assert site.run("check").returncode == 0


def test_limit_restricts_check_to_matching_paths(site: Site) -> None:
    assert site.run("init").returncode == 0
    site.promote()
    (site.tree / "bin" / "ls").write_bytes(b"trojan")
    (site.tree / "etc" / "passwd").write_text("evil:x:0:0\n")
    check = site.run("check", "--json", "--limit", f"{site.tree}/etc")
    assert check.returncode == 4
    assert [c["path"] for c in json.loads(check.stdout)["changed"]] == [f"{site.tree}/etc/passwd"]


def test_report_goes_to_each_report_url_and_report_quiet_silences_an_okay_check(site: Site) -> None:
    assert site.run("init").returncode == 0
    site.promote()
    log = site.work / "report.log"
    site.conf.write_text(site.conf.read_text() + f"report_url=file:{log}\nreport_url=stdout\n")
    check = site.run("check")
    assert check.returncode == 0
    assert b"Looks okay!!" in check.stdout and log.read_bytes() == check.stdout
    rules = site.conf.read_text()
    site.conf.write_text(rules + "report_quiet=yes\n")  # after the last report_url: no report's
    log.unlink()
    late = site.run("check")
    assert late.stdout == log.read_bytes() and b"Looks okay!!" in late.stdout
    line = rules.count("\n") + 1
    assert f"{site.conf}:{line}: 'report_quiet' follows the last report_url".encode() in late.stderr
    site.conf.write_text(f"report_quiet=yes\n{rules}")  # as AIDE: before the report_url lines
    log.unlink()
    quiet = site.run("check")
    assert (quiet.returncode, quiet.stdout, log.exists()) == (0, b"", False)
    (site.tree / "etc" / "passwd").write_text("changed\n")
    loud = site.run("check")
    assert loud.returncode == 4 and b"Changed entries" in loud.stdout


def test_init_with_limit_refreshes_only_matching_entries_and_keeps_the_rest(site: Site) -> None:
    assert site.run("init").returncode == 0
    site.promote()
    (site.tree / "bin" / "ls").write_bytes(b"trojan")
    (site.tree / "etc" / "passwd").write_text("admin edit\n")
    init = site.run("init", "--limit", f"{site.tree}/etc")
    assert init.returncode == 0, init.stderr
    assert f"Limit: {site.tree}/etc".encode() in init.stdout
    site.promote()
    check = site.run("check", "--json")
    assert check.returncode == 4
    assert [c["path"] for c in json.loads(check.stdout)["changed"]] == [f"{site.tree}/bin/ls"]
