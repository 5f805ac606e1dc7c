"""Differential tests: aidepy's text report against Debian's `aide` 0.18.3, line for line.

Tiny trees exercise one kind of report text each (capabilities, ACLs, xattrs, e2fs flags, the
option lines of the header); both programs record a baseline, the test mutates the tree, and
the report bodies (verdict to database section) must be equal, except where aidepy differs on
purpose (docs/configuration.md): it counts a capability added to or removed from a file as a
change, and shows it in the details.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import (
    AIDEPY,
    OracleSetup,
    configure,
    init_both,
    oracle_aide,
    oracle_aidepy,
    report_body,
    require_tool,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setcap and chattr need root (CI runs as root)")

META = "p+u+g+s+sha256+acl+xattrs+e2fsattrs+caps+selinux+ftype"


def run(*argv: str) -> None:
    subprocess.run([require_tool(argv[0]), *argv[1:]], check=True, capture_output=True)


def tiny(tmp_path: Path, rule: str, names: tuple[str, ...] = ("caps", "capsrm", "acl", "xattr", "plain"),
         dirs: tuple[str, ...] = ("flags", "defacl")) -> OracleSetup:
    require_tool("aide")
    root = tmp_path / "tree"
    root.mkdir()
    for name in names:
        (root / name).write_text(name)
    for name in dirs:
        (root / name).mkdir()
    return configure(tmp_path / "work", root, f"{root} {rule}\n")


def without_caps_details(body: list[bytes]) -> list[bytes]:
    """aidepy's body less its `Caps` detail rows (AIDE has none: it does not count caps changes)."""
    return [line for line in body if not line.startswith(b" Caps      : ")]


def test_capabilities_acls_xattrs_and_e2fs_flags_are_reported_as_aide_reports_them(tmp_path: Path) -> None:
    s = tiny(tmp_path, META)
    run("setcap", "cap_chown+ep", str(s.root / "capsrm"))
    init_both(s)
    run("setcap", "cap_net_raw+ep", str(s.root / "caps"))
    run("setcap", "-r", str(s.root / "capsrm"))
    run("setfacl", "-m", "u:nobody:r", str(s.root / "acl"))
    run("setfacl", "-d", "-m", "u:nobody:rx,g:mail:r", str(s.root / "defacl"))
    run("setfattr", "-n", "user.k", "-v", "val", str(s.root / "xattr"))
    run("chattr", "+d", str(s.root / "flags"))
    theirs, their_rc = oracle_aide(s.aide_conf, "--check")
    ours, rc = oracle_aidepy(s.aidepy_conf, "--check")
    body = report_body(theirs)
    # what the test is about is in AIDE's report at all
    for line in (b"f = ...     ..X .+: " + bytes(s.root / "caps"), b" ACL       : A: user::rw-",
                 b"| A: user:nobody:r--", b"[1] user.k = val", b"D: group:mail:r--",
                 b"------d-------e-------", b"num=0"):
        assert any(line in row for row in body), line
    assert without_caps_details(report_body(ours)) == body
    assert (rc, their_rc) == (4, 4)
    assert f"Entry {s.root}/caps in databases has different attributes: +caps".encode() in ours.split(b"\n")
    assert b" Caps      :                                  | cap_net_raw=ep" in ours.split(b"\n")


@pytest.mark.parametrize(("attr", "command", "summary"), [
    ("caps", ("setcap", "cap_setuid+ep"), f"f   .{' ' * 12}+"),
    ("selinux", ("setfattr", "-n", "security.selinux", "-v", "system_u:object_r:shadow_t:s0"),
     f"f   .{' ' * 10}+  "),
])
def test_a_capability_or_label_added_alone_is_a_change_with_aides_note(
        tmp_path: Path, attr: str, command: tuple[str, ...], summary: str) -> None:
    # AIDE only notes that the entry records different attributes and exits 0; a setcap on a
    # binary is a classic backdoor, so aidepy also lists it as changed (exit 4)
    s = tiny(tmp_path, f"p+{attr}", names=("tool", "other"), dirs=())
    os.symlink("tool", s.root / "link")
    init_both(s)
    run(*command, str(s.root / "tool"))
    theirs, their_rc = oracle_aide(s.aide_conf, "--check")
    ours, rc = oracle_aidepy(s.aidepy_conf, "--check")
    note = f"Entry {s.root}/tool in databases has different attributes: +{attr}".encode()
    assert note in theirs.split(b"\n") and their_rc == 0
    assert note in ours.split(b"\n") and rc == 4
    assert f"{summary}: {s.root}/tool".encode() in ours.split(b"\n")
    assert not [line for line in theirs.split(b"\n") if re.match(rb"^[fd] ", line)]  # aide lists none
    # aide reads the capabilities of a symlink's target (libcap follows it); aidepy never follows
    link_note = f"Entry {s.root}/link in databases has different attributes".encode()
    assert (link_note in theirs) == (attr == "caps") and link_note not in ours


@pytest.mark.parametrize("options", [
    ("report_ignore_e2fsattrs=eAd",),
    ("report_ignore_e2fsattrs=d", "report_level=list_entries"),
    ("report_ignore_added_attrs=m", "report_ignore_removed_attrs=u", "report_ignore_changed_attrs=c",
     "report_force_attrs=u", "report_ignore_e2fsattrs=Ad"),
    ("report_level=summary", "report_ignore_e2fsattrs=d"),
])
def test_header_names_the_report_options_as_aide_does(tmp_path: Path, options: tuple[str, ...]) -> None:
    s = tiny(tmp_path, "p+u+g+s+sha256+e2fsattrs+ftype", names=("f", "g"), dirs=())
    init_both(s)
    run("chattr", "+d", str(s.root / "f"))
    os.chmod(s.root / "g", 0o600)
    before = [arg for option in options for arg in ("-B", option)]
    theirs, their_rc = oracle_aide(s.aide_conf, "--check", *before)
    ours, rc = oracle_aidepy(s.aidepy_conf, "--check", *before)
    assert any(line.startswith((b"Ignored", b"Report level")) for line in report_body(theirs))
    assert report_body(ours) == report_body(theirs)
    assert rc == their_rc


DEBIAN_CONF = Path("/etc/aide/aide.conf")


@pytest.mark.skipif(not DEBIAN_CONF.exists(), reason="Debian's /etc/aide/aide.conf is not installed")
def test_summary_strings_of_a_copy_of_etc_under_debians_config_are_aides(tmp_path: Path) -> None:
    # Debian's own rules (through root_prefix) over a copy of /etc, mutated in every way the
    # summary string shows: content, size, mode, owner, times, a symlink's target, an xattr,
    # an ACL, e2fs flags, added and removed files and directories
    require_tool("aide")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["cp", "-a", "/etc", str(root)], check=True)
    etc = root / "etc"
    for name in ("hostname", "motd", "issue.net"):
        if not (etc / name).exists():
            (etc / name).write_text(f"{name}\n")
    (etc / "gone.d").mkdir(exist_ok=True)
    (etc / "gone.d" / "file").write_text("x")
    (etc / "aidepy-link").unlink(missing_ok=True)
    os.symlink("/etc/hostname", etc / "aidepy-link")

    def options(program: str) -> list[str]:
        db = tmp_path / f"{program}.db"
        lines = [f"root_prefix={root}", f"database_in=file:{db}", f"database_out=file:{db}.new",
                 f"database_new=file:{db}.new"]
        lines += ["gzip_dbout=no"] if program == "aide" else [f"signing_key={tmp_path}/no-such.key",
                                                              f"state_dir={tmp_path}/state"]
        return [arg for line in lines for arg in ("-B", line)]

    for program, run_it in (("aide", oracle_aide), ("aidepy", oracle_aidepy)):
        run_it(DEBIAN_CONF, "--init", *options(program))
        (tmp_path / f"{program}.db.new").rename(tmp_path / f"{program}.db")
    with open(etc / "passwd", "a") as f:
        f.write("intruder:x:0:0::/:/bin/sh\n")
    os.chmod(etc / "hostname", 0o600)
    os.chown(etc / "hosts", 4242, -1)
    os.utime(etc / "services", (1577836800, 1577836800))
    (etc / "aidepy-link").unlink()
    os.symlink("/nowhere", etc / "aidepy-link")
    run("setfattr", "-n", "user.k", "-v", "v", str(etc / "fstab"))
    run("setfacl", "-m", "u:nobody:r", str(etc / "shells"))
    run("chattr", "+d", str(etc / "motd"))
    run("chattr", "+A", str(etc / "profile"))  # Debian ignores only the flags VNIE
    (etc / "new-file").write_text("new\n")
    (etc / "new.d").mkdir()
    (etc / "issue.net").unlink()
    (etc / "gone.d" / "file").unlink()
    (etc / "gone.d").rmdir()
    theirs, their_rc = oracle_aide(DEBIAN_CONF, "--check", *options("aide"))
    ours, rc = oracle_aidepy(DEBIAN_CONF, "--check", *options("aidepy"))

    def entries(report: bytes) -> list[bytes]:
        lines = report.split(b"\n")
        return lines[lines.index(b"Summary:"):lines.index(b"Detailed information about changes:")]

    assert b"f >.... mc..H.. . : /etc/passwd" in entries(theirs)
    assert len([line for line in entries(theirs) if line[:1] in b"fdl" and b": /etc/" in line]) >= 14
    assert entries(ours) == entries(theirs)
    assert rc == their_rc == 7


def with_reports(s: OracleSetup, layout: str) -> None:
    """Replace both configs' report lines with `layout` ({prog}: aide or aidepy, for file names)."""
    aide_text = s.aide_conf.read_text().replace("report_url=stdout\n", layout.format(prog="aide"))
    s.aide_conf.write_text(aide_text)
    head, _, rules = s.aidepy_conf.read_text().partition("\n/")
    s.aidepy_conf.write_text(f"{head}\n{layout.format(prog='aidepy')}/{rules}")


@pytest.mark.parametrize(("layout", "exit_code"), [
    # before the report_url: it shapes that report, and the exit code follows it
    ("report_ignore_changed_attrs=p+e2fsattrs\nreport_url=file:{prog}.r1\n", 0),
    # after the last report_url: it shapes nothing (aidepy warns)
    ("report_url=file:{prog}.r1\nreport_ignore_changed_attrs=p+e2fsattrs\nreport_level=summary\n", 4),
    # two reports with their own options: one sees no change, the other both; exit 4
    ("report_ignore_changed_attrs=p+e2fsattrs\nreport_url=file:{prog}.r1\nreport_ignore_changed_attrs=E\n"
     "report_ignore_e2fsattrs=d\nreport_url=file:{prog}.r2\n", 4),
    ("report_level=list_entries\nreport_url=file:{prog}.r1\nreport_level=changed_attributes\n"
     "report_base16=yes\nreport_url=file:{prog}.r2\n", 4),
])
def test_report_options_shape_the_report_urls_after_them_as_in_aide(
        tmp_path: Path, layout: str, exit_code: int) -> None:
    s = tiny(tmp_path, "p+u+g+s+sha256+e2fsattrs+ftype", names=("f", "g"), dirs=())
    layout = layout.replace("file:", f"file:{s.aide_conf.parent}/")
    with_reports(s, layout)
    init_both(s)
    run("chattr", "+d", str(s.root / "f"))
    os.chmod(s.root / "g", 0o600)
    _, their_rc = oracle_aide(s.aide_conf, "--check")
    proc = subprocess.run([*AIDEPY, "--check", "-c", str(s.aidepy_conf)],
                          capture_output=True)
    assert proc.returncode == their_rc == exit_code
    work = s.aide_conf.parent
    for report in ("r1", "r2"):
        assert (work / f"aide.{report}").exists() == (work / f"aidepy.{report}").exists()
        if (work / f"aide.{report}").exists():
            theirs, ours = (work / f"aide.{report}").read_bytes(), (work / f"aidepy.{report}").read_bytes()
            assert report_body(ours) == report_body(theirs), report
    lines = layout.splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("report_url="))
    for option in (line.split("=")[0] for line in lines[last + 1:]):
        assert f"'{option}' follows the last report_url".encode() in proc.stderr
    assert (b"follows the last report_url" in proc.stderr) == (last + 1 < len(lines))
