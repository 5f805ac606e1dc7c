"""`aidepy update` (AIDE's --update, -u): check, and write a fresh database from the same scan."""

from __future__ import annotations

import argparse

from aidepy.cli.options import (
    BASELINE_HELP,
    add_config_arguments,
    add_format_argument,
    add_limit_argument,
    add_passphrase_argument,
    emit,
    load_config,
    scan_of,
    status_line,
    vault_lock,
    warn,
)
from aidepy.jobs import baseline

NAME = "update"
HELP = "check, and write a new database (database_out) from the same scan"
DESCRIPTION = f"""\
Do what `check` does, and write the scanned state as a new database to database_out, like
AIDE's --update. The baseline is found and verified first, exactly as for `check` (a
rollback is refused there too); the new database is signed with the key at signing_key
when that key can be loaded (an encrypted key needs --passphrase-file), and written
unsigned with a warning otherwise.
The write is atomic: a temporary file beside database_out, fsync, rename, fsync of the
directory; a failed write leaves any previous database_out intact (exit code 14).

The new database is not trusted by anything until you review it and promote it onto the
vault (`aidepy promote` scans afresh and signs at the console). Its generation number is one
more than the baseline's. With --limit, entries outside the limit are copied unchanged from
the baseline into the new database.

The report is the `check` report followed by the new database's checksum and signature;
the exit status is the same as for `check`.

On a terminal, a status line on standard error shows how far the scan has got (entries,
time, the path being scanned); it is erased before the report. Cron and pipes never see it.

{BASELINE_HELP}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_limit_argument(parser)
    add_format_argument(parser)
    add_passphrase_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    with status_line() as status, vault_lock(config):
        report = baseline.update(config, scan_of(args, config, status), args.passphrase_file, warn)
    emit(report, args, config)
    return report.summary.exit_code
