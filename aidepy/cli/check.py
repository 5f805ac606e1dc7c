"""`aidepy check` (AIDE's --check, -C): compare the file system with the signed baseline."""

from __future__ import annotations

import argparse

from aidepy.cli.options import (
    BASELINE_HELP,
    add_config_arguments,
    add_format_argument,
    add_limit_argument,
    emit,
    load_config,
    scan_of,
    status_line,
    vault_lock,
    warn,
)
from aidepy.jobs import baseline
from aidepy.jobs.daily import vault_rules
from aidepy.lock import run_lock

NAME = "check"
HELP = "compare the file system with the baseline and report what changed"
DESCRIPTION = f"""\
Scan the file system under the rules of the config file and compare every selected file with
its record in the baseline. The baseline is verified before anything is compared; one that
fails verification is refused with the reason and exit code 20, and no report is printed
from it.

{BASELINE_HELP}

The report has AIDE 0.18's layout: start line, verdict, summary with totals, the added,
removed and changed entries with a summary string per entry (such as `f = ... mc..H.. . `:
file type, then one column per attribute group l > b p u g a m c i n H A X S E C; a letter
marks a change, `.` unchanged, `:` ignored, `+`/`-` attribute added to or removed from the
rule, blank not checked), the old and new values of every changed attribute, and the
database's checksum and signature. report_level, report_ignore_*_attrs, report_force_attrs,
report_summarize_changes, report_grouped and report_base16 shape it as in AIDE; --format (or
report_format) prints another of the formats --format lists instead, such as json (aidepy's
JSON document; also --json).

With --vault-rules the rules and settings come from the copy on the vault (written by
promote), which the host cannot change: an attacker who edits an included file to hide a
change is then still caught. -c still says where things are (vault, state_dir, database_in,
public_key).

Files that could not be read, vanished, or changed while being read are listed as warnings.
A file under the `growing` attribute may grow (size, blocks, times); its hashes count as
unchanged when the first old-size bytes still hash to the recorded values.

On a terminal, a status line on standard error shows how far the scan has got (entries,
time, the path being scanned); it is erased before the report. Cron and pipes never see it.

Exit status: 0 no differences; otherwise the sum of 1 (entries added), 2 (removed) and 4
(changed); 14-19 AIDE's error codes (17 invalid config line, 18 I/O error, 19 database of an
unsupported version); 20 the baseline failed verification."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_limit_argument(parser)
    add_format_argument(parser)
    parser.add_argument(
        "--vault-rules", action="store_true",
        help="use the rules copy on the vault, which the host cannot change, instead of -c's files: "
             "the vault named by -c is mounted read-only for the run (and put back as it was), "
             "its aidepy.conf is read with -B/-A, and every file it includes is read from the "
             "vault's rules/ copy; where things are (vault, state_dir, databases, public_key) still "
             "comes from -c; live config files that differ from their copy are noted in the report",
    )


def run(args: argparse.Namespace) -> int:
    live = rules = load_config(args)
    with status_line() as status:
        if args.vault_rules:  # it mounts the vault: not beside a report or promote (the lock)
            with run_lock(live.state_dir), \
                    vault_rules(live, args.before, args.after, warn=warn) as (rules, notices):
                report = baseline.check(rules, scan_of(args, rules, status), notices)
        else:
            with vault_lock(live):
                report = baseline.check(live, scan_of(args, live, status))
    # each report_url with the report options the rules give it: with --vault-rules the vault's
    # copy, so an edit of the live config cannot make a report ignore more
    emit(report, args, rules)
    return report.summary.exit_code
