"""The scanner's values against Debian's `aide --init` database for the same generated tree."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from aidepy.config.evaluate import parse_text
from aidepy.entry import Entry
from aidepy.pcre import Regex
from aidepy.scan.collect import decode_caps, e2fs_string, format_xattrs
from aidepy.scan.walk import ScanWarning, scan

ATTRS = "p+i+n+u+g+s+b+m+c+l+acl+xattrs+e2fsattrs+caps+ftype+md5+sha1+sha256+sha512+rmd160+crc32+crc32b"


def aide_database(tree: Path, workdir: Path) -> dict[bytes, dict[str, str]]:
    """`aide --init` over `tree` with an uncompressed database: path -> field -> raw text."""
    aide = shutil.which("aide") or shutil.which("aide", path="/usr/sbin:/usr/bin")
    if aide is None:
        pytest.skip("aide is not installed (./setup.sh installs it)")
    db = workdir / "aide.db"
    conf = workdir / "aide.conf"
    conf.write_text(f"database_out=file:{db}\ngzip_dbout=no\n{tree} {ATTRS}\n")
    subprocess.run([aide, "--init", "-c", str(conf)], check=True, capture_output=True)
    spec: list[str] = []
    lines: dict[bytes, dict[str, str]] = {}
    for line in db.read_text().splitlines():
        if line.startswith("@@db_spec"):
            spec = line.split()[1:]
        elif line.startswith("/"):
            fields = dict(zip(spec, line.split(" "), strict=True))
            lines[fields["name"].encode()] = fields
    return lines


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def build_tree(tree: Path) -> None:
    (tree / "sub").mkdir(parents=True)
    (tree / "empty").touch()
    (tree / "small").write_text("hello\n")
    (tree / "big").write_bytes(os.urandom(3 * 65536 + 17))
    os.link(tree / "small", tree / "sub" / "hard")
    os.symlink("small", tree / "link")
    os.symlink("nowhere", tree / "dangling")
    os.mkfifo(tree / "fifo")
    os.chmod(tree / "big", 0o4750)
    if os.geteuid() == 0:
        os.chown(tree / "big", 54321, 54322)
    subprocess.run([tool("setfacl"), "-m", "u:54321:r,g:54322:rw", str(tree / "small")], check=True)
    subprocess.run([tool("setfacl"), "-d", "-m", "u:54321:rx", str(tree / "sub")], check=True)
    os.setxattr(tree / "big", "user.note", b"\x00binary\xff")
    os.setxattr(tree / "big", "user.a", b"first")
    if os.geteuid() == 0:
        subprocess.run([tool("setcap"), "cap_net_raw,cap_net_admin+ep", str(tree / "empty")], check=True)
        subprocess.run([tool("chattr"), "+d", str(tree / "sub")], check=True)


def test_scan_records_what_aide_records(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    build_tree(tree)
    aide = aide_database(tree, tmp_path)
    warnings: list[ScanWarning] = []
    ruleset = parse_text(f"{tree} {ATTRS}\n").ruleset
    ours: dict[bytes, Entry] = {e.path: e for e in scan(ruleset, workers=2, on_warning=warnings.append)}
    assert warnings == []
    assert sorted(ours) == sorted(aide)
    for path, entry in ours.items():
        a, v = aide[path], entry.values
        assert int(a["perm"], 8) == v["p"], path
        for field, name in [("uid", "u"), ("gid", "g"), ("size", "s"), ("inode", "i"),
                            ("lcount", "n"), ("bcount", "b")]:
            assert int(a[field]) == v[name], (path, field)
        assert int(base64.b64decode(a["mtime"])) == v["m"] // 10**9  # type: ignore[operator]
        assert int(base64.b64decode(a["ctime"])) == v["c"] // 10**9  # type: ignore[operator]
        if entry.ftype == "l":
            assert a["lname"].encode() == v["l"]
        for h in ("md5", "sha1", "sha256", "sha512", "rmd160", "crc32", "crc32b"):
            if entry.ftype == "f":
                assert base64.b64decode(a[h]) == v[h], (path, h)
            else:
                assert a[h] == "0" and h not in entry.attrs
        if entry.ftype != "l":
            kind, access, default = a["acl"].split(",")
            assert kind == "POSIX"
            text = base64.b64decode(access).decode()
            if default != "0":
                lines = base64.b64decode(default).decode().splitlines()
                text += "".join(f"default:{line}\n" for line in lines)
            assert text.encode() == v["acl"], path
        if entry.ftype in "fd":
            assert e2fs_string(int(a["e2fsattrs"])) == v["e2fsattrs"], path
        pairs = a["xattrs"].split(",")
        listed = {pairs[i].encode(): base64.b64decode(pairs[i + 1]) for i in range(1, len(pairs) - 1, 2)}
        assert format_xattrs(listed) == v["xattrs"], path
        if entry.ftype == "f":
            caps = a["capabilities"]
            assert (base64.b64decode(caps) if caps != "0" else b"") == v["caps"], path


def test_caps_text_follows_libcap() -> None:
    # vfs_cap_data v2, effective bit, permitted = net_admin|net_raw (bits 12, 13)
    raw = (0x02000001).to_bytes(4, "little") + (0x3000).to_bytes(4, "little") + bytes(12)
    assert decode_caps(raw) == "cap_net_admin,cap_net_raw=ep"
    word = [(n).to_bytes(4, "little") for n in (0x02000000, 1, 2)]
    mixed = b"".join(word) + bytes(8)
    assert decode_caps(mixed) == "cap_chown=p cap_dac_override=i"


def test_acl_of_a_plain_file_is_its_mode(tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_text("x")
    os.chmod(f, 0o640)
    warnings: list[ScanWarning] = []
    entries = list(scan(parse_text("/ acl+p\n").ruleset, root_prefix=bytes(tmp_path),
                        on_warning=warnings.append))
    plain = next(e for e in entries if e.path == b"/plain")
    assert plain.values["acl"] == b"user::rw-\ngroup::r--\nother::---\n"
    assert stat.S_IMODE(plain.values["p"]) == 0o640  # type: ignore[arg-type]
    assert warnings == []


def test_xattrs_text_is_unambiguous() -> None:
    forged = {b"user.a = b\nuser.c": b"d"}
    honest = {b"user.a": b"b", b"user.c": b"d"}
    assert format_xattrs(forged) != format_xattrs(honest)
    assert format_xattrs({b"user.a": b"b = c"}) != format_xattrs({b"user.a = b": b"c"})
    assert format_xattrs({b"user.v": b"abc"}) != format_xattrs({b"user.v": b"abc\0"})
    assert format_xattrs(honest) == b"user.a = b\nuser.c = d\n"


@pytest.mark.parametrize("limit", [
    "sub", "(sub|big)$", "sm[[:alpha:]]+", "s.*l", "[^/]+/hard", "link|fifo", "nothing-here", "",
])
def test_limit_selects_what_aides_limit_selects(tmp_path: Path, limit: str) -> None:
    # --limit goes through PCRE2 as in aide (anchored, partial matches enter directories): the
    # same patterns give the same entries, POSIX classes and alternatives included
    tree = tmp_path / "tree"
    build_tree(tree)
    (tree / "sub" / "deeper").mkdir()
    (tree / "sub" / "deeper" / "small-too").write_text("x")
    pattern = f"{tree}/{limit}"
    db = tmp_path / "aide.db"
    conf = tmp_path / "aide.conf"
    conf.write_text(f"database_out=file:{db}\ngzip_dbout=no\n{tree} p+sha256\n")
    subprocess.run([tool("aide"), "--init", "-c", str(conf), "--limit", pattern], check=True,
                   capture_output=True)
    theirs = sorted(line.split(" ")[0].encode() for line in db.read_text().splitlines()
                    if line.startswith("/"))
    ruleset = parse_text(f"{tree} p+sha256\n").ruleset
    ours = [e.path for e in scan(ruleset, limit=Regex(pattern.encode()), workers=2, on_warning=print)]
    assert sorted(ours) == theirs
    assert (len(ours) > 0) == (limit != "nothing-here")
