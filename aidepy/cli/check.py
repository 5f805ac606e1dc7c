"""`aidepy check` (AIDE's --check, -C): compare the file system with the signed baseline."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aidepy.cli import baseline
from aidepy.cli.options import add_config_arguments
from aidepy.compare import compare
from aidepy.report import Mode, Report
from aidepy.rollback import record_seen, refuse_rollback

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

Files that could not be read, vanished, or changed while being read are listed as warnings.
A file under the `growing` attribute may grow (size, blocks, times); its hashes count as
unchanged when the first old-size bytes still hash to the recorded values.

Exit status: 0 no differences; otherwise the sum of 1 (entries added), 2 (removed) and 4
(changed); 14-19 AIDE's error codes (17 invalid config line, 18 I/O error, 19 database of an
unsupported version); 20 the baseline failed verification."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    baseline.add_limit_argument(parser)
    baseline.add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    start = time.time()
    config = baseline.load_config(args)
    limit = baseline.limit_pattern(args)
    options = baseline.report_options(config)
    db, notice = baseline.open_baseline(baseline.required_path(config.database_in, "database_in"), config)
    notices = [notice]
    warnings: list[str] = []
    with db:
        refuse_rollback(Path(config.state_dir), db.header.generation)
        if db.header.rules_digest != config.digest:
            notices.append("Note: the rules or options differ from those the baseline was recorded with.")
        comparison = compare(
            baseline.within_limit(db.entries(), limit), baseline.scan_tree(config, limit, warnings),
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
