"""The `content` attribute as the admin meets it: a changed config file's lines in the daily
report and the JSON report, and the files whose content never goes onto the vault."""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import AIDEPY

from aidepy import content
from aidepy.compare import changed_attributes
from aidepy.db.file import open_database, write_database
from aidepy.entry import Entry


@dataclass
class Site:
    tree: Path
    work: Path
    conf: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*AIDEPY, *args, "-c", str(self.conf)], capture_output=True, text=True,
                              errors="surrogateescape", timeout=120)

    def baseline(self) -> subprocess.CompletedProcess[str]:
        """`init`, and the new database becomes the baseline."""
        done = self.run("init")
        assert done.returncode == 0, done.stderr
        (self.work / "db.new").replace(self.work / "db")
        return done

    def stored(self, name: str) -> Entry:
        with open_database(self.work / "db", None) as db:
            return next(e for e in db.entries() if e.path == os.fsencode(self.tree / name))


@pytest.fixture
def site(public_dir: Path) -> Site:
    tree = public_dir / "etc"
    tree.mkdir()
    (tree / "motd").write_text("Welcome to web1.\nMaintenance on Sundays.\n")
    work = public_dir / "work"
    work.mkdir()
    conf = work / "aidepy.conf"
    conf.write_text(f"database_in=file:{work}/db\ndatabase_out=file:{work}/db.new\nstate_dir={work}/state\n"
                    f"{tree} f p+s+sha256+content\n")
    return Site(tree, work, conf)


def test_check_shows_a_changed_config_files_lines(site: Site) -> None:
    site.baseline()
    recorded = content.expand(site.stored("motd").values["content"])
    assert recorded == b"Welcome to web1.\nMaintenance on Sundays.\n"
    (site.tree / "motd").write_text("Welcome to web1.\nMaintenance on Mondays.\n")
    check = site.run("check")
    assert check.returncode == 4, check.stderr
    report = check.stdout
    assert f"File: {site.tree}/motd" in report
    detail = report[report.index(f"File: {site.tree}/motd"):]
    assert " Content   : text, 2 lines, 41 bytes" in detail
    assert "   -Maintenance on Sundays.\n   +Maintenance on Mondays.\n" in detail
    assert "    Welcome to web1.\n" in detail  # context


def test_json_report_carries_the_diff(site: Site) -> None:
    site.baseline()
    (site.tree / "motd").write_text("Welcome to web1.\n")
    doc = json.loads(site.run("check", "--json").stdout)
    [entry] = doc["changed"]
    assert entry["diff"] == ["--- old", "+++ new", "@@ -1,2 +1 @@", " Welcome to web1.",
                             "-Maintenance on Sundays."]
    assert entry["attributes"]["content"] == {"old": "text, 2 lines, 41 bytes",
                                              "new": "text, 1 line, 17 bytes"}


def test_a_file_that_is_not_world_readable_is_refused_with_a_warning(site: Site) -> None:
    shadow = site.tree / "shadow"
    shadow.write_text("root:$y$j9T$secret-hash:20000:0:99999:7:::\n")
    shadow.chmod(0o640)
    init = site.baseline()
    assert f"{shadow}: content not recorded: the file is not world-readable" in init.stdout + init.stderr
    assert site.stored("shadow").values["content"] is None
    assert b"secret-hash" not in _all_values(site)


def test_a_readable_file_in_a_private_directory_is_refused(site: Site) -> None:
    private = site.tree / "ssl" / "private"
    private.mkdir(parents=True)
    private.chmod(0o700)
    (private / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (private / "key.pem").chmod(0o644)
    init = site.baseline()
    assert f"{private}/key.pem: content not recorded: '{private}' is not searchable by others" in init.stdout
    assert site.stored("ssl/private/key.pem").values["content"] is None


def test_files_too_large_are_refused(site: Site) -> None:
    (site.tree / "big").write_bytes(b"a" * (content.MAX_SIZE + 1))
    (site.tree / "noise").write_bytes(os.urandom(content.MAX_STORED + 1024))  # incompressible
    init = site.baseline()
    assert f"{site.tree}/big: content not recorded: {content.MAX_SIZE + 1} bytes, more than" in init.stdout
    assert f"{site.tree}/noise: content not recorded: " in init.stdout
    assert "compressed, more than" in init.stdout
    assert site.stored("big").values["content"] is None and site.stored("noise").values["content"] is None
    assert site.stored("big").values["sha256"] is not None  # the rest of the entry is recorded


def test_odd_names_and_control_characters_are_escaped_in_the_text_and_lossless_in_json(site: Site) -> None:
    odd = os.fsencode(site.tree) + b"/new\nline \xff.conf"
    with open(odd, "wb") as f:
        f.write(b"mode=quiet\n")
    os.chmod(odd, 0o644)
    site.baseline()
    with open(odd, "wb") as f:
        f.write(b"mode=\x1b[2Jloud\n")
    check = site.run("check")
    assert f"File: {site.tree}/new\\012line \udcff.conf" in check.stdout
    assert "   +mode=\\033[2Jloud" in check.stdout and "\x1b" not in check.stdout
    doc = json.loads(site.run("check", "--json").stdout)
    [entry] = doc["changed"]
    assert entry["path"].encode("utf-8", "surrogateescape") == odd
    assert entry["diff"][-1] == "+mode=\x1b[2Jloud"


def test_binary_content_is_named_not_shown(site: Site) -> None:
    (site.tree / "table.bin").write_bytes(b"\0\1\2 old")
    site.baseline()
    (site.tree / "table.bin").write_bytes(b"\0\1\2 new")
    check = site.run("check")
    assert "   binary content differs" in check.stdout and " old\n" not in check.stdout


def test_the_same_content_compressed_otherwise_is_no_change() -> None:
    text = b"PermitRootLogin no\n" * 40
    old = Entry(b"/etc/ssh/sshd_config", "f", frozenset({"content"}), {"content": zlib.compress(text, 1)})
    new = Entry(old.path, "f", old.attrs, {"content": zlib.compress(text, 9)})
    assert old.values["content"] != new.values["content"]
    assert changed_attributes(old, new) == frozenset()
    assert content.diff(old, new) == []


def test_a_long_diff_is_cut_and_counted() -> None:
    old = Entry(b"/etc/hosts", "f", frozenset({"content"}), {"content": zlib.compress(b"")})
    lines = b"".join(b"10.0.0.%d host%d\n" % (i % 250, i) for i in range(2000))
    new = Entry(old.path, "f", old.attrs, {"content": zlib.compress(lines)})
    shown = content.diff(old, new)
    assert len(shown) == content.MAX_DIFF_LINES + 1 and shown[-1] == "... (1503 more lines)"


def test_a_baseline_with_much_content_still_reads_back(tmp_path: Path) -> None:
    # 1,100 values of 64 KiB: more than a block's column may hold, so the writer ends blocks early
    value = os.urandom(content.MAX_STORED)
    entries = [Entry(b"/etc/f%05d" % i, "f", frozenset({"content"}), {"content": value[i:] + value[:i]})
               for i in range(1100)]
    write_database(tmp_path / "db", entries, host="h", rules_digest=b"", generation=1, signing_key=None)
    with open_database(tmp_path / "db", None) as db:
        assert [e.values["content"] for e in db.entries()] == [e.values["content"] for e in entries]


def _all_values(site: Site) -> bytes:
    with open_database(site.work / "db", None) as db:
        return b"".join(content.expand(e.values.get("content")) or b"" for e in db.entries())


def test_config_check_names_content_as_aidepys_own(site: Site) -> None:
    check = site.run("config-check")
    assert check.returncode == 0, check.stderr
    assert "aidepy's own attributes: content (aide does not know them" in check.stdout
