"""Mail and report injection: file names an attacker chose (`\\nBcc: ...`, a `Subject:` line,
escape sequences) reach the daily mail only escaped, inside the body; the headers the MTA gets
are exactly the ones aidepy sets.

The report is the real `aidepy check` output on a tree with such names; the mail is built by
`aidepy.report.mail` and handed to a stand-in `sendmail` that keeps what it was given, which is then
parsed with `email.parser`, as the MTA would.
"""

from __future__ import annotations

import email.policy
import os
import subprocess
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from conftest import AIDEPY
from hypothesis import given, settings
from hypothesis import strategies as st

from aidepy.report import mail as notify
from aidepy.report.escape import escape_path
from aidepy.report.mail import Outcome

EVIL = {
    "bcc": b"report\nBcc: evil@example",
    "subject": b"Subject: all clean\n\nTo: evil@example",
    "crlf": b"x\r\nCc: evil@example\r\n",
    "escape": b"\x1b]0;pwned\x07\x1b[2J",
}
HEADERS = ["To", "Subject", "Date", "Auto-Submitted", "Content-Type", "Content-Transfer-Encoding",
           "MIME-Version"]


def _mailed(tmp_path: Path, message: EmailMessage) -> EmailMessage:
    """Send `message` through a stand-in sendmail and parse what it received."""
    fake = tmp_path / "sendmail"
    fake.write_text(f"#!/bin/sh\ncat > {tmp_path}/received\n")
    fake.chmod(0o755)
    notify.send(message, str(fake))
    parsed = BytesParser(policy=email.policy.default).parsebytes((tmp_path / "received").read_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.fixture
def report_with_evil_names(tmp_path: Path) -> str:
    """`aidepy check` output after files with hostile names appeared in a recorded tree."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "passwd").write_text("root:x:0:0\n")
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"state_dir={tmp_path}/state\ndatabase_in=file:{tmp_path}/db\ndatabase_out=file:{tmp_path}/db.new\n"
                    f"{tree} p+u+g+s+sha256\n")

    def aidepy(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*AIDEPY, *args, "-c", str(conf)],
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=120)

    init = aidepy("init")
    assert init.returncode == 0, init.stderr
    (tmp_path / "db.new").replace(tmp_path / "db")
    for name in EVIL.values():
        (tree / os.fsdecode(name)).write_bytes(b"boo\n")
    check = aidepy("check")
    assert check.returncode == 1, check.stderr  # added entries (no m: the directory is unchanged)
    return check.stdout.decode("utf-8", "surrogateescape")


def test_hostile_names_in_the_report_do_not_change_the_mail_headers(
    tmp_path: Path, report_with_evil_names: str,
) -> None:
    outcome = Outcome("web1", added=len(EVIL))
    mail = _mailed(tmp_path, notify.build_message("root", outcome, report_with_evil_names))
    assert list(mail.keys()) == HEADERS
    assert mail["To"] == "root"
    assert mail["Subject"] == f"aidepy: web1: {len(EVIL)} added"
    for forged in ("Bcc", "Cc", "Resent-To", "Reply-To"):
        assert mail[forged] is None
    assert mail.get_all("To") == ["root"] and mail.get_all("Subject") == [mail["Subject"]]
    body = mail.get_content()
    assert "report\\012Bcc: evil@example" in body
    assert "Subject: all clean\\012\\012To: evil@example" in body
    assert "x\\015\\012Cc: evil@example" in body
    assert "\\033]0;pwned\\007\\033[2J" in body
    assert not any(line.startswith(("Bcc:", "Subject:", "To:", "Cc:")) for line in body.splitlines())
    assert "\x1b" not in body and "\r" not in body


def test_an_alarm_mail_keeps_its_headers_whatever_the_failure_text(tmp_path: Path) -> None:
    failure = "/var/lib/aidepy/vault/aidepy.db\nBcc: evil@example: digest mismatch"
    outcome = Outcome("web1", failure=failure)
    mail = _mailed(tmp_path, notify.build_message("root", outcome, f"ALERT\n{failure}\n"))
    assert list(mail.keys()) == [*HEADERS[:4], "Importance", "X-Priority", *HEADERS[4:]]
    assert mail["Subject"] == "aidepy: web1: ALERT: BASELINE FAILED VERIFICATION, NO CHECK DONE"
    assert mail["Bcc"] is None


def test_a_host_name_with_a_line_break_cannot_add_headers_or_stop_the_mail(tmp_path: Path) -> None:
    outcome = Outcome("web1\nBcc: evil@example", changed=1)
    mail = _mailed(tmp_path, notify.build_message("root", outcome, "report\n"))
    assert list(mail.keys()) == HEADERS
    assert mail["Bcc"] is None


@settings(max_examples=500, derandomize=True, database=None)
@given(st.binary(max_size=300))
def test_any_name_becomes_one_report_line_without_control_bytes(name: bytes) -> None:
    shown = escape_path(b"/" + name)
    raw = shown.encode("utf-8", "surrogateescape")
    assert not any(b < 0x20 or b == 0x7F for b in raw), raw
    body = notify.build_message("root", Outcome("h", added=1), f"f++++: {shown}\n").get_content()
    assert body.count("\n") == 1
