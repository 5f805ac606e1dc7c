"""`aidepy report`: the daily job (check against the vault, mail the report, log a summary)."""

from __future__ import annotations

import argparse
import socket
import sys
from contextlib import ExitStack
from pathlib import Path

from aidepy import state
from aidepy.atomic import replace_text
from aidepy.cli.options import add_config_arguments, load_config, status_line
from aidepy.config.evaluate import Config
from aidepy.config.model import DEFAULT_MAIL_LIMIT
from aidepy.errors import AidepyError
from aidepy.jobs.baseline import Scan
from aidepy.jobs.daily import DailyReport, alert, failed, run_daily, vault_rules
from aidepy.lock import run_lock
from aidepy.report import mail as notify

NAME = "report"
HELP = "the daily job: check against the vault's baseline, mail the report to root, log to syslog"
DESCRIPTION = f"""\
The job that cron or aidepy-report.timer runs every day. It takes a lock under state_dir so
two runs never overlap (a second run waits up to --wait seconds, then gives up with exit code
22 and mails an ALERT naming the pid of the run that holds the lock); mounts the vault read-only if it is not
mounted; takes the rules from the copy on the vault (written by promote, so an attacker who
edits /etc/aidepy cannot hide a change; the report notes live files that differ, and warns
when the vault holds no copy), while where things are (vault, state_dir, public_key, mail)
always comes from the host's config; verifies the vault's baseline (never database_in) the
way `check` does: the pinned public_key or the vault's aidepy.pub, the anchor, the host, and
no generation older than the newest this host has verified (rollback); scans the file system into
state_dir/aidepy.db.new (for reading only: promote never uses it); compares; and delivers.

The report goes to report_email (default root; --mail overrides it) through
`sendmail -t -oi` (setting `sendmail`, default /usr/sbin/sendmail), so whatever MTA is
installed delivers it. The subject names the host and the outcome: `aidepy: HOST: 3 changed,
1 added`, or `aidepy: HOST: no changes`. A report is mailed every day, also when nothing
changed: a missing report is itself an alarm. Every alarm comes first in the subject, and
then it never says "no changes": `aidepy: HOST: ALERT: RUNTIME CHANGED; 1 changed`. The
alarms: RULES DIFFER FROM THE VAULT'S COPY (the live rules would check something else; a
file that differs only in where things are, or in comments, is a note), RULES NOT FROM THE
VAULT, RUNTIME CHANGED, VAULT
NOT WRITE-PROTECTED, FOREIGN KEY (the vault's key is not signing_key's public half), KEY NOT
PINNED (neither public_key nor signing_key's .pub to compare it with), APPROVAL LOG BROKEN
(the approval log on the vault does not verify: `aidepy log` says why); each has an `ALERT
WORDS: detail` line in the report. The report also names the last approval of the approval
log ("Last approval: generation N, TIME by USER on TTY: A accepted, K kept — comment").
A baseline that fails verification (or a vault that
cannot be used) is mailed too, and no check is done: `aidepy: HOST: ALERT: ROLLBACK, NO CHECK
DONE` (also BASELINE FAILED VERIFICATION, FOREIGN KEY, FOREIGN HOST, ANCHORED COPY MISSING OR
CHANGED, BASELINE NOT USABLE, CANNOT WRITE THE NEW DATABASE).
Reports longer than report_mail_limit (default {DEFAULT_MAIL_LIMIT // 1024}K) are cut in the mail at a
line, with a note saying how much was left out; the full report is always kept in
state_dir/{state.FULL_REPORT}. The report is in the first report_url's report_format
(AIDE's text layout unless it names another). A summary line
goes to syslog (facility daemon). The report is also printed on stdout. Run by hand on a
terminal, a status line on standard error shows how far the scan has got; cron never sees it.

If the mail cannot be sent (sendmail fails, or takes longer than sendmail_timeout, default
300 s), the report is still printed on stdout and kept in state_dir, stderr says MAIL NOT
SENT, and the exit status is the check's own.

Exit status as `check`: 0 no differences, bits 1 added, 2 removed, 4 changed; 18 a state file
could not be used; 20 the baseline failed verification; 21 the vault is unusable; 22 another
run holds the lock; 23 an unsafe layout was refused (a link, FIFO or foreign file in state_dir,
a vault mountpoint in a directory another user can change). Each is mailed as an ALERT."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--mail", metavar="ADDRESS", help="mail the report here instead of report_email")
    parser.add_argument("--wait", metavar="SECONDS", type=float, default=60.0,
                        help="how long to wait for another run's lock before giving up (default 60)")


def save_report(full: Path, text: str) -> str | None:
    """Keep the full report in `full` (atomically); returns what went wrong (a full state_dir),
    or None: a report that cannot be saved must still be mailed."""
    try:
        replace_text(full, text)
    except OSError as exc:
        return f"the report could not be saved in {full}: {exc.strerror}"
    return None


def run(args: argparse.Namespace) -> int:
    live = load_config(args)
    try:
        with run_lock(live.state_dir, wait=args.wait,
                      on_wait=lambda message: print(f"aidepy: {message}", file=sys.stderr)):
            return deliver(live, args, check(live, args))
    except (AidepyError, OSError) as exc:  # the lock or the state directory: mailed all the same,
        print(f"aidepy: {exc}", file=sys.stderr)  # and nothing is written there without the lock
        return deliver(live, args, failed(socket.gethostname(), exc), keep=False)


def check(live: Config, args: argparse.Namespace) -> DailyReport:
    """The check under the rules of the vault's copy (or the live rules, with an alarm)."""
    with ExitStack() as stack, status_line() as status:
        try:
            config, notices = stack.enter_context(vault_rules(live, args.before, args.after))
        except AidepyError as exc:
            config, notices = live, [alert("RULES NOT FROM THE VAULT", f"checked with the live rules, "
                                           f"which this host can change ({exc}).")]
        return run_daily(config, Scan.of(config, status), notices)


def deliver(live: Config, args: argparse.Namespace, daily: DailyReport, *, keep: bool = True) -> int:
    """Keep (if `keep`), mail, log and print `daily`; returns its exit code, also when the mail
    failed (then the report on stdout and the kept copy are all there is, and stderr says so)."""
    full = Path(live.state_dir) / state.FULL_REPORT
    problem = save_report(full, daily.text) if keep else f"the report is not kept in {full} (no lock)"
    body = notify.cut_report(daily.text, live.report_mail_limit, full_report=None if problem else str(full))
    if problem:
        print(f"aidepy: {problem}", file=sys.stderr)
        body += f"\n[aidepy: {problem}]\n"
    notify.log_summary(daily.outcome)
    try:
        notify.send(notify.build_message(args.mail or live.report_email, daily.outcome, body),
                    live.sendmail, timeout=live.sendmail_timeout)
    except AidepyError as exc:
        kept = "it is not kept either" if problem else f"it is kept in {full}"
        print(f"aidepy: MAIL NOT SENT: {exc}; the report follows on standard output and {kept}",
              file=sys.stderr)
    sys.stdout.flush()
    sys.stdout.buffer.write(daily.text.encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()
    return daily.exit_code
