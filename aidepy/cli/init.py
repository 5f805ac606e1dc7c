"""`aidepy init` (AIDE's --init, -i): scan the file system and write a new, signed database."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from aidepy.cli import baseline
from aidepy.cli.options import add_config_arguments
from aidepy.compare import Change, Summary
from aidepy.entry import Entry
from aidepy.report import Mode, Report

NAME = "init"
HELP = "scan the file system and write a new database (database_out)"
DESCRIPTION = """\
Scan every file the rules of the config file select and write their attributes and hashes
to database_out, like AIDE's --init. The database is signed with the Ed25519 key at
signing_key when that key exists and can be loaded (an encrypted key needs
--passphrase-file); otherwise it is written unsigned, with a warning, and a check will only
accept it while no public_key is configured. The write is atomic (temporary file, fsync,
rename, fsync of the directory); a failed write leaves any previous file intact (exit 14).

The new database is a candidate: review it, then put it on the vault (`aidepy promote` does
this at the console). Its generation number is one more than that of database_in when that
database exists and verifies, else 1. With --limit, only entries matching the limit are
scanned; the others are copied from database_in when there is one.

The report states the number of entries and the new database's checksum and signature;
with report_detailed_init=yes it also lists every entry as added. Exit status 0 on success,
14 when the database cannot be written, 15-19 for argument, config and I/O errors.

On a terminal, a status line on standard error shows how far the scan has got (entries,
time, the path being scanned); it is erased before the report. Cron and pipes never see it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    baseline.add_limit_argument(parser)
    baseline.add_json_argument(parser)
    baseline.add_passphrase_argument(parser)


def _recorded(entries: Iterable[Entry], changes: list[Change] | None, summary: Summary) -> Iterator[Entry]:
    for entry in entries:
        summary.total += 1
        if changes is not None:
            changes.append(Change(entry.path, entry.ftype, None, entry))
        yield entry


def run(args: argparse.Namespace) -> int:
    start = time.time()
    config = baseline.load_config(args)
    limit = baseline.limit_pattern(args)
    options = baseline.report_options(config)
    out = baseline.required_path(config.database_out, "database_out")
    generation = baseline.next_generation(config.database_in, config)
    warnings: list[str] = []
    summary = Summary()
    changes: list[Change] | None = [] if options.detailed_init else None
    with baseline.status_line() as status:
        scanned = baseline.scan_tree(config, limit, warnings, status)
        if limit is not None and config.database_in and Path(config.database_in).exists():
            old, _ = baseline.open_baseline(Path(config.database_in), config)
            with old:
                entries = baseline.keep_outside_limit(scanned, old.entries(), limit)
                written = baseline.write_baseline(config, out, _recorded(entries, changes, summary),
                                                  generation, args.passphrase_file)
        else:
            written = baseline.write_baseline(config, out, _recorded(scanned, changes, summary),
                                              generation, args.passphrase_file)
    report = Report(
        Mode.INIT, changes or [], summary, start, time.time(), options, [written],
        new_database=str(out), limit=args.limit, root_prefix=config.root_prefix,
        notices=baseline.unsigned_notice(written), warnings=warnings,
    )
    baseline.emit(report, args, config)
    return 0
