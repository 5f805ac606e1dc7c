"""The status line: drawn on a terminal only, escaped, fitted to the width, erased before the report."""

from __future__ import annotations

import io
import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import AIDEPY

from aidepy.entry import Entry
from aidepy.scan.progress import StatusLine, status_text

ERASE = "\r\x1b[K"


def test_the_line_names_count_time_and_path() -> None:
    assert status_text(12345, 65.9, b"/usr/lib/x", 80) == \
        "aidepy: scanning: 12,345 entries, 1:05  /usr/lib/x"
    assert status_text(1, 0, b"/", 80) == "aidepy: scanning: 1 entry, 0:00  /"


def test_a_long_path_keeps_its_end_and_the_line_never_reaches_the_last_column() -> None:
    path = b"/var/lib/" + b"d" * 200 + b"/the-file-name"
    line = status_text(7, 3, path, 60)
    assert len(line) == 59 and line.endswith("d/the-file-name") and "  .../var" not in line
    assert line.startswith("aidepy: scanning: 7 entries, 0:03  ...ddd")


def test_a_hostile_name_is_escaped() -> None:
    line = status_text(1, 0, b"/tmp/x\x1b[2J\x9b\n", 200)
    assert line.endswith("/tmp/x\\033[2J\\233\\012")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)


def test_wide_characters_count_twice() -> None:
    line = status_text(1, 0, b"/srv/" + "漢字".encode() * 40, 50)
    assert sum(2 if "\u4e00" <= c <= "\u9fff" else 1 for c in line) <= 49


def test_a_narrow_terminal_gets_the_count_without_the_path() -> None:
    assert status_text(5, 0, b"/etc/passwd", 40) == "aidepy: scanning: 5 entries, 0:00"
    assert len(status_text(5, 0, b"/etc/passwd", 20)) == 19


def entries(n: int) -> list[Entry]:
    return [Entry(f"/e{i}".encode(), "f", frozenset(), {}) for i in range(n)]


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real terminal (a pty): the stream to write on and the master side to read it from."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def read_all(master: int) -> str:
    """Everything written to the terminal so far (a pty hands it over in pieces)."""
    data = b""
    while select.select([master], [], [], 0.2)[0]:
        data += os.read(master, 1 << 16)
    return data.decode()


def test_on_a_terminal_the_line_is_redrawn_as_the_clock_says_and_erased_at_the_end(
        terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    ticks = iter([0.0, 0.0, 0.1, 0.25, 0.3, 0.5])  # start, then one reading per entry
    status = StatusLine(stream, clock=lambda: next(ticks))
    assert list(status.track(entries(5))) == entries(5)
    drawn = read_all(master)
    assert drawn.split(ERASE) == ["", "aidepy: scanning: 1 entry, 0:00  /e0",
                                  "aidepy: scanning: 3 entries, 0:00  /e2",
                                  "aidepy: scanning: 5 entries, 0:00  /e4", ""]


def test_clear_erases_a_shown_line_once(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    with StatusLine(stream) as status:
        first = next(status.track(entries(3)))
        assert first == entries(1)[0]
        status.clear()
        status.clear()  # nothing shown: nothing written
    assert read_all(master) == ERASE + "aidepy: scanning: 1 entry, 0:00  /e0" + ERASE


def test_the_context_erases_the_line_when_the_scan_ends_with_an_error(
        terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    with pytest.raises(OSError, match="disk gone"), StatusLine(stream) as status:
        for _ in status.track(entries(3)):
            raise OSError("disk gone")
    assert read_all(master).endswith(ERASE)


def test_off_a_terminal_nothing_is_written() -> None:
    out = io.StringIO()
    with StatusLine(out) as status:
        assert list(status.track(entries(3))) == entries(3)
    assert out.getvalue() == ""


def write_config(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(20):
        (tree / f"file{i}").write_text(f"{i}\n")
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"state_dir={tmp_path}/state\ndatabase_out=file:{tmp_path}/db\ndatabase_in=file:{tmp_path}/db\n"
                    f"signing_key={tmp_path}/none\n{tree} p+s+sha256\n")
    return conf


def test_init_at_a_terminal_shows_the_line_and_erases_it_before_the_report(tmp_path: Path) -> None:
    conf = write_config(tmp_path)
    child = pexpect.spawn(AIDEPY[0], [*AIDEPY[1:], "init", "-c", str(conf)],
                          env={**os.environ, "TERM": "xterm"}, encoding="utf-8", timeout=60,
                          dimensions=(24, 100))
    child.expect(pexpect.EOF)
    child.close()
    out = child.before
    assert child.exitstatus == 0, out
    assert "aidepy: scanning: 1 entry, 0:00" in out
    shown, _, report = out.rpartition(ERASE)
    assert "scanning" in shown and "scanning" not in report
    assert "Number of entries:\t21" in report.replace("\r\n", "\n")


def test_init_through_pipes_prints_no_status_line(tmp_path: Path) -> None:
    conf = write_config(tmp_path)
    done = subprocess.run([*AIDEPY, "init", "-c", str(conf)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "scanning" not in done.stderr and "\x1b" not in done.stderr + done.stdout
    assert "Number of entries:\t21" in done.stdout


def test_a_terminal_that_cannot_show_a_name_gets_it_escaped() -> None:
    master, slave = os.openpty()
    with open(slave, "w", encoding="ascii") as stream:
        status = StatusLine(stream)
        named = [Entry("/café".encode(), "f", frozenset(), {})]
        assert list(status.track(named)) == named
        drawn = read_all(master)
    os.close(master)
    assert drawn == ERASE + "aidepy: scanning: 1 entry, 0:00  /caf\\xe9" + ERASE
