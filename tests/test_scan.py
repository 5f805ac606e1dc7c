"""The scanner on trees the tests build: names, links, special files, races, order, parallelism."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import as_nobody

from aidepy.attributes import BY_NAME, SUPPORTED_HASHES
from aidepy.config.evaluate import parse_text
from aidepy.entry import Entry, sort_key
from aidepy.pcre import Regex
from aidepy.scan import collect as collect_module
from aidepy.scan import walk as scan_module
from aidepy.scan.collect import Job, collect, make_plan
from aidepy.scan.forkpool import WorkerError
from aidepy.scan.walk import ScanWarning, Selection, scan
from aidepy.selection import Rule, RuleSet

ALL = "p+i+n+u+g+s+b+m+c+a+l+acl+xattrs+selinux+e2fsattrs+caps+ftype+sha256+md5"


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """Every scanner test ends within 60 s: a blocked open (a fifo) fails the test, not the run."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("scanner test took longer than 60 s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def rules(text: str) -> RuleSet:
    return parse_text(text).ruleset


def run(root: Path, text: str = f"/ {ALL}\n", *, workers: int | None = 2,
        limit: Regex | None = None, ruleset: Selection | None = None
        ) -> tuple[dict[bytes, Entry], list[ScanWarning]]:
    """Scan `root` (as the root prefix): entries by path, and the warnings."""
    warnings: list[ScanWarning] = []
    rs = ruleset if ruleset is not None else rules(text)
    entries = list(scan(rs, root_prefix=bytes(root), limit=limit, workers=workers,
                        on_warning=warnings.append))
    found = {e.path: e for e in entries}
    assert len(found) == len(entries), "a path was yielded twice"
    return found, warnings


def no_warning(warning: ScanWarning) -> None:
    pytest.fail(f"unexpected warning: {warning}")


def messages(warnings: list[ScanWarning], path: bytes) -> str:
    return " | ".join(w.message for w in warnings if w.path == path)


class Recording:
    """A RuleSet that remembers every path it was asked about and can act when asked."""

    def __init__(self, inner: RuleSet, on_match: Callable[[bytes], None] | None = None) -> None:
        self.inner, self.on_match = inner, on_match
        self.asked: list[bytes] = []

    def match(self, path: bytes, ftype: str) -> Rule | None:
        self.asked.append(path)
        if self.on_match is not None:
            self.on_match(path)
        return self.inner.match(path, ftype)

    def should_descend(self, path: bytes) -> bool:
        return self.inner.should_descend(path)


def test_odd_names_are_recorded_byte_for_byte_and_warned_about(tmp_path: Path) -> None:
    names = [b"new\nline", b"tab\there", b"latin1-\xe9t\xe9", b"100%", b"it's \"quoted\"",
             b"with space", b"esc\x1b[31mred", "caf\u00e9".encode()]
    for name in names:
        (tmp_path / os.fsdecode(name)).write_bytes(name)
    found, warnings = run(tmp_path)
    for name in names:
        entry = found[b"/" + name]
        assert entry.values["sha256"] == hashlib.sha256(name).digest()
    assert "not valid UTF-8" in messages(warnings, b"/latin1-\xe9t\xe9")
    assert "newline" in messages(warnings, b"/new\nline")
    assert "control characters" in messages(warnings, b"/esc\x1b[31mred")
    assert messages(warnings, "/caf\u00e9".encode()) == ""
    assert messages(warnings, b"/with space") == ""


def test_hardlinks_share_inode_and_count(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("same")
    os.link(tmp_path / "one", tmp_path / "two")
    found, _ = run(tmp_path)
    one, two = found[b"/one"], found[b"/two"]
    assert one.values["i"] == two.values["i"]
    assert one.values["n"] == two.values["n"] == 2
    assert one.values["md5"] == two.values["md5"] == hashlib.md5(b"same").digest()


def test_symlinks_are_recorded_never_followed(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inside").write_text("x")
    (tmp_path / "target").write_text("content")
    os.symlink("target", tmp_path / "to_file")
    os.symlink("dir", tmp_path / "to_dir")
    os.symlink("nowhere", tmp_path / "dangling")
    os.symlink("loop", tmp_path / "loop")
    os.symlink(".", tmp_path / "dir" / "self")
    found, warnings = run(tmp_path)
    for name, target in [(b"to_file", b"target"), (b"to_dir", b"dir"), (b"dangling", b"nowhere"),
                         (b"loop", b"loop"), (b"dir/self", b".")]:
        entry = found[b"/" + name]
        assert entry.ftype == "l"
        assert entry.values["l"] == target
        assert entry.values["s"] == len(target)
        assert "sha256" not in entry.attrs and "acl" not in entry.attrs
    assert not any(p.startswith((b"/to_dir/", b"/dir/self/")) for p in found)
    assert warnings == []


def test_fifos_sockets_and_devices_are_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        if os.geteuid() == 0:
            os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        found, warnings = run(tmp_path)
    assert found[b"/fifo"].ftype == "p"
    assert found[b"/sock"].ftype == "s"
    for entry in (found[b"/fifo"], found[b"/sock"], found.get(b"/null")):
        if entry is None:
            continue
        assert not entry.attrs & {"sha256", "md5", "e2fsattrs"}
        assert entry.values["p"] is not None and entry.values["i"] is not None
    if os.geteuid() == 0:
        assert found[b"/null"].ftype == "c"
    assert warnings == []


def test_excluded_subtree_is_never_entered(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "file").write_text("k")
    (tmp_path / "excluded" / "deep").mkdir(parents=True)
    (tmp_path / "excluded" / "deep" / "file").write_text("e")
    rs = Recording(rules(f"/ {ALL}\n!/excluded\n"))
    found, _ = run(tmp_path, ruleset=rs, workers=1)  # one process: `asked` sees every question
    assert b"/kept/file" in found
    assert not any(p.startswith(b"/excluded") for p in found)
    assert b"/kept/file" in rs.asked and b"/excluded" in rs.asked
    assert not any(p.startswith(b"/excluded/") for p in rs.asked)


def test_limit_selects_and_prunes(tmp_path: Path) -> None:
    for d in ("etc/ssh", "usr/lib", "opt/7", "opt/x", "srv/1a"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "f").write_text(d)
    rs = Recording(rules(f"/ {ALL}\n"))
    found, _ = run(tmp_path, ruleset=rs, limit=Regex(rb"/etc/ss"), workers=1)
    assert sorted(found) == [b"/etc/ssh", b"/etc/ssh/f"]
    assert b"/etc/ssh/f" in rs.asked and b"/usr/lib" not in rs.asked
    # AIDE's engine: POSIX classes and alternatives, and a directory is entered only where the
    # pattern can still match below it (PCRE2's partial match), not by a guess at its prefix
    rs = Recording(rules(f"/ {ALL}\n"))
    found, _ = run(tmp_path, ruleset=rs, limit=Regex(rb"/(etc/ssh/|opt/[[:digit:]]+$)"), workers=1)
    assert sorted(found) == [b"/etc/ssh/f", b"/opt/7"]
    assert b"/opt/7" in rs.asked and b"/opt/x" not in rs.asked and b"/etc/ssh" not in found
    assert not any(p.startswith((b"/opt/7/", b"/opt/x/", b"/usr/", b"/srv/")) for p in rs.asked)


def test_hashes_equal_hashlib_over_the_same_bytes(tmp_path: Path) -> None:
    sizes = [0, 1, 65535, 65536, 65537, 3 * 65536, (1 << 20) + 3]
    blobs = {f"f{n}": os.urandom(n) for n in sizes}
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
    supported = sorted(SUPPORTED_HASHES)
    found, warnings = run(tmp_path, f"/ p+{'+'.join(supported)}\n")
    assert warnings == []
    for name, data in blobs.items():
        entry = found[f"/{name}".encode()]
        for h in supported:
            new = BY_NAME[h].new_hash
            assert new is not None
            expected = new()
            expected.update(data)
            assert entry.values[h] == expected.digest(), (name, h)


def test_sparse_large_file_is_hashed_correctly(tmp_path: Path) -> None:
    size = 128 << 20
    with open(tmp_path / "sparse", "wb") as f:
        f.seek(size - 5)
        f.write(b"tail!")
    found, warnings = run(tmp_path, "/ p+s+sha256\n")
    expected = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range((size - 5) >> 20):
        expected.update(zeros)
    expected.update(bytes((size - 5) % (1 << 20)))
    expected.update(b"tail!")
    assert found[b"/sparse"].values == {"p": found[b"/sparse"].values["p"], "s": size,
                                        "sha256": expected.digest()}
    assert warnings == []


def test_order_is_canonical_and_independent_of_workers(tmp_path: Path) -> None:
    for d in ("a", "a/z", "B", "a-b", "a.b/c"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
    for i in range(300):
        (tmp_path / ("a" if i % 2 else "a.b/c") / f"file{i}").write_bytes(os.urandom(i * 37))
    (tmp_path / "a-b" / "x\xff".encode("latin-1").decode("utf-8", "surrogateescape")).write_text("y")
    results = []
    for workers in (1, 2, 7):
        warnings: list[ScanWarning] = []
        entries = list(scan(rules(f"/ {ALL}\n"), root_prefix=bytes(tmp_path), workers=workers,
                            on_warning=warnings.append))
        results.append((entries, warnings))
    entries = results[0][0]
    assert [e.path for e in entries] == sorted((e.path for e in entries), key=sort_key)
    assert [e.path for e in entries][:4] == [b"/", b"/B", b"/a", b"/a/file1"]
    assert results[0] == results[1] == results[2]


def test_output_does_not_depend_on_how_the_work_is_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # tiny parts and budgets: big directories split in parts, subtrees entered in place or sent
    # as tasks, more tasks than fit ahead; every cut must give the same entries and warnings
    for i in range(120):
        d = tmp_path / f"d{i % 5}" / ("deep/" * (i % 4)) / f"s{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(i * 97))
        (d / f"odd\n{i}").write_text("x")
        (tmp_path / f"d{i % 5}" / f"empty{i % 7}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 5}" / f"skipped{i % 3}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 5}" / f"skipped{i % 3}" / f"f{i}").write_text("never read")
    text = f"/ {ALL}\n!/d[0-9]/skipped[0-9]/f\n"  # leaves the skipped directories with nothing
    baseline = run(tmp_path, text, workers=1)
    assert len(baseline[0]) > 250 and len(baseline[1]) == 120  # one warning per odd name
    assert b"/d1/skipped1" in baseline[0] and b"/d1/skipped1/f1" not in baseline[0]
    # SLICE_PARTS: large directories decided a slice at a time, by the process holding them open
    for entries, volume, ahead, depth, parts in ((7, 5000, 1, 2, 1), (1, 1, 2, 1, 2),
                                                 (50, 1 << 20, 3, 0, 1), (3, 1 << 20, 1, 0, 3)):
        monkeypatch.setattr(scan_module, "PART_ENTRIES", entries)
        monkeypatch.setattr(scan_module, "PART_BYTES", volume)
        monkeypatch.setattr(scan_module, "AHEAD_PER_WORKER", ahead)
        monkeypatch.setattr(scan_module, "MAX_DEPTH_IN_PLACE", depth)
        monkeypatch.setattr(scan_module, "SLICE_PARTS", parts)
        for workers in (1, 2, 3):
            found, warnings = run(tmp_path, text, workers=workers)
            assert list(found) == list(baseline[0]) and found == baseline[0]
            assert warnings == baseline[1]


def test_a_failing_worker_ends_the_scan_with_its_reason(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)

    def fail(path: bytes) -> None:
        if path == b"/b/f":
            raise ValueError("rule engine broke on /b/f")
    with pytest.raises(WorkerError, match="rule engine broke on /b/f"):
        run(tmp_path, ruleset=Recording(rules(f"/ {ALL}\n"), fail))

    def die(path: bytes) -> None:
        if path == b"/c/f":
            os._exit(3)
    with pytest.raises(WorkerError, match="ended unexpectedly"):
        run(tmp_path, ruleset=Recording(rules(f"/ {ALL}\n"), die))


def test_unreadable_file_and_directory_become_warnings(tmp_path: Path) -> None:
    # root reads everything: as root, the scan runs in a child that became `nobody`, on a tree
    # outside pytest's private (0700) temporary directory
    tree = Path(tempfile.mkdtemp(prefix="aidepy-unreadable-")) if os.geteuid() == 0 else tmp_path
    try:
        os.chmod(tree, 0o755)
        (tree / "secret").write_text("s")
        (tree / "closed").mkdir()
        (tree / "closed" / "hidden").write_text("h")
        os.chmod(tree / "secret", 0)
        os.chmod(tree / "closed", 0)
        found, warnings = as_nobody(lambda: run(tree, workers=2)) if os.geteuid() == 0 else run(tree)
    finally:
        if tree != tmp_path:
            shutil.rmtree(tree)
    assert found[b"/secret"].values["sha256"] is None
    assert found[b"/secret"].values["s"] == 1
    assert "Permission denied" in messages(warnings, b"/secret")
    assert found[b"/closed"].values["p"] == stat.S_IFDIR
    assert "cannot read directory" in messages(warnings, b"/closed")
    assert b"/closed/hidden" not in found


# --- races: the world changes between readdir, lstat, open and read -----------------------------

def _job(path: Path, recorded: bytes, attrs: str = "p+s+m+sha256+e2fsattrs") -> Job:
    st = os.lstat(path)
    ftype = "f" if stat.S_ISREG(st.st_mode) else "d"
    return Job(bytes(path), recorded, ftype, make_plan(frozenset(attrs.split("+")), ftype), st)


def _collect(job: Job) -> tuple[Entry, list[str]]:
    attrs, values, warnings = collect(job, memoryview(bytearray(1 << 16)))
    return Entry(job.path, job.ftype, attrs, values), warnings


def test_file_deleted_during_the_scan(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)

    def delete_b(path: bytes) -> None:  # asked about /b after its lstat, before its open
        if path == b"/b" and (tmp_path / "b").exists():
            (tmp_path / "b").unlink()
    found, warnings = run(tmp_path, ruleset=Recording(rules(f"/ {ALL}\n"), delete_b))
    assert found[b"/b"].values["sha256"] is None  # what lstat saw is kept, the rest is missing
    assert found[b"/b"].values["s"] == 1
    assert found[b"/c"].values["sha256"] == hashlib.sha256(b"c").digest()
    assert "vanished" in messages(warnings, b"/b")


@pytest.mark.parametrize(("now", "grew"), [(b"0123456789abcde", True), (b"01234", False)])
def test_a_small_file_changing_between_fstat_and_read_gets_no_hash(tmp_path: Path, now: bytes,
                                                                   grew: bool) -> None:
    # the one-read path for small files falls back to the full loop, which names the change
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    job = _job(path, b"/f", "p+s+sha256+md5")
    path.write_bytes(now)
    fd = os.open(path, os.O_RDONLY)
    warnings: list[str] = []
    try:
        digests = collect_module._hash(fd, job, memoryview(bytearray(1 << 16)), warnings)
    finally:
        os.close(fd)
    assert digests == {"md5": None, "sha256": None}
    read = 11 if grew else 5  # a grown file is read to one byte past what lstat said
    assert warnings == [f"{'grew' if grew else 'shrank'} while being hashed ({read} bytes read, "
                        "lstat said 10)"]


def test_file_deleted_between_lstat_and_open(tmp_path: Path) -> None:
    (tmp_path / "gone").write_text("x")
    job = _job(tmp_path / "gone", b"/gone")
    (tmp_path / "gone").unlink()
    entry, warnings = _collect(job)
    assert entry.values["sha256"] is None and entry.values["s"] == 1
    assert any("vanished" in w for w in warnings)


def test_file_replaced_between_lstat_and_open_is_caught_by_fstat(tmp_path: Path) -> None:
    (tmp_path / "victim").write_text("original")
    job = _job(tmp_path / "victim", b"/victim")
    (tmp_path / "evil").write_text("original")
    os.replace(tmp_path / "evil", tmp_path / "victim")
    entry, warnings = _collect(job)
    assert entry.values["sha256"] is None
    assert any("fstat shows another file" in w for w in warnings)


def test_file_replaced_by_symlink_or_fifo_between_lstat_and_open(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("do not follow")
    for make in (lambda p: os.symlink(tmp_path / "secret", p), os.mkfifo):
        victim = tmp_path / "victim"
        victim.write_text("x")
        job = _job(victim, b"/victim")
        victim.unlink()
        make(victim)
        entry, warnings = _collect(job)
        assert entry.values["sha256"] is None
        assert warnings and "replaced" in warnings[0]
        victim.unlink()


def test_file_changed_between_lstat_and_open(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("line\n")
    job = _job(log, b"/log")
    with open(log, "a") as f:
        f.write("more\n")
    entry, warnings = _collect(job)
    assert entry.values["sha256"] is None
    assert any("changed between lstat and open" in w for w in warnings)
    # with `growing`, the bytes lstat saw are hashed and growth is fine
    grown = Job(job.fs_path, job.path, "f", make_plan(frozenset({"s", "sha256", "growing"}), "f"), job.st)
    entry, warnings = _collect(grown)
    assert entry.values["sha256"] == hashlib.sha256(b"line\n").digest()
    assert warnings == []


def test_deep_nesting_long_names_and_a_big_directory(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(500):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "bottom").write_text("b")
    longname = "n" * 255
    (tmp_path / longname).write_text("l")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(10_000):
        (many / f"{i:05}").touch()
    found, warnings = run(tmp_path, "/ p+i+sha256\n")
    assert b"/" + b"d/" * 500 + b"bottom" in found
    assert b"/" + longname.encode() in found
    assert sum(1 for p in found if p.startswith(b"/many/")) == 10_000
    assert warnings == []


def big_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: int, part: int,
                  slice_parts: int) -> Path:
    """`tmp_path`/big with `files` files f000, f001, ... (content: the number), scanned in parts
    of `part` entries, `slice_parts` parts a slice."""
    monkeypatch.setattr(scan_module, "PART_ENTRIES", part)
    monkeypatch.setattr(scan_module, "SLICE_PARTS", slice_parts)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(files):
        (big / f"f{i:03}").write_text(str(i))
    return big


def test_a_large_directory_is_decided_a_slice_at_a_time(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # memory must not grow with the largest directory: only its names are held all at once,
    # its lstat results and decisions one slice at a time, as the output gets there
    big_directory(tmp_path, monkeypatch, 500, 10, 3)
    rs = Recording(rules(f"/ {ALL}\n"))
    paths = []
    decided_ahead = 0
    for entry in scan(rs, root_prefix=bytes(tmp_path), workers=1, on_warning=no_warning):
        paths.append(entry.path)
        decided = sum(1 for p in rs.asked if p.startswith(b"/big/"))
        decided_ahead = max(decided_ahead, decided - (len(paths) - 2))  # entries past / and /big
    assert paths == [b"/", b"/big", *(f"/big/f{i:03}".encode() for i in range(500))]
    assert decided_ahead <= 10 * 3  # one slice: the whole directory was decided before its first entry


def test_a_scan_ended_in_a_sliced_directory_leaves_it_closed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # one process: the caller itself holds the directory open between slices
    big_directory(tmp_path, monkeypatch, 200, 10, 2)
    before = sorted(os.listdir("/proc/self/fd"))
    entries = scan(rules(f"/ {ALL}\n"), root_prefix=bytes(tmp_path), workers=1, on_warning=no_warning)
    assert [next(entries).path for _ in range(50)][-1] == b"/big/f047"
    assert len(os.listdir("/proc/self/fd")) > len(before)  # /big, between two slices
    entries.close()  # the consumer stops early
    assert sorted(os.listdir("/proc/self/fd")) == before

    def fail(path: bytes) -> None:
        if path == b"/big/f150":
            raise ValueError("rule engine broke")
    with pytest.raises(ValueError, match="rule engine broke"):
        run(tmp_path, ruleset=Recording(rules(f"/ {ALL}\n"), fail), workers=1)
    assert sorted(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_directory_changing_while_it_is_sliced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 workers: int) -> None:
    # between the listing of a large directory and the lstat of a name in a later slice, names
    # vanish, change type or appear: warnings or skipped, as anywhere else, never a crash
    big = big_directory(tmp_path, monkeypatch, 100, 8, 1)
    (tmp_path / "secret").write_text("s")

    def change(path: bytes) -> None:  # in whichever process decides /big, once
        if path == b"/big/f010" and (big / "f050").exists():
            (big / "f050").unlink()
            (big / "f060").unlink()
            os.symlink(tmp_path / "secret", big / "f060")
            (big / "f070").unlink()
            (big / "f070").mkdir()
            (big / "f070" / "inside").write_text("i")
            (big / "f080").unlink()
            os.mkfifo(big / "f080")
            (big / "f050a").write_text("new")
    found, warnings = run(tmp_path, ruleset=Recording(rules(f"/ {ALL}\n"), change), workers=workers)
    assert warnings == [ScanWarning(b"/big/f050", "vanished before it could be examined")]
    assert b"/big/f050" not in found and b"/big/f050a" not in found  # appeared after the listing
    assert found[b"/big/f060"].ftype == "l" and found[b"/big/f060"].values["l"] == bytes(tmp_path / "secret")
    assert found[b"/big/f070"].ftype == "d" and b"/big/f070/inside" in found
    assert found[b"/big/f080"].ftype == "p"
    assert found[b"/big/f099"].values["sha256"] == hashlib.sha256(b"99").digest()
    assert len([p for p in found if p.startswith(b"/big/")]) == 99 + 1


def test_directory_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_text("s")
    (tmp_path / "dir").mkdir()

    def swap(path: bytes) -> None:
        if path == b"/dir":
            (tmp_path / "dir").rmdir()
            os.symlink(tmp_path / "elsewhere", tmp_path / "dir")
    found, warnings = run(tmp_path, "/ p+sha256\n!/elsewhere\n",
                          ruleset=Recording(rules("/ p+sha256\n!/elsewhere\n"), swap))
    assert found[b"/dir"].ftype == "d"  # as lstat saw it
    assert not any(p.startswith(b"/dir/") for p in found)
    assert "replaced" in messages(warnings, b"/dir")


def test_a_4000_byte_path_is_scanned_and_deeper_ones_are_warnings(tmp_path: Path) -> None:
    name = "n" * 199
    depth = (4000 - len("/file")) // (len(name) + 1)
    rest = 4000 - len("/file") - depth * (len(name) + 1)
    dirs = [name] * depth + ["x" * (rest - 1)]
    deep = tmp_path.joinpath(*dirs)
    deep.mkdir(parents=True)
    (deep / "file").write_text("deep")
    # beyond PATH_MAX with relative mkdirs: the scanner cannot name it and must say so
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("toofar", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    finally:
        os.close(fd)
    found, warnings = run(tmp_path, "/ p+sha256\n")
    path = b"/" + "/".join([*dirs, "file"]).encode()
    assert len(path) == 4000
    assert found[path].values["sha256"] == hashlib.sha256(b"deep").digest()
    assert any("too long" in w.message for w in warnings)
    assert not any(p.endswith(b"/toofar") for p in found)
    # shutil.rmtree cannot name the deepest levels either; rm works relative to open directories
    subprocess.run(["rm", "-rf", str(tmp_path / name)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root (runs as root in CI)")
def test_a_mount_point_inside_the_tree_is_crossed_like_aide(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "aidepy-test", str(tmp_path / "mnt")],
                   check=True)
    try:
        (tmp_path / "mnt" / "inside").write_text("on tmpfs")
        found, warnings = run(tmp_path)
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)
    inside = found[b"/mnt/inside"]
    assert inside.values["sha256"] == hashlib.sha256(b"on tmpfs").digest()
    assert warnings == []


def test_scan_leaves_atimes_alone(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("read me")
    old = 1_000_000_000 * 10**9
    for p in (tmp_path / "dir" / "file", tmp_path / "dir"):
        os.utime(p, ns=(old, os.stat(p).st_mtime_ns))  # relatime would update an atime this old
    found, warnings = run(tmp_path, "/ a+sha256+e2fsattrs+xattrs\n")
    assert found[b"/dir/file"].values["sha256"] == hashlib.sha256(b"read me").digest()
    assert os.stat(tmp_path / "dir" / "file").st_atime_ns == old
    assert os.stat(tmp_path / "dir").st_atime_ns == old
    assert found[b"/dir/file"].values["a"] == old
    assert warnings == []


def test_times_are_recorded_to_the_second_as_aide_records_them(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.utime(tmp_path / "f", ns=(1_700_000_000_123_456_789, 1_600_000_000_987_654_321))
    found, _ = run(tmp_path, "/ a+m+c+s\n")
    values = found[b"/f"].values
    assert (values["a"], values["m"]) == (1_700_000_000 * 10**9, 1_600_000_000 * 10**9)
    assert values["c"] == os.lstat(tmp_path / "f").st_ctime_ns // 10**9 * 10**9
    assert values["s"] == 1
    old = -1_500_000_001  # before 1970: the second that holds it, as the kernel's tv_sec
    os.utime(tmp_path / "f", ns=(old, old))
    assert run(tmp_path, "/ m\n")[0][b"/f"].values["m"] == -2 * 10**9


def test_database_bytes_do_not_depend_on_the_number_of_workers(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from aidepy.db.file import write_database
    out = tmp_path_factory.mktemp("databases")  # outside the scanned tree
    for i in range(400):
        d = tmp_path / f"d{i % 7}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(i * 311))
    os.mkfifo(tmp_path / "fifo")
    os.symlink("d1/f1", tmp_path / "link")
    # readlink updates a symlink's atime (relatime), whatever the flags: a first scan settles it
    assert sum(1 for _ in scan(rules(f"/ {ALL}\n"), root_prefix=bytes(tmp_path), on_warning=print)) > 400
    images = set()
    for workers in (1, 3, 8):
        entries = scan(rules(f"/ {ALL}+sha512+xxh128\n"), root_prefix=bytes(tmp_path), workers=workers,
                       on_warning=lambda w: None)
        write_database(out / f"{workers}.db", entries, host="h", rules_digest=bytes(32), generation=1,
                       signing_key=None, created=1_800_000_000)
        images.add((out / f"{workers}.db").read_bytes())
    assert len(images) == 1


def test_size_and_inode_are_kept_for_S_growing_and_I(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("12345")
    (tmp_path / "moved").write_text("m")
    found, _ = run(tmp_path, "/log$ p+growing+sha256\n/moved$ p+I\n/ p+S\n")
    assert found[b"/moved"].values["i"] == os.lstat(tmp_path / "moved").st_ino
    assert found[b"/moved"].attrs == {"p", "I"}
    assert found[b"/"].values["s"] == os.lstat(tmp_path).st_size and "s" not in found[b"/"].attrs
    assert found[b"/log"].values["s"] == 5 and found[b"/log"].attrs == {"p", "growing", "sha256"}


def test_file_growing_while_hashed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(bytes(32 << 20))
    stop = threading.Event()

    def append() -> None:
        with open(log, "ab", buffering=0) as f:
            while not stop.is_set():
                f.write(b"x" * 512)
    writer = threading.Thread(target=append)
    writer.start()
    try:
        found, warnings = run(tmp_path, "/ p+s+sha256\n")
    finally:
        stop.set()
        writer.join()
    assert found[b"/log"].values["sha256"] is None
    assert any(w in messages(warnings, b"/log") for w in ("changed", "grew"))


def test_killing_the_caller_leaves_no_worker_behind(tmp_path: Path) -> None:
    for i in range(64):
        (tmp_path / f"f{i}").write_bytes(bytes(4 << 20))
    script = (
        "import os, sys, time\n"
        "from aidepy.config.evaluate import parse_text\n"
        "from aidepy.scan.walk import scan\n"
        "for entry in scan(parse_text('/ sha512\\n').ruleset, root_prefix=sys.argv[1].encode(),\n"
        "                  workers=2, on_warning=print):\n"
        "    me = os.getpid()\n"
        "    print(open(f'/proc/{me}/task/{me}/children').read(), flush=True)\n"
        "    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    workers = [int(pid) for pid in child.stdout.readline().split()]
    assert len(workers) == 2
    child.kill()
    child.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
