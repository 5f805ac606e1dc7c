"""Arguments shared by several commands, and turning them into the values the jobs take."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from aidepy.config.evaluate import Config, load
from aidepy.errors import UsageError
from aidepy.jobs import deliver
from aidepy.jobs.baseline import Scan, locate
from aidepy.lock import run_lock
from aidepy.pcre import Regex, RegexError
from aidepy.report import FORMATS
from aidepy.report.model import Report
from aidepy.scan.progress import StatusLine

DEFAULT_CONFIG = "/etc/aidepy/aidepy.conf"

BASELINE_HELP = """\
Where the baseline comes from (the same for check, update, compare, report and promote):
database_in, when it names a file outside the vault; the vault's baseline when database_in
lies on the vault (vault_mountpoint) or is not set while vault_device is: the vault is mounted
read-only for the run and put back as it was, and when it holds only a signed anchor (the
baseline did not fit), the anchored copy under state_dir is used once it matches the anchor.
The daily report always uses the vault's.

How it is verified: with public_key set (a key file, or a fingerprint `SHA256:...`) that key is
a pin: a baseline, or a vault, with any other key is refused (exit 20), naming the key found.
Without it, a baseline on the vault must verify with the vault's aidepy.pub, and one elsewhere
is accepted unsigned or signed by any key, with a WARNING as the report's first line. A
baseline recorded on another host is refused (host_mismatch=warn accepts it with a warning).
A baseline older than the newest generation this host has verified of the same key (and
vault) is refused as a rollback (exit 20); the generations verified are kept in
state_dir/generations.seen."""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`-c/--config`, and AIDE's `-B/--before` and `-A/--after` extra config lines."""
    parser.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
        help=f"rules and settings in aide.conf syntax (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "-B", "--before", action="append", default=[], metavar="LINE",
        help="config line parsed before the config file (repeatable)",
    )
    parser.add_argument(
        "-A", "--after", action="append", default=[], metavar="LINE",
        help="config line parsed after the config file (repeatable)",
    )


def add_limit_argument(parser: argparse.ArgumentParser) -> None:
    """`-l/--limit REGEX`, as AIDE's."""
    parser.add_argument(
        "-l", "--limit", metavar="REGEX",
        help="only examine entries whose path matches REGEX (a PCRE2 pattern anchored at the start, "
             "as AIDE's --limit; directories on the way to a match are entered); other entries of the "
             "baseline are kept (init, update) or ignored (check)",
    )


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """`--format NAME` (a key of `aidepy.report.FORMATS`), and `--json` for `--format json`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--format", choices=FORMATS, metavar="{" + ",".join(FORMATS) + "}",
        help=f"the report's format ({', '.join(FORMATS)}) for every report_url, instead of its "
             "report_format (default: plain, AIDE's text layout)",
    )
    group.add_argument("--json", dest="format", action="store_const", const="json",
                       help="the same as --format json")


def add_passphrase_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file", metavar="FILE", type=Path,
        help="read the signing key's passphrase from the first line of FILE; without it, an "
             "encrypted signing key is not used and the database is written unsigned (with a warning)",
    )


def warn(message: str) -> None:
    print(f"aidepy: warning: {message}", file=sys.stderr)


def load_config(args: argparse.Namespace) -> Config:
    """The config named by `-c`, with `-B`/`-A` lines; prints its warnings to stderr."""
    config = load(args.config, before=args.before, after=args.after)
    for message in config.warnings:
        warn(message)
    return config


def limit_pattern(args: argparse.Namespace) -> Regex | None:
    """`--limit`, compiled as AIDE compiles it (PCRE2, anchored at the start)."""
    if not args.limit:
        return None
    try:
        return Regex(os.fsencode(args.limit))
    except RegexError as exc:
        raise UsageError(f"--limit: error in regular expression '{args.limit}' at {exc.offset}: "
                         f"{exc.message}") from None


def status_line() -> StatusLine:
    """The scan's status line on standard error (drawn only on a terminal)."""
    return StatusLine(sys.stderr)


def scan_of(args: argparse.Namespace, config: Config, status: StatusLine) -> Scan:
    """The scan a command compares: the live file system under `config`, with `--limit`."""
    return Scan.of(config, status, limit_pattern(args), args.limit)


def emit(report: Report, args: argparse.Namespace, config: Config) -> None:
    """Print or deliver `report` as the config's report_urls say, in `--format` if given."""
    deliver.emit(report, config, fmt=args.format, warn=warn)


def vault_lock(config: Config, path: Path | None = None) -> AbstractContextManager[object]:
    """The run lock when the baseline (`path`, or the config's) is the vault's, which is then
    mounted for the run: never beside the daily report or promote. Nothing otherwise."""
    if locate(config, path).vault is None:
        return nullcontext()
    return run_lock(config.state_dir)
