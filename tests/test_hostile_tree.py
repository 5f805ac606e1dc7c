"""The hostile-tree catalogue: trees an attacker could shape, scanned by `aidepy.scan.walk` and by
`aidepy init`/`check` as the admin runs them. Every case has its expected result (an entry of
the right type, or a warning naming the path), every scan runs under a time limit, and no name
reaches the report, a terminal or a mail with its control bytes raw.

The tree is built once per module (10,000 entries, 500 levels, odd names, special files); the
races (deleted between readdir and open, replaced between lstat and open, growing while hashed)
are `tests/test_scan.py`'s, which drives them deterministically at the collection step.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import AIDEPY, as_nobody, backdate, requires_root, time_limit

from aidepy.config.evaluate import parse_text
from aidepy.entry import Entry, sort_key
from aidepy.report.escape import escape_path
from aidepy.scan.walk import ScanWarning, scan

RULE = "p+u+g+s+i+n+m+c+sha256"
BIG_DIR = 10_000
DEPTH = 500
ODD_NAMES = {
    "newline": b"new\nline",
    "tab": b"tab\there",
    "backslash": b"back\\slash",
    "percent": b"100%s%n%x",
    "invalid UTF-8": b"latin1-\xe9t\xe9\xff",
    "terminal escape": b"\x1b[2J\x1b[31mred\x1b]0;owned\x07",
    "carriage return": b"over\rwrite",
    "DEL": b"del\x7f",
    "header lookalike": b"x\nSubject: you are hacked\nBcc: evil@example",
}


@dataclass(frozen=True)
class Scanned:
    root: Path
    found: dict[bytes, Entry]
    order: list[bytes]
    warnings: list[ScanWarning]

    def warned(self, path: bytes) -> str:
        return " | ".join(w.message for w in self.warnings if w.path == path)


def _long_path(root: Path) -> bytes:
    """A relative path of 4,000 bytes whose last name is 255 bytes long (made with dir fds)."""
    parts = [b"L" * 250] * 14
    parts.append(b"M" * (4000 - 255 - 1 - len(b"/".join(parts)) - 1))
    parts.append(b"n" * 255)
    assert len(b"/".join(parts)) == 4000
    fd = os.open(root, os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            os.mkdir(part, dir_fd=fd)
            sub = os.open(part, os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(os.open(parts[-1], os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return b"/".join(parts)


def build(root: Path) -> dict[str, tuple[bytes, str]]:
    """Make the hostile tree under `root`; returns case -> (recorded path, expected ftype)."""
    cases: dict[str, tuple[bytes, str]] = {}
    os.mkfifo(root / "fifo")
    cases["fifo"] = (b"/fifo", "p")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "socket"))
    sock.close()
    cases["socket"] = (b"/socket", "s")
    if os.geteuid() == 0:
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "loopdev", 0o660 | stat.S_IFBLK, os.makedev(7, 200))
        cases["char device"] = (b"/null", "c")
        cases["block device"] = (b"/loopdev", "b")
    (root / "loop").mkdir()
    os.symlink("b", root / "loop" / "a")
    os.symlink("a", root / "loop" / "b")
    os.symlink("self", root / "loop" / "self")
    os.symlink("..", root / "loop" / "up")
    os.symlink("/", root / "loop" / "slash")
    for link in ("a", "b", "self", "up", "slash"):
        cases[f"symlink loop {link}"] = (b"/loop/" + link.encode(), "l")
    cases["255-byte name in a 4,000-byte path"] = (b"/" + _long_path(root), "f")
    big = root / "big"
    big.mkdir()
    for n in range(BIG_DIR):
        os.close(os.open(big / f"{n:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    cases["10,000 entries: first"] = (b"/big/00000", "f")
    cases["10,000 entries: last"] = (b"/big/%05d" % (BIG_DIR - 1), "f")
    deep = bytes(root) + b"/deep"
    os.makedirs(deep + b"/d" * (DEPTH - 1))
    Path(os.fsdecode(deep + b"/d" * (DEPTH - 1) + b"/bottom")).write_text("deep\n")
    cases["500 levels"] = (b"/deep" + b"/d" * (DEPTH - 1) + b"/bottom", "f")
    (root / "odd").mkdir()
    for label, name in ODD_NAMES.items():
        (root / "odd" / os.fsdecode(name)).write_bytes(b"odd\n")
        cases[f"name with {label}"] = (b"/odd/" + name, "f")
    return cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, tuple[bytes, str]]]]:
    root = tmp_path_factory.mktemp("hostile")
    yield root, build(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def scanned(hostile: tuple[Path, dict[str, tuple[bytes, str]]]) -> Scanned:
    root, _ = hostile
    warnings: list[ScanWarning] = []
    # One worker: every open happens on this thread, where SIGALRM interrupts a blocked one (a
    # hang inside a pool thread would outlive the alarm). The CLI tests below run the default
    # thread pool, bounded by their subprocess timeout.
    with time_limit(120, "scanning the hostile tree"):
        entries = list(scan(parse_text(f"/ {RULE}\n").ruleset, root_prefix=bytes(root), workers=1,
                            on_warning=warnings.append))
    return Scanned(root, {e.path: e for e in entries}, [e.path for e in entries], warnings)


CASE_NAMES = [
    "fifo", "socket", "char device", "block device", *(f"symlink loop {n}" for n in
                                                      ("a", "b", "self", "up", "slash")),
    "255-byte name in a 4,000-byte path", "10,000 entries: first", "10,000 entries: last",
    "500 levels", *(f"name with {label}" for label in ODD_NAMES),
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_every_hostile_case_is_recorded_with_its_type(
    case: str, hostile: tuple[Path, dict[str, tuple[bytes, str]]], scanned: Scanned,
) -> None:
    cases = hostile[1]
    if case not in cases:
        pytest.skip("device nodes need root (runs as root in CI)")
    path, ftype = cases[case]
    entry = scanned.found.get(path)
    assert entry is not None, f"{case}: {path[:80]!r} missing; warnings: {scanned.warned(path)}"
    assert entry.ftype == ftype
    if ftype == "f":
        assert entry.values.get("sha256") is not None, scanned.warned(path)
    else:  # special files are never opened, so never hashed
        assert "sha256" not in entry.values or entry.values["sha256"] is None


def test_the_scan_is_complete_ordered_and_without_stray_warnings(scanned: Scanned) -> None:
    assert sum(p.startswith(b"/big/") for p in scanned.found) == BIG_DIR
    assert sum(p.startswith(b"/deep") for p in scanned.found) == DEPTH + 1
    assert scanned.order == sorted(scanned.order, key=sort_key)
    odd = {b"/odd/" + name for name in ODD_NAMES.values()}
    stray = [w for w in scanned.warnings if w.path not in odd]
    assert stray == []


@pytest.mark.parametrize("label", list(ODD_NAMES))
def test_odd_names_are_warned_about_by_path(label: str, scanned: Scanned) -> None:
    name = ODD_NAMES[label]
    message = scanned.warned(b"/odd/" + name)
    if re.search(rb"[\x00-\x1f\x7f]", name):
        assert "control characters" in message or "newline" in message
    elif label == "invalid UTF-8":
        assert "not valid UTF-8" in message
    else:
        assert message == ""


@pytest.mark.parametrize("label", list(ODD_NAMES))
def test_report_escapes_control_bytes_in_names(label: str) -> None:
    shown = escape_path(b"/odd/" + ODD_NAMES[label]).encode("utf-8", "surrogateescape")
    assert re.search(rb"[\x00-\x1f\x7f]", shown) is None
    assert b"\n" not in shown and b"\x1b" not in shown


def test_report_escapes_c1_control_introducers() -> None:
    for name in (b"/odd/\x9b2J", "/odd/\u009b2J".encode()):
        shown = escape_path(name).encode("utf-8", "surrogateescape")
        assert b"\x9b" not in shown, shown


# --- the admin's commands on the hostile tree -----------------------------------------------


def _aidepy(conf: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AIDEPY, *args, "-c", str(conf)],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)


def test_init_and_check_report_hostile_names_escaped_and_never_block(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "fifo")
    os.symlink("loop", tree / "loop")
    (tree / "plain").write_text("x\n")
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"state_dir={tmp_path}/state\ndatabase_in=file:{tmp_path}/db\ndatabase_out=file:{tmp_path}/db.new\n"
                    f"report_level=list_entries\n{tree} {RULE}\n")
    backdate(tree)
    init = _aidepy(conf, "init")
    assert init.returncode == 0, init.stderr
    (tmp_path / "db.new").replace(tmp_path / "db")
    for name in ODD_NAMES.values():
        (tree / os.fsdecode(name)).write_bytes(b"new\n")
    check = _aidepy(conf, "check")
    assert check.returncode == 5, check.stderr  # entries added, so the directory changed
    for stream in (check.stdout, check.stderr):
        raw = re.findall(rb"[\x00-\x08\x0b-\x1f\x7f]", stream)  # tabs and newlines: the layout's
        assert raw == [], f"raw control bytes {raw} in {stream[:2000]!r}"
        assert b"tab\there" not in stream and b"new\nline" not in stream
    for name in ODD_NAMES.values():
        assert escape_path(bytes(tree) + b"/" + name).encode("utf-8", "surrogateescape") in check.stdout
    assert b"\\033[2J\\033[31mred" in check.stdout
    assert b"\nSubject:" not in check.stdout and b"\nBcc:" not in check.stdout
    as_json = _aidepy(conf, "check", "--json")
    assert as_json.returncode == 5, as_json.stderr
    assert re.fullmatch(rb"[\x20-\x7e\n]*", as_json.stdout), "JSON output is not plain printable ASCII"
    assert b"\\u001b[2J\\u001b[31mred" in as_json.stdout


def test_hostile_link_targets_and_xattr_values_are_escaped_in_details(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink("harmless", tree / "link")
    (tree / "tagged").write_text("t\n")
    os.setxattr(tree / "tagged", "user.note", b"plain")
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"state_dir={tmp_path}/state\ndatabase_in=file:{tmp_path}/db\ndatabase_out=file:{tmp_path}/db.new\n"
                    f"{tree} p+l+xattrs\n")
    assert _aidepy(conf, "init").returncode == 0
    (tmp_path / "db.new").replace(tmp_path / "db")
    (tree / "link").unlink()
    os.symlink("\x1b[2J\nBcc: evil@example\r\x7f", tree / "link")
    os.setxattr(tree / "tagged", "user.note", b"\x1b]0;owned\x07\nSubject: x")
    check = _aidepy(conf, "check")
    assert check.returncode == 4, check.stderr
    raw = re.findall(rb"[\x00-\x08\x0b-\x1f\x7f]", check.stdout + check.stderr)
    assert raw == [], check.stdout[-3000:]
    assert b"\\033[2J\\012Bcc: evil@example" in check.stdout
    assert not any(line.lstrip().startswith((b"Bcc:", b"Subject:")) for line in check.stdout.splitlines())


def test_sparse_10_gib_file_is_hashed_without_allocating(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        os.truncate(f.fileno(), 10 << 30)
    blocks = os.stat(sparse).st_blocks
    warnings: list[ScanWarning] = []
    with time_limit(120, "hashing a sparse 10 GiB file"):
        found = {e.path: e for e in scan(parse_text("/ p+s+xxh64\n").ruleset, root_prefix=bytes(tmp_path),
                                         workers=1, on_warning=warnings.append)}
    entry = found[b"/sparse"]
    assert entry.values["s"] == 10 << 30
    assert isinstance(entry.values["xxh64"], bytes) and len(entry.values["xxh64"]) == 8
    assert warnings == []
    assert os.stat(sparse).st_blocks == blocks  # reading allocated nothing


def _scan_as_nobody(tree: Path) -> tuple[set[bytes], list[ScanWarning]]:
    """Scan `tree` as `nobody`: paths and warnings."""
    def work() -> tuple[set[bytes], list[ScanWarning]]:
        warnings: list[ScanWarning] = []
        paths = {e.path for e in scan(parse_text(f"/ {RULE}\n").ruleset, root_prefix=bytes(tree),
                                      workers=1, on_warning=warnings.append)}
        return paths, warnings
    return as_nobody(work)


@requires_root
def test_unreadable_file_and_directory_are_warnings_naming_them() -> None:
    tree = Path(tempfile.mkdtemp(prefix="aidepy-hostile-"))  # outside pytest's 0700 directory
    try:
        tree.chmod(0o755)
        (tree / "secret").write_text("s\n")
        (tree / "secret").chmod(0)
        (tree / "vault").mkdir()
        (tree / "vault" / "inside").write_text("i\n")
        (tree / "vault").chmod(0)
        os.mkfifo(tree / "fifo", 0o600)
        paths, warnings = _scan_as_nobody(tree)
    finally:
        shutil.rmtree(tree)
    assert {b"/secret", b"/vault", b"/fifo"} <= paths
    assert b"/vault/inside" not in paths
    by_path = {w.path: w.message for w in warnings}
    assert "Permission denied" in by_path[b"/secret"]
    assert "cannot read directory" in by_path[b"/vault"]
    assert b"/fifo" not in by_path


@requires_root
def test_mount_point_in_the_tree_is_scanned_through_with_cli(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "aidepy-hostile", str(tree / "mnt")],
                   check=True)
    try:
        (tree / "mnt" / "on-tmpfs").write_text("t\n")
        conf = tmp_path / "aidepy.conf"
        conf.write_text(f"database_out=file:{tmp_path}/db.new\n{tree} {RULE}\n")
        init = _aidepy(conf, "init")
    finally:
        subprocess.run(["umount", str(tree / "mnt")], check=True)
    assert init.returncode == 0, init.stderr
    from aidepy.db.file import open_database

    with open_database(tmp_path / "db.new", None) as db:
        paths = {e.path for e in db.entries()}
    assert bytes(tree / "mnt" / "on-tmpfs") in paths
