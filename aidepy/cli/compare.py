"""`aidepy compare` (AIDE's --compare, -E): compare two databases without touching the file system."""

from __future__ import annotations

import argparse
from pathlib import Path

from aidepy.cli.options import (
    BASELINE_HELP,
    add_config_arguments,
    add_format_argument,
    add_limit_argument,
    emit,
    limit_pattern,
    load_config,
    vault_lock,
)
from aidepy.jobs import baseline

NAME = "compare"
HELP = "compare two databases (default: the baseline with database_new)"
DESCRIPTION = f"""\
Compare the database OLD (default: the baseline, found as for `check`) with the database NEW
(default: database_new), like AIDE's --compare, and print the same report as `check`, with
"the two databases" in its verdict. The file system is not read.

OLD is verified as the baseline is (below), also when given on the command line. NEW is
verified for integrity and against the key it names; the report's first lines say whether
each one is signed, and on which host each was recorded (a warning when they differ).
Attributes are compared only where both databases recorded them. Files under `growing`
whose hashes changed stay changed (there is no file to rehash), as in AIDE.

Exit status: 0 no differences; otherwise the sum of 1 (added), 2 (removed) and 4 (changed);
14-19 AIDE's error codes; 20 a database failed verification.

{BASELINE_HELP}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD", nargs="?", help="the older database (default: the baseline, "
                        "as for check: database_in, or the vault's)")
    parser.add_argument("new", metavar="NEW", nargs="?", help="the newer database (default: database_new)")
    add_config_arguments(parser)
    add_limit_argument(parser)
    add_format_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    old = Path(args.old) if args.old else None
    with vault_lock(config, old):
        report = baseline.compare_databases(config, old, Path(args.new) if args.new else None,
                                            limit_pattern(args), args.limit)
    emit(report, args, config)
    return report.summary.exit_code
