"""The daily report's delivery: subjects, cutting, header safety, a real MTA and syslog."""

from __future__ import annotations

import email
import email.policy
import os
import socket
from pathlib import Path

import pytest
from conftest import RootMailbox, require_tool

from aidepy.errors import AidepyError
from aidepy.report import mail as notify
from aidepy.report.mail import Outcome


def test_subject_names_host_and_counts_changed_first() -> None:
    outcome = Outcome("host.example", added=1, changed=3)
    assert notify.subject(outcome) == "aidepy: host.example: 3 changed, 1 added"
    assert notify.subject(Outcome("h", removed=2)) == "aidepy: h: 2 removed"


def test_subject_says_no_changes_when_clean() -> None:
    assert notify.subject(Outcome("host.example")) == "aidepy: host.example: no changes"


def test_subject_is_loud_when_baseline_fails_verification() -> None:
    text = notify.subject(Outcome("h", failure="bad signature"))
    assert text.startswith("aidepy: h: ALERT") and "FAILED VERIFICATION" in text


def test_short_report_is_not_cut() -> None:
    assert notify.cut_report("a\nb\n", limit=100) == "a\nb\n"


def test_long_report_is_cut_at_a_line_with_a_note_on_what_is_missing() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = notify.cut_report(text, limit=400, full_report="/var/lib/aidepy/last-report.txt")
    assert 300 < notify.body_bytes(cut) <= 400  # the note counts too
    head, note = cut.rsplit("\n[", 1)
    assert text.startswith(head) and head.endswith("\n")
    kept = head.count("\n")
    assert f"{1000 - kept} more lines" in note
    assert f"{len(text) - len(head)} characters" in note
    assert "/var/lib/aidepy/last-report.txt" in note


def test_the_limit_counts_the_bytes_of_the_mail_body_as_sent() -> None:
    """Names that are not ASCII take two bytes each and make the body base64: cut at 2K
    characters, the mail would carry about 3.5K bytes."""
    text = "".join(f"changed: /srv/{'é' * 40}{i:04}\n" for i in range(300))
    cut = notify.cut_report(text, limit=2048, full_report="/x")
    message = notify.build_message("root", Outcome("h", changed=300), cut)
    sent = message.as_bytes().split(b"\n\n", 1)[1]
    assert message["Content-Transfer-Encoding"] == "base64"
    assert 1500 < len(sent) <= 2048
    assert "[aidepy: report cut here:" in message.get_content()


def test_file_names_in_the_report_cannot_add_headers() -> None:
    body = "changed: /etc/evil\nBcc: attacker@example.org\n\nf = /tmp/\r\nSubject: forged\n"
    message = notify.build_message("root", Outcome("h", changed=1), body)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed.get_all("Subject") == ["aidepy: h: 1 changed"]
    assert "Bcc: attacker@example.org" in parsed.get_content()


def test_undecodable_file_names_are_escaped_not_fatal() -> None:
    body = b"changed: /etc/\xff\xfe\n".decode("utf-8", "surrogateescape")
    message = notify.build_message("root", Outcome("h", changed=1), body)
    assert "/etc/\\udcff\\udcfe" in message.get_content()


def test_missing_sendmail_is_a_clear_error(tmp_path: Path) -> None:
    message = notify.build_message("root", Outcome("h"), "x\n")
    with pytest.raises(AidepyError, match="not found"):
        notify.send(message, str(tmp_path / "no-sendmail"))


def test_failing_sendmail_reports_its_exit_code_and_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text("#!/bin/sh\necho 'queue full' >&2\nexit 75\n")
    fake.chmod(0o755)
    with pytest.raises(AidepyError, match="exited with 75: queue full"):
        notify.send(notify.build_message("root", Outcome("h"), "x\n"), str(fake))


def test_sendmail_gets_t_and_oi_and_the_whole_message(tmp_path: Path) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/mail\n')
    fake.chmod(0o755)
    notify.send(notify.build_message("admin@example.org", Outcome("h"), "line\n.\nafter dot\n"), str(fake))
    assert (tmp_path / "args").read_text().split() == ["-t", "-oi"]
    sent = email.message_from_bytes((tmp_path / "mail").read_bytes(), policy=email.policy.default)
    assert sent["To"] == "admin@example.org"
    assert sent.get_content().endswith("line\n.\nafter dot\n")


def test_report_reaches_roots_mailbox_through_exim(root_mailbox: RootMailbox) -> None:
    outcome = Outcome(socket.gethostname(), added=1, changed=3)
    body = "changed: /etc/passwd\nBcc: attacker@example.org\n"
    notify.send(notify.build_message("root", outcome, body), require_tool("sendmail"))
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"] == f"aidepy: {socket.gethostname()}: 3 changed, 1 added"
    assert mail["Bcc"] is None
    assert "changed: /etc/passwd" in mail.get_content()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to bind /dev/log")
def test_summary_line_goes_to_syslog() -> None:
    if os.path.exists("/dev/log"):
        pytest.skip("a syslog daemon owns /dev/log here; the test only runs where it can listen itself")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("/dev/log")
    try:
        listener.settimeout(10)
        notify.log_summary(Outcome("h", added=1, removed=2, changed=3))
        line = listener.recv(4096).decode()
    finally:
        listener.close()
        os.unlink("/dev/log")
    # <priority>: facility daemon (3) * 8 + notice (5) = 29
    assert line.startswith("<29>")
    assert f"aidepy[{os.getpid()}]: check done: 1 added, 2 removed, 3 changed" in line
