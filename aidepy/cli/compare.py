"""`aidepy compare` (AIDE's --compare, -E): compare two databases without touching the file system."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aidepy.cli import baseline
from aidepy.cli.options import add_config_arguments
from aidepy.compare import compare
from aidepy.db import open_database
from aidepy.report import Mode, Report

NAME = "compare"
HELP = "compare two databases (default: database_in with database_new)"
DESCRIPTION = """\
Compare the database OLD (default: database_in of the config) with the database NEW
(default: database_new), like AIDE's --compare, and print the same report as `check`, with
"the two databases" in its verdict. The file system is not read.

OLD is verified like a baseline: with public_key set in the config only a database signed by
that key is accepted (exit code 20 otherwise, and no report). NEW is verified for integrity
and against the key it names; the report's first lines say whether each one is signed.
Attributes are compared only where both databases recorded them. Files under `growing`
whose hashes changed stay changed (there is no file to rehash), as in AIDE.

Exit status: 0 no differences; otherwise the sum of 1 (added), 2 (removed) and 4 (changed);
14-19 AIDE's error codes; 20 a database failed verification."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD", nargs="?", help="the older database (default: database_in)")
    parser.add_argument("new", metavar="NEW", nargs="?", help="the newer database (default: database_new)")
    add_config_arguments(parser)
    baseline.add_limit_argument(parser)
    baseline.add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    start = time.time()
    config = baseline.load_config(args)
    limit = baseline.limit_pattern(args)
    options = baseline.report_options(config)
    old_path = Path(args.old) if args.old else baseline.required_path(config.database_in, "database_in")
    new_path = Path(args.new) if args.new else baseline.required_path(config.database_new, "database_new")
    # records are checked as the comparison reads them, before anything is reported
    old, notice = baseline.open_baseline(old_path, config, check_records=False)
    with old, open_database(new_path, None, check_records=False) as new:
        state = f"signed by key {new.key_fingerprint}" if new.signed else "NOT signed"
        notices = [notice, f"Database {new_path} is {state}."]
        comparison = compare(
            baseline.within_limit(old.entries(), limit), baseline.within_limit(new.entries(), limit),
            ignore_changed=options.ignore_changed, ignore_e2fsattrs=options.ignore_e2fsattrs,
        )
        changes = list(comparison)
        databases = [baseline.database_summary(old), baseline.database_summary(new)]
    report = Report(
        Mode.COMPARE, changes, comparison.summary, start, time.time(), options, databases,
        limit=args.limit, notices=notices,
    )
    baseline.emit(report, args, config)
    return comparison.summary.exit_code
