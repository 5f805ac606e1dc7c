"""`aidepy init` (AIDE's --init, -i): scan the file system and write a new, signed database."""

from __future__ import annotations

import argparse

from aidepy.cli.options import (
    add_config_arguments,
    add_format_argument,
    add_limit_argument,
    add_passphrase_argument,
    emit,
    load_config,
    scan_of,
    status_line,
    warn,
)
from aidepy.jobs import baseline

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
    add_limit_argument(parser)
    add_format_argument(parser)
    add_passphrase_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    with status_line() as status:
        report = baseline.init(config, scan_of(args, config, status), args.passphrase_file, warn)
    emit(report, args, config)
    return 0
