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
from conftest import OracleSetup, configure, init_both, oracle_aide, oracle_aidepy, report_body, require_tool

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


def test_a_capability_added_alone_is_a_change_with_aides_note(tmp_path: Path) -> None:
    # AIDE only notes that the entry records different attributes and exits 0; a setcap on a
    # binary is a classic backdoor, so aidepy also lists it as changed (exit 4)
    s = tiny(tmp_path, "p+caps", names=("tool", "other"), dirs=())
    init_both(s)
    run("setcap", "cap_setuid+ep", str(s.root / "tool"))
    theirs, their_rc = oracle_aide(s.aide_conf, "--check")
    ours, rc = oracle_aidepy(s.aidepy_conf, "--check")
    note = f"Entry {s.root}/tool in databases has different attributes: +caps".encode()
    assert note in theirs.split(b"\n") and their_rc == 0
    assert note in ours.split(b"\n") and rc == 4
    assert f"f   .{' ' * 12}+: {s.root}/tool".encode() in ours.split(b"\n")
    assert not [line for line in theirs.split(b"\n") if re.match(rb"^[fd] ", line)]  # AIDE lists none


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
