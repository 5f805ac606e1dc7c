"""`aidepy check` (AIDE's --check, -C): compare the file system with the signed baseline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aidepy.cli import baseline
from aidepy.cli.options import add_config_arguments
from aidepy.compare import compare
from aidepy.config import Config, load
from aidepy.report import Mode, Report
from aidepy.rollback import record_seen, refuse_rollback
from aidepy.vault import Vault

NAME = "check"
HELP = "compare the file system with the baseline and report what changed"
DESCRIPTION = """\
Scan the file system under the rules of the config file and compare every selected file with
its record in the baseline database (database_in). The baseline is verified before anything
is compared: with public_key set in the config, only a database signed by that key is used;
a database that fails verification is refused with the reason and exit code 20, and no report
is printed from it. An unsigned baseline is accepted only when no public_key is configured,
and the report then says so in its first line.

The report has AIDE 0.18's layout: start line, verdict, summary with totals, the added,
removed and changed entries with a summary string per entry (such as `f = ... mc..H.. . `:
file type, then one column per attribute group l > b p u g a m c i n H A X S E C; a letter
marks a change, `.` unchanged, `:` ignored, `+`/`-` attribute added to or removed from the
rule, blank not checked), the old and new values of every changed attribute, and the
database's checksum and signature. report_level, report_ignore_*_attrs, report_force_attrs,
report_summarize_changes, report_grouped and report_base16 shape it as in AIDE; --json (or
report_format=json) prints aidepy's JSON report instead.

With --vault-rules the rules and settings come from the copy on the vault (written by
promote), which the host cannot change: an attacker who edits an included file to hide a
change is then still caught. -c only says where the vault is.

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
    baseline.add_limit_argument(parser)
    baseline.add_json_argument(parser)
    parser.add_argument(
        "--vault-rules", action="store_true",
        help="use the rules copy on the vault, which the host cannot change, instead of -c's files: "
             "the vault named by -c is mounted read-only for the run (and put back as it was), "
             "its aidepy.conf is read with -B/-A, and every file it includes is read from the "
             "vault's rules/ copy; live config files that differ from their copy are noted in the "
             "report",
    )


def run(args: argparse.Namespace) -> int:
    if not args.vault_rules:
        return check(args, baseline.load_config(args), [])
    live = load(args.config, before=args.before, after=args.after)
    vault = Vault.open(live, warn=baseline.warn)
    with vault.mounted() as root:
        config = vault.load_rules(args.before, args.after)
        for message in config.warnings:
            baseline.warn(message)
        notices = [f"Rules: the copy on the vault ({root}), not {args.config}."]
        notices += [f"Note: {line}" for line in vault.rules_changes(live.sources)]
        return check(args, config, notices)


def check(args: argparse.Namespace, config: Config, rules_notices: list[str]) -> int:
    """Compare the file system with the baseline under `config`; print the report."""
    start = time.time()
    limit = baseline.limit_pattern(args)
    options = baseline.report_options(config)
    # each record's structure is checked as the comparison reads it; nothing is reported before
    # the whole baseline has been read (a malformed record ends the run with exit 20)
    db, notice = baseline.open_baseline(baseline.required_path(config.database_in, "database_in"), config,
                                        check_records=False)
    notices = [notice, *rules_notices]
    warnings: list[str] = []
    with db, baseline.status_line() as status:
        refuse_rollback(Path(config.state_dir), db.header.generation)
        if db.header.rules_digest != config.digest:
            notices.append("Note: the rules or options differ from those the baseline was recorded with.")
        comparison = compare(
            baseline.within_limit(db.entries(), limit), baseline.scan_tree(config, limit, warnings, status),
            ignore_changed=options.ignore_changed, ignore_e2fsattrs=options.ignore_e2fsattrs,
            rehash=baseline.rehasher(config.root_prefix),
        )
        changes = list(comparison)
        databases = [baseline.database_summary(db)]
    if db.authenticated:
        record_seen(Path(config.state_dir), db.header.generation)
    report = Report(
        Mode.CHECK, changes, comparison.summary, start, time.time(), options, databases,
        limit=args.limit, root_prefix=config.root_prefix, notices=notices, warnings=warnings,
    )
    baseline.emit(report, args, config)
    return comparison.summary.exit_code
