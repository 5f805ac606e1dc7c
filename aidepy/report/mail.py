"""Deliver the daily report: a mail to the admin through the local MTA's `sendmail`, and syslog.

The mail is built with `email.message.EmailMessage`, whose headers refuse line breaks; file
names only ever go into the body, so no file name can add a header. The subject names the host
and the outcome, and a baseline that fails verification gets a subject nobody can overlook.
"""

from __future__ import annotations

import email.utils
import syslog
from dataclasses import dataclass
from email.message import EmailMessage

import sh

from aidepy.errors import AidepyError, VerificationError
from aidepy.report.escape import escape_path

FAILED = (VerificationError.alarm,)
"""The alarm of a failure that names none."""


@dataclass(frozen=True)
class Outcome:
    """What the daily run found: counts of differences, the alarms raised, or why no check
    could be done."""

    host: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    failure: str | None = None
    """Why no check could be done (None: the baseline verified and the check ran)."""
    alarms: tuple[str, ...] = ()
    """The subject's alarm words (`ROLLBACK`, `RUNTIME CHANGED`, ...), most serious first."""
    explained: tuple[int, int, int] | None = None
    """(unexplained, explained, packages) when the changes were explained (`aidepy.explain`)."""
    new: int | None = None
    """How many changes were not in the previous report (`aidepy.jobs.pending`)."""

    @property
    def alarming(self) -> bool:
        return self.failure is not None or bool(self.alarms)


def subject(outcome: Outcome) -> str:
    """`aidepy: HOST: 3 changed, 1 added`, `aidepy: HOST: 1 unexplained, 312 explained (7
    packages)`, either followed by `; 2 new, 313 pending` (the daily report), `aidepy: HOST: no
    changes`, or with alarms
    `aidepy: HOST: ALERT: RUNTIME CHANGED; 3 changed`: every alarm before any count, and never
    "no changes" beside an alarm."""
    # The host name is whatever root set with sethostname(2): escape it like a path, so a
    # line break in it can neither add a header nor stop the mail.
    host = escape_path(outcome.host.encode("utf-8", "surrogateescape"))
    if outcome.failure is not None:
        return f"aidepy: {host}: ALERT: {', '.join(outcome.alarms or FAILED)}, NO CHECK DONE"
    counts = [(outcome.changed, "changed"), (outcome.added, "added"), (outcome.removed, "removed")]
    parts = ", ".join(f"{n} {label}" for n, label in counts if n)
    if parts and outcome.explained is not None:
        unexplained, explained, packages = outcome.explained
        parts = (f"{unexplained} unexplained, {explained} explained "
                 f"({packages} package{'' if packages == 1 else 's'})")
    if parts and outcome.new is not None:
        parts += f"; {outcome.new} new, {outcome.added + outcome.removed + outcome.changed} pending"
    if outcome.alarms:
        return f"aidepy: {host}: ALERT: {', '.join(outcome.alarms)}" + (f"; {parts}" if parts else "")
    return f"aidepy: {host}: {parts or 'no changes'}"


def summary_line(outcome: Outcome) -> str:
    """The one line that goes to syslog."""
    if outcome.failure is not None:
        return f"ALERT: {', '.join(outcome.alarms or FAILED).lower()}, no check done: {outcome.failure}"
    counts = f"{outcome.added} added, {outcome.removed} removed, {outcome.changed} changed"
    if outcome.alarms:
        return f"ALERT: {', '.join(outcome.alarms).lower()}; check done: {counts}"
    return f"check done: {counts}"


def body_bytes(text: str) -> int:
    """Bytes `text` takes as a mail body, as sent: after its transfer encoding (base64 or
    quoted-printable, or 8-bit UTF-8, once a file name is not ASCII)."""
    message = EmailMessage()
    message.set_content(_mailable(text))
    payload = message.get_payload()
    assert isinstance(payload, str)
    return len(payload.encode("utf-8", "surrogateescape"))


def cut_report(text: str, limit: int, full_report: str | None = None) -> str:
    """`text` if its mail body fits in `limit` bytes, else its first whole lines (as many as fit)
    and a note on what was cut."""
    if body_bytes(text) <= limit:
        return text
    where = f"the full report is in {full_report}" if full_report else "`aidepy check` prints it in full"
    ends = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]

    def cut(k: int) -> str:
        head = text[:ends[k]]
        left_lines = text.count("\n", len(head)) + (0 if text.endswith("\n") else 1)
        return (f"{head}\n[aidepy: report cut here: {left_lines} more lines "
                f"({len(text) - len(head)} characters) left out; {where}]\n")

    low, high = 0, len(ends) - 1  # the most whole lines whose cut body fits (bisection)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if body_bytes(cut(mid)) <= limit else (low, mid - 1)
    return cut(low)


def build_message(to: str, outcome: Outcome, body: str) -> EmailMessage:
    """The report mail: headers from the outcome and address only, the report in the body."""
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject(outcome)
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Auto-Submitted"] = "auto-generated"
    if outcome.alarming:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    message.set_content(_mailable(body))
    return message


def _mailable(body: str) -> str:
    """Undecodable file-name bytes reach us as surrogates: shown escaped rather than fail."""
    return body.encode("utf-8", "backslashreplace").decode("utf-8")


def send(message: EmailMessage, sendmail: str = "/usr/sbin/sendmail", timeout: float = 300) -> None:
    """Hand `message` to the local MTA with `sendmail -t -oi` (recipients from the To header);
    one that has not finished after `timeout` seconds is killed and the mail counts as failed."""
    try:
        sh.Command(sendmail)("-t", "-oi", _in=message.as_bytes(), _timeout=timeout)
    except sh.TimeoutException as exc:
        raise AidepyError(f"cannot mail the report: {sendmail} did not finish within {timeout:g} s "
                          "(setting `sendmail_timeout`)") from exc
    except sh.CommandNotFound as exc:
        raise AidepyError(f"cannot mail the report: {sendmail} not found (setting `sendmail`)") from exc
    except sh.ErrorReturnCode as exc:
        err = exc.stderr.decode(errors="replace").strip()
        raise AidepyError(f"cannot mail the report: {sendmail} exited with {exc.exit_code}: {err}") from exc


def log_summary(outcome: Outcome) -> None:
    """Send the summary line to syslog (facility daemon; an alert when there is an alarm)."""
    priority = syslog.LOG_ALERT if outcome.alarming else syslog.LOG_NOTICE
    syslog.openlog("aidepy", syslog.LOG_PID, syslog.LOG_DAEMON)
    try:
        syslog.syslog(priority, summary_line(outcome))
    finally:
        syslog.closelog()
