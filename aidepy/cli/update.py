"""`aidepy update` (AIDE's --update, -u): check, and write a fresh database from the same scan."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aidepy.cli import baseline
from aidepy.cli.options import add_config_arguments
from aidepy.compare import compare
from aidepy.db import open_database
from aidepy.report import Mode, Report

NAME = "update"
HELP = "check, and write a new database (database_out) from the same scan"
DESCRIPTION = """\
Do what `check` does, and write the scanned state as a new database to database_out, like
AIDE's --update. The baseline (database_in) is verified first, exactly as for `check`; the
new database is signed with the key at signing_key when that key can be loaded (an
encrypted key needs --passphrase-file), and written unsigned with a warning otherwise.
The write is atomic: a temporary file beside database_out, fsync, rename, fsync of the
directory; a failed write leaves any previous database_out intact (exit code 14).

The new database is not trusted by anything until you review it and promote it onto the
vault (`aidepy promote` scans afresh and signs at the console). Its generation number is one
more than the baseline's. With --limit, entries outside the limit are copied unchanged from
the baseline into the new database.

The report is the `check` report followed by the new database's checksum and signature;
the exit status is the same as for `check`.

On a terminal, a status line on standard error shows how far the scan has got (entries,
time, the path being scanned); it is erased before the report. Cron and pipes never see it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    baseline.add_limit_argument(parser)
    baseline.add_json_argument(parser)
    baseline.add_passphrase_argument(parser)


def run(args: argparse.Namespace) -> int:
    start = time.time()
    config = baseline.load_config(args)
    limit = baseline.limit_pattern(args)
    options = baseline.report_options(config)
    out = baseline.required_path(config.database_out, "database_out")
    # fully verified before the new database is written (check and compare need less)
    old, notice = baseline.open_baseline(baseline.required_path(config.database_in, "database_in"), config)
    warnings: list[str] = []
    with old, baseline.status_line() as status:
        scanned = baseline.scan_tree(config, limit, warnings, status)
        entries = scanned if limit is None else baseline.keep_outside_limit(scanned, old.entries(), limit)
        generation = old.header.generation + 1
        written = baseline.write_baseline(config, out, entries, generation, args.passphrase_file)
        # Compare against what was written: one scan, and memory stays flat for any tree size.
        with open_database(Path(out), None, check_records=False) as new:  # written just now
            comparison = compare(
                baseline.within_limit(old.entries(), limit), baseline.within_limit(new.entries(), limit),
                ignore_changed=options.ignore_changed, ignore_e2fsattrs=options.ignore_e2fsattrs,
                rehash=baseline.rehasher(config.root_prefix),
            )
            changes = list(comparison)
        databases = [baseline.database_summary(old), written]
    report = Report(
        Mode.UPDATE, changes, comparison.summary, start, time.time(), options, databases,
        new_database=str(out), limit=args.limit, root_prefix=config.root_prefix,
        notices=[notice, *baseline.unsigned_notice(written)], warnings=warnings,
    )
    baseline.emit(report, args, config)
    return comparison.summary.exit_code
