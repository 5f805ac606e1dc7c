"""Differential tests: `aidepy init/check` against Debian's `aide` 0.18.3 on the same generated tree.

Both programs get equivalent configs (the same rules on absolute paths), build a baseline,
then the test applies a fixed set of mutations and runs both checks. The added, removed and
changed paths, the changed attributes of every changed path, and the exit codes must agree.
AIDE's side is read from its plain-text report (its JSON report leaves quotes and newlines
in file names unescaped); aidepy's from `--json`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import OracleSetup, configure, init_both, oracle_aide, oracle_aidepy, report_body, require_tool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for chown (runs as root in CI)")
pytest.importorskip("aidepy.scan.walk", reason="the scanner is not built yet")

RULE = "p+u+g+s+m+c+i+n+l+md5+sha256+ftype"
LOG_RULE = "p+u+g+s+m+c+i+n+sha256+growing"

# AIDE's detail labels -> attribute names.
LABELS = {
    "Lname": "l", "Perm": "p", "Uid": "u", "Gid": "g", "Size": "s", "Size (>)": "S", "Atime": "a",
    "Ctime": "c", "Mtime": "m", "Inode": "i", "Bcount": "b", "Linkcount": "n", "MD5": "md5",
    "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512", "ACL": "acl", "XAttrs": "xattrs",
    "SELinux": "selinux", "File type": "ftype", "E2FSAttrs": "e2fsattrs", "Caps": "caps",
}
FILE_TYPES = ("File", "Directory", "Link", "Character device", "Block device", "FIFO", "Socket")
ODD_NAMES = [
    b"with space", b"new\nline", b"tab\there", b"quote\"d", b"single'q", b"per%cent%41",
    "gr\u00fc\u00dfe-\u65e5\u672c".encode(), b"latin1-\xe9\xff", b"-dash", b"#hash", b"x" * 200,
]


@dataclass
class Outcome:
    """What one program reported."""

    exit_code: int
    added: set[bytes] = field(default_factory=set)
    removed: set[bytes] = field(default_factory=set)
    changed: dict[bytes, set[str]] = field(default_factory=dict)


def unescape(text: bytes) -> bytes:
    """Undo AIDE's `\\ooo` escaping of control characters in report paths."""
    return re.sub(rb"\\([0-3][0-7]{2})", lambda m: bytes([int(m.group(1), 8)]), text)


def parse_aide(out: bytes, exit_code: int) -> Outcome:
    outcome = Outcome(exit_code)
    section = b""
    current: bytes | None = None
    for line in out.split(b"\n"):
        if line.endswith(b":") and not line.startswith(b" ") and b": " not in line:
            section = line[:-1]
            continue
        if section in (b"Added entries", b"Removed entries", b"Changed entries"):
            m = re.match(rb"^(.{18}): (.*)$", line)
            if m:
                path = unescape(m.group(2))
                if section == b"Added entries":
                    outcome.added.add(path)
                elif section == b"Removed entries":
                    outcome.removed.add(path)
                else:
                    outcome.changed[path] = set()
        elif section == b"Detailed information about changes":
            kind, sep, rest = line.partition(b": ")
            if sep and kind.decode(errors="replace") in FILE_TYPES:
                current = unescape(rest)
                continue
            m = re.match(rb"^ (.{10}): ", line)
            if m and current is not None and m.group(1).strip():
                outcome.changed[current].add(LABELS[m.group(1).strip().decode()])
    return outcome


def parse_aidepy(out: bytes, exit_code: int) -> Outcome:
    doc = json.loads(out)

    def raw(path: str) -> bytes:
        return path.encode("utf-8", "surrogateescape")

    return Outcome(
        exit_code,
        {raw(e["path"]) for e in doc["added"]},
        {raw(e["path"]) for e in doc["removed"]},
        {raw(e["path"]): set(e["attributes"]) for e in doc["changed"]},
    )


def rules(root: Path) -> str:
    r = re.escape(str(root))
    return (
        f"{root} {RULE}\n"
        f"{r}/logs/(app|rewritten)\\.log$ f {LOG_RULE}\n"
        f"{r}/logs/shrink\\.log$ f p+u+g+s+S+i+n\n"
        f"!{r}/excluded\n"
    )


@pytest.fixture
def setup(tmp_path: Path) -> OracleSetup:
    require_tool("aide")
    root = tmp_path / "tree"
    build_tree(root)
    return configure(tmp_path / "work", root, rules(root))


def build_tree(root: Path) -> None:
    """Odd names, sizes from empty to multi-MiB, hardlinks, symlinks (one dangling), a fifo,
    deep nesting, logs, and an excluded subtree."""
    rb = os.fsencode(root)
    (root / "logs").mkdir(parents=True)
    (root / "excluded" / "inner").mkdir(parents=True)
    (root / "excluded" / "inner" / "secret").write_bytes(b"not watched")
    (root / "empty").write_bytes(b"")
    (root / "small").write_bytes(b"hello\n")
    (root / "same-size").write_bytes(b"AAAA" * 1000)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "mode").write_bytes(b"x")
    (root / "setuid").write_bytes(b"#!/bin/sh\n")
    (root / "owner").write_bytes(b"o")
    (root / "doomed").write_bytes(b"bye")
    (root / "replaced").write_bytes(b"original")
    (root / "linked").write_bytes(b"shared")
    os.link(root / "linked", root / "linked.hard")
    os.symlink("small", root / "link")
    os.symlink("does-not-exist", root / "dangling")
    os.mkfifo(root / "fifo")
    deep = root
    for i in range(12):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    (deep / "bottom").write_bytes(b"deep")
    (deep / "deep-doomed").write_bytes(b"deep")
    (root / "logs" / "app.log").write_bytes(b"line 1\n")
    (root / "logs" / "rewritten.log").write_bytes(b"line 1\n")
    (root / "logs" / "shrink.log").write_bytes(b"a long line that will be cut\n")
    odd = os.path.join(rb, b"odd")
    os.mkdir(odd)
    for i, name in enumerate(ODD_NAMES):
        with open(os.path.join(odd, name), "wb") as f:
            f.write(b"odd %d" % i)


def mutate(root: Path) -> None:
    """The fixed set of mutations both programs must see the same way."""
    rb = os.fsencode(root)
    st = os.stat(root / "same-size")  # content changed, size and mtime kept
    (root / "same-size").write_bytes(b"BBBB" * 1000)
    os.utime(root / "same-size", ns=(st.st_atime_ns, st.st_mtime_ns))
    st = os.stat(root / "big.bin")
    with open(root / "big.bin", "r+b") as f:
        f.seek(2 << 20)
        f.write(b"\0")
    os.utime(root / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    with open(root / "small", "ab") as f:  # content and size
        f.write(b"more\n")
    (root / "empty").write_bytes(b"not empty any more")
    os.chmod(root / "mode", 0o600)
    os.chmod(root / "setuid", 0o4755)
    os.chown(root / "owner", 4242, 4343)
    os.chmod(root / "fifo", 0o600)
    (root / "added file").write_bytes(b"new")
    os.unlink(root / "doomed")
    os.unlink(root / "link")  # symlink retarget
    os.symlink("mode", root / "link")
    os.unlink(root / "dangling")
    os.symlink("still-missing", root / "dangling")
    (root / "replaced.tmp").write_bytes(b"original")  # same content, new inode
    os.rename(root / "replaced.tmp", root / "replaced")
    os.link(root / "small", root / "small.hard")  # hardlink added: n of small changes
    deep = root.joinpath(*[f"level{i}" for i in range(12)])
    os.unlink(deep / "deep-doomed")
    with open(root / "logs" / "app.log", "ab") as f:  # growing: not a change
        f.write(b"line 2\n" * 100)
    (root / "logs" / "rewritten.log").write_bytes(b"LINE 1\nline 2\n")  # grew, but not by appending
    with open(root / "logs" / "shrink.log", "r+b") as f:  # S: shrinking is
        f.truncate(5)
    (root / "excluded" / "inner" / "secret").write_bytes(b"changed but excluded")
    (root / "excluded" / "new").write_bytes(b"excluded too")
    odd = os.path.join(rb, b"odd")
    with open(os.path.join(odd, ODD_NAMES[1]), "ab") as f:
        f.write(b"!")
    os.chmod(os.path.join(odd, ODD_NAMES[7]), 0o4711)
    os.unlink(os.path.join(odd, ODD_NAMES[3]))
    with open(os.path.join(odd, b"added\tname \xfe%"), "wb") as f:
        f.write(b"n")


def test_init_then_check_on_untouched_tree_agrees_and_exits_zero(setup: OracleSetup) -> None:
    init_both(setup)
    aide_out, aide_rc = oracle_aide(setup.aide_conf, "--check")
    out, rc = oracle_aidepy(setup.aidepy_conf, "--check")
    assert (aide_rc, rc) == (0, 0)
    assert b"Looks okay!!" in aide_out
    assert b"AIDE found NO differences between database and filesystem. Looks okay!!" in out
    assert b"is NOT signed" in out.split(b"\n")[0]


def test_check_after_mutations_matches_aide(setup: OracleSetup) -> None:
    init_both(setup)
    mutate(setup.root)
    expected = parse_aide(*oracle_aide(setup.aide_conf, "--check"))
    got = parse_aidepy(*oracle_aidepy(setup.aidepy_conf, "--check", "--json"))
    root = os.fsencode(setup.root)
    # The mutations above must be visible at all, or this test would prove nothing.
    assert root + b"/same-size" in expected.changed and root + b"/doomed" in expected.removed
    assert expected.changed[root + b"/logs/rewritten.log"] == {"sha256"}
    assert root + b"/logs/app.log" not in expected.changed
    assert got.added == expected.added
    assert got.removed == expected.removed
    assert got.changed == expected.changed
    assert got.exit_code == expected.exit_code == 7


def test_renames_under_I_and_allowed_new_and_removed_files_match_aide(tmp_path: Path) -> None:
    require_tool("aide")
    root = tmp_path / "tree"
    for d in ("ren", "spool", "plain"):
        (root / d).mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        (root / "ren" / name).write_bytes(name.encode() * 10)
        (root / "plain" / name).write_bytes(name.encode() * 10)
    (root / "spool" / "old").write_bytes(b"queued")
    r = re.escape(str(root))
    s = configure(tmp_path / "work", root, f"{root} p+u+g+s+i+n+sha256\n{r}/ren/ p+u+g+s+i+n+sha256+I\n"
                  f"{r}/spool/ p+u+g+s+i+n+sha256+ANF+ARF\n")
    init_both(s)
    os.rename(root / "ren" / "a", root / "ren" / "a2")  # a pure rename: not reported under I
    os.rename(root / "ren" / "b", root / "ren" / "b2")  # renamed and changed: reported
    with open(root / "ren" / "b2", "ab") as f:
        f.write(b"!")
    os.rename(root / "ren" / "c", root / "ren" / "d")  # over an existing file: the old d is removed
    os.rename(root / "plain" / "a", root / "plain" / "a2")  # no I: added + removed
    os.unlink(root / "spool" / "old")  # ARF
    (root / "spool" / "new").write_bytes(b"queued too")  # ANF
    expected = parse_aide(*oracle_aide(s.aide_conf, "--check"))
    got = parse_aidepy(*oracle_aidepy(s.aidepy_conf, "--check", "--json"))
    assert os.fsencode(root / "ren" / "b2") in expected.added
    assert os.fsencode(root / "ren" / "a2") not in expected.added
    assert os.fsencode(root / "ren" / "d") in expected.removed
    assert (got.added, got.removed, got.changed, got.exit_code) == (
        expected.added, expected.removed, expected.changed, expected.exit_code)


def test_changed_rules_list_different_attributes_like_aide(tmp_path: Path) -> None:
    require_tool("aide")
    root = tmp_path / "tree"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    s = configure(tmp_path / "work", root, f"{root} p+s+sha256\n")
    init_both(s)
    for conf in (s.aide_conf, s.aidepy_conf):
        conf.write_text(conf.read_text().replace("p+s+sha256", "p+m+u+sha512"))
    aide_out, aide_rc = oracle_aide(s.aide_conf, "--check")
    out, rc = oracle_aidepy(s.aidepy_conf, "--check")

    def lines(report: bytes) -> list[bytes]:
        return [line for line in report.split(b"\n") if line.startswith(b"Entry ")]

    assert lines(aide_out) == [
        f"Entry {root} in databases has different attributes: +u-s+m".encode(),
        f"Entry {root}/f in databases has different attributes: +u-s+m-sha256+sha512".encode(),
    ]
    assert lines(out) == lines(aide_out)
    assert rc == aide_rc == 0


def test_text_report_body_is_aides_byte_for_byte(setup: OracleSetup) -> None:
    init_both(setup)
    mutate(setup.root)
    for option in ("report_level=changed_attributes", "report_grouped=no", "report_summarize_changes=no",
                   "report_base16=yes", "report_level=added_removed_entries",
                   "report_ignore_changed_attrs=c+m", "report_force_attrs=u+g"):
        aide_out = subprocess.run(["aide", "-c", str(setup.aide_conf), "--check", "-B", option],
                                  capture_output=True).stdout
        out, _ = oracle_aidepy(setup.aidepy_conf, "--check", "-B", option)
        assert len(report_body(aide_out)) > 20, option
        assert report_body(out) == report_body(aide_out), option
