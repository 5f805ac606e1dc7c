"""report: AIDE 0.18.3's text layout (compared with real `aide --check` output) and aidepy's JSON."""

from __future__ import annotations

import base64
import calendar
import json
import time
from collections.abc import Iterator

import pytest
from test_compare import make_entry

from aidepy.compare import Change, Summary, compare
from aidepy.report.escape import escape_path
from aidepy.report.json_report import render_json
from aidepy.report.model import DatabaseSummary, Level, Mode, Report, ReportOptions, summary_string
from aidepy.report.plain import render_text, value_lines

# The attributes Debian's aide records for a regular file under `R+sha256` (it drops l, b, a,
# selinux and caps for files), so summary strings line up column by column with AIDE's.
FILE_R = "ftype+p+u+g+s+m+c+i+n+md5+sha256+acl+xattrs+e2fsattrs"
T0 = calendar.timegm((2026, 11, 25, 4, 50, 1)) * 10**9
T1 = calendar.timegm((2026, 11, 25, 4, 50, 3)) * 10**9
T_OLD = calendar.timegm((2020, 1, 1, 0, 0, 0)) * 10**9


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def content_change() -> Change:
    old = make_entry(b"/tmp/aidet/t/a", attrs=FILE_R, m=T0, c=T0, s=5,
                     md5=b64("XUFAKrxLKna5cZ2REBfFkg=="),
                     sha256=b64("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="))
    new = make_entry(b"/tmp/aidet/t/a", attrs=FILE_R, m=T_OLD, c=T1, s=5,
                     md5=b64("62HurZDjuJnGvL4nrFgWYA=="),
                     sha256=b64("NzPNl3/46xi5hzV+Is7Zn0YJfzHssjnoeK5jdg6D5NU="))
    return Change(new.path, "f", old, new, ("m", "c", "md5", "sha256"))


def check_report(changes: list[Change], summary: Summary, **kw: object) -> Report:
    return Report(mode=Mode.CHECK, changes=changes, summary=summary, start_time=T1 / 1e9,
                  end_time=T1 / 1e9, **kw)  # type: ignore[arg-type]


def test_summary_string_matches_aide_for_a_content_change() -> None:
    assert summary_string(content_change()) == "f = ... mc..H.. . "


def test_summary_string_for_added_removed_and_shrunk_entries() -> None:
    entry = make_entry(b"/x", attrs=FILE_R)
    assert summary_string(Change(b"/x", "f", None, entry)) == "f+++++++++++++++++"
    assert summary_string(Change(b"/x", "f", entry, None)) == "f-----------------"
    small = make_entry(b"/x", attrs=FILE_R, s=1)
    big = make_entry(b"/x", attrs=FILE_R, s=9)
    assert summary_string(Change(b"/x", "f", big, small, ("s",)))[2] == "<"
    assert summary_string(Change(b"/x", "f", small, big, ("s",)))[2] == ">"


def test_summary_string_marks_ignored_changes_with_colon() -> None:
    old = make_entry(b"/x", attrs=FILE_R, m=1)
    new = make_entry(b"/x", attrs=FILE_R, m=2, p=0o100600)
    change = Change(b"/x", "f", old, new, ("p",), ("m",))
    assert summary_string(change, ReportOptions(ignore_changed=frozenset({"m"}))) == "f = p.. :...... . "


def test_details_columns_match_aide_layout() -> None:
    change = content_change()
    text = render_text(check_report([change], Summary(total=8, changed=1)))
    assert (
        "File: /tmp/aidet/t/a\n"
        " Mtime     : 2026-11-25 04:50:01 +0000        | 2020-01-01 00:00:00 +0000\n"
        " Ctime     : 2026-11-25 04:50:01 +0000        | 2026-11-25 04:50:03 +0000\n"
        " MD5       : XUFAKrxLKna5cZ2REBfFkg==         | 62HurZDjuJnGvL4nrFgWYA==\n"
        " SHA256    : LPJNul+wow4m6DsqxbninhsWHlwfp0Je | NzPNl3/46xi5hzV+Is7Zn0YJfzHssjno\n"
        "             cwQzYpOLmCQ=                     | eK5jdg6D5NU=\n"
    ) in text


def test_check_report_sections_in_aide_order() -> None:
    added = make_entry(b"/t/new\ttab", attrs=FILE_R)
    removed = make_entry(b"/t/\xffname", attrs=FILE_R)
    text = render_text(check_report(
        [Change(added.path, "f", None, added), Change(removed.path, "f", removed, None), content_change()],
        Summary(total=8, added=1, removed=1, changed=1),
        notices=["Baseline /db is NOT signed."],
    ))
    assert text.startswith("Baseline /db is NOT signed.\nStart timestamp: 2026-11-25 04:50:03 +0000 (aidepy ")
    assert (
        "AIDE found differences between database and filesystem!!\n\nSummary:\n"
        "  Total number of entries:\t8\n  Added entries:\t\t1\n  Removed entries:\t\t1\n"
        "  Changed entries:\t\t1\n\n---------------------------------------------------\n"
        "Added entries:\n---------------------------------------------------\n\n"
        "f+++++++++++++++++: /t/new\\011tab\n\n"
        "---------------------------------------------------\nRemoved entries:\n"
    ) in text
    assert "f-----------------: /t/\udcffname" in text  # raw byte, written back with surrogateescape
    assert text.index("Changed entries:\n---") < text.index("Detailed information about changes")
    assert text.endswith("\n\nEnd timestamp: 2026-11-25 04:50:03 +0000 (run time: 0m 0s)\n")


def test_untouched_check_says_looks_okay() -> None:
    text = render_text(check_report([], Summary(total=8)))
    okay = "AIDE found NO differences between database and filesystem. Looks okay!!\n"
    assert okay + "\nNumber of entries:\t8" in text
    assert "Detailed information" not in text


def test_report_level_list_entries_omits_details() -> None:
    text = render_text(check_report([content_change()], Summary(total=1, changed=1),
                                    options=ReportOptions(level=Level.LIST_ENTRIES)))
    assert "f = ... mc..H.. . : /tmp/aidet/t/a" in text
    assert "Report level: list_entries" in text
    assert "Detailed information" not in text


def test_added_removed_entries_level_prints_all_attributes_of_added_files() -> None:
    added = make_entry(b"/n", attrs="p+s", p=0o100644, s=3)
    text = render_text(check_report([Change(b"/n", "f", None, added)], Summary(total=1, added=1),
                                    options=ReportOptions(level=Level.ADDED_REMOVED_ENTRIES)))
    pad = " " * 36  # as `aide --check` prints it: no old column, 33 + 2 spaces before the new
    assert f"File: /n\n Size      :{pad}3\n Perm      :{pad}-rw-r--r--\n" in text


def test_different_attribute_sets_are_listed_first() -> None:
    old = make_entry(b"/f", attrs="p+s")
    new = make_entry(b"/f", attrs="p+m+sha256")
    changes = list(compare([old], [new]))
    text = render_text(check_report(changes, Summary(total=1),
                                    options=ReportOptions(level=Level.LIST_ENTRIES)))
    assert text.startswith("Entry /f in databases has different attributes: -s+m+sha256\n")


def test_database_section_shows_signature_and_key() -> None:
    key = "SHA256:FyySFa3otcUbO8qxCQ6tkrFxFZpiK7r9QitunWWH+tU"
    db = DatabaseSummary("/vault/aidepy.db", bytes(range(32)), True, key, T0 // 10**9, 3, 8,
                         authenticated=True)
    text = render_text(check_report([], Summary(total=8), databases=[db]))
    assert "The attributes of the (uncompressed) database(s):" in text
    digest = " SHA256    : AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\n             GBkaGxwdHh8=\n"
    assert "/vault/aidepy.db\n" + digest in text
    assert f" Signed    : yes, key {key}, verified\n" in text  # the fingerprint whole, on one line
    assert " Generation: 3\n" in text


def test_control_characters_escaped_like_aide() -> None:
    assert escape_path(b"/a\nb\tc\x7fd\\e%f") == "/a\\012b\\011c\\177d\\e%f"
    assert escape_path("/é".encode()) == "/é"


def test_json_report_is_lossless_for_odd_names_and_lists_changed_attributes() -> None:
    odd = b"/t/we ird\nname \xff\xfe \"q\" %"
    added = make_entry(odd, attrs="p+s")
    db = DatabaseSummary("/db", bytes(32), False)
    doc = json.loads(render_json(check_report(
        [Change(odd, "f", None, added), content_change()],
        Summary(total=3, added=1, changed=1), databases=[db])))
    assert doc["added"][0]["path"].encode("utf-8", "surrogateescape") == odd
    assert doc["summary"] == {"total": 3, "added": 1, "removed": 0, "changed": 1, "exit_code": 5}
    changed = doc["changed"][0]
    assert changed["path"] == "/tmp/aidet/t/a" and changed["type"] == "f"
    assert list(changed["attributes"]) == ["m", "c", "md5", "sha256"]
    assert changed["attributes"]["m"] == {"old": T0, "new": T_OLD}
    assert doc["database"]["signature"] == "unsigned"
    assert render_json(check_report([Change(odd, "f", None, added)], Summary())).isascii()


def test_times_are_shown_to_the_second_as_aide_shows_them() -> None:
    # a baseline of an earlier aidepy may hold nanoseconds: they are not shown
    old = make_entry(b"/f", attrs="m", m=T0 + 999_999_999)
    new = make_entry(b"/f", attrs="m", m=T1)
    text = render_text(check_report([Change(b"/f", "f", old, new, ("m",))], Summary(total=1, changed=1)))
    assert " Mtime     : 2026-11-25 04:50:01 +0000        | 2026-11-25 04:50:03 +0000\n" in text


def test_ignored_e2fs_flags_are_shown_as_colons_like_aide() -> None:
    entry = make_entry(b"/f", attrs="e2fsattrs", e2fsattrs=b"----i---------e-------")
    assert value_lines("e2fsattrs", entry, ignore_e2fsattrs="e") == ["----i---------:-------"]
    assert value_lines("e2fsattrs", entry) == ["----i---------e-------"]


def test_detailed_init_lists_every_entry_as_added_with_its_attributes() -> None:
    entry = make_entry(b"/etc/passwd", attrs="p+s", s=12)
    text = render_text(Report(
        mode=Mode.INIT, changes=[Change(entry.path, "f", None, entry)], summary=Summary(total=1),
        start_time=T1 / 1e9, end_time=T1 / 1e9, new_database="/db.new",
        options=ReportOptions(level=Level.ADDED_REMOVED_ENTRIES, detailed_init=True)))
    assert "AIDE successfully initialized database.\nNew AIDE database written to /db.new\n" in text
    assert "\nNumber of entries:\t1" in text
    assert "f+++++++++++++++++: /etc/passwd" in text
    assert f"File: /etc/passwd\n Size      :{' ' * 36}12\n" in text


def test_json_and_text_leave_out_capabilities_a_file_does_not_have() -> None:
    old = make_entry(b"/bin/tool", attrs="p+caps+xattrs", caps=b"", xattrs=b"")
    new = make_entry(b"/bin/tool", attrs="p+caps+xattrs", caps=b"cap_setuid=ep",
                     xattrs=b"security.capability <=> AQAAAgCAAAAAAAAAAAAAAAAAAAA=\n")
    change = Change(new.path, "f", old, new, ("xattrs", "caps"))
    doc = json.loads(render_json(check_report([change], Summary(total=1, changed=1))))
    assert doc["changed"][0]["attributes"]["caps"] == {"new": "cap_setuid=ep"}
    assert doc["different_attributes"] == {"/bin/tool": "+caps"}
    assert summary_string(change) == f"f   .{' ' * 9}X  +"
    assert value_lines("xattrs", old) == ["num=0"]
    assert value_lines("caps", old) == []
    text = render_text(check_report([change], Summary(total=1, changed=1)))
    assert "Entry /bin/tool in databases has different attributes: +caps\n" in text
    assert " Caps      :                                  | cap_setuid=ep\n" in text


def test_acl_lines_are_aides_with_names_where_the_host_has_them() -> None:
    acl = b"user::rw-\nuser:0:r--\nuser:4000000:r--\ngroup::r--\nmask::r--\nother::---\ndefault:group:0:r-x\n"
    entry = make_entry(b"/d", attrs="acl", acl=acl)
    assert value_lines("acl", entry) == [
        "A: user::rw-", "A: user:root:r--", "A: user:4000000:r--", "A: group::r--", "A: mask::r--",
        "A: other::---", "D: group:root:r-x",
    ]
