"""The steps `init`, `check`, `update` and `compare` share: load the config, open a baseline
with the configured public key, scan, sign and write, render and print the report.

Argument parsing stays in the command modules; the comparison and rendering logic lives in
`aidepy.compare` and `aidepy.report`. This module only wires them to files and streams.
"""

from __future__ import annotations

import argparse
import heapq
import os
import socket
import sys
import syslog
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aidepy.attributes import BY_NAME, AttrSet
from aidepy.compare import Rehash
from aidepy.config import Config, load
from aidepy.db import Database, DatabaseInfo, open_database, write_database
from aidepy.entry import Entry, sort_key
from aidepy.errors import AidepyError, UsageError
from aidepy.keys import PassphraseError, fingerprint, load_private_key, load_public_key
from aidepy.pcre import Match, Regex, RegexError
from aidepy.progress import StatusLine
from aidepy.report import (
    DatabaseSummary,
    Level,
    Report,
    ReportOptions,
    escape_path,
    render_text,
)
from aidepy.report_json import render_json
from aidepy.scan import ScanWarning, scan


def add_limit_argument(parser: argparse.ArgumentParser) -> None:
    """`-l/--limit REGEX`, as AIDE's."""
    parser.add_argument(
        "-l", "--limit", metavar="REGEX",
        help="only examine entries whose path matches REGEX (a PCRE2 pattern anchored at the start, "
             "as AIDE's --limit; directories on the way to a match are entered); other entries of the "
             "baseline are kept (init, update) or ignored (check)",
    )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true",
        help="print aidepy's JSON report instead of AIDE's text layout (also: report_format=json)",
    )


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


def report_options(config: Config) -> ReportOptions:
    try:
        level = Level.parse(config.report_level)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ReportOptions(
        level=level,
        ignore_added=config.report_ignore_added_attrs,
        ignore_removed=config.report_ignore_removed_attrs,
        ignore_changed=config.report_ignore_changed_attrs,
        force=config.report_force_attrs,
        base16=config.report_base16,
        summarize_changes=config.report_summarize_changes,
        grouped=config.report_grouped,
        detailed_init=config.report_detailed_init,
        ignore_e2fsattrs=config.report_ignore_e2fsattrs,
    )


def required_path(value: str | None, option: str) -> Path:
    if not value:
        raise UsageError(f"no {option} given in the config (e.g. {option}=file:/var/lib/aidepy/aidepy.db)")
    return Path(value)


def public_key_path(path: Path, config: Config) -> Path | None:
    """The key a baseline at `path` must verify against: `public_key`, else the vault's own key
    when the baseline lives on the vault (a signed file there is never taken on trust)."""
    if config.public_key:
        return Path(config.public_key)
    vault = Path(config.vault_mountpoint)
    vault_key = vault / "aidepy.pub"
    if path.resolve().is_relative_to(vault.resolve()) and vault_key.exists():
        return vault_key
    return None


def open_baseline(path: Path, config: Config, *, check_records: bool = True) -> tuple[Database, str]:
    """Open and verify a baseline with the configured public key; also the report's first line."""
    key_path = public_key_path(path, config)
    public_key = load_public_key(key_path) if key_path else None
    db = open_database(path, public_key, check_records=check_records)
    created = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(db.header.created))
    about = f"generation {db.header.generation}, created {created}"
    if public_key is not None:
        notice = f"Baseline {path}: signature verified with key {fingerprint(public_key)} ({about})."
    elif db.signed:
        notice = (f"WARNING: baseline {path} is signed by key {db.key_fingerprint}, but no public_key "
                  f"is configured, so nothing ties it to your key ({about}).")
    else:
        notice = (f"WARNING: baseline {path} is NOT signed and no public_key is configured: nothing "
                  f"proves it is the baseline you recorded ({about}).")
    return db, notice


def unsigned_notice(written: DatabaseSummary) -> list[str]:
    """The report's first line when the database just written carries no signature."""
    if written.signed:
        return []
    return [f"WARNING: the new database {written.path} is NOT signed (no usable signing key)."]


def database_summary(db: Database) -> DatabaseSummary:
    return DatabaseSummary(str(db.path), db.sha256, db.signed, db.key_fingerprint,
                           db.header.created, db.header.generation, db.header.entry_count,
                           authenticated=db.authenticated)


def written_summary(path: Path, info: DatabaseInfo, key_fingerprint: str | None) -> DatabaseSummary:
    return DatabaseSummary(str(path), info.sha256, info.signed, key_fingerprint,
                           info.header.created, info.header.generation, info.header.entry_count)


def signing_key(config: Config, passphrase_file: Path | None) -> tuple[Ed25519PrivateKey | None, str | None]:
    """The private key at `signing_key` and its fingerprint, or (None, None) with a warning."""
    path = Path(config.signing_key)
    passphrase = None
    if passphrase_file is not None:
        try:
            passphrase = passphrase_file.read_bytes().split(b"\n", 1)[0]
        except OSError as exc:
            raise UsageError(f"--passphrase-file {passphrase_file}: {exc.strerror or exc}") from None
    if not path.exists():
        warn(f"no signing key at {path}: writing an UNSIGNED database (aidepy keygen --out {path})")
        return None, None
    try:
        key = load_private_key(path, passphrase)
    except PassphraseError as exc:
        if passphrase is not None:
            raise
        warn(f"{exc}: writing an UNSIGNED database (give --passphrase-file, or sign it with promote)")
        return None, None
    return key, fingerprint(key.public_key())


def write_baseline(config: Config, path: Path, entries: Iterable[Entry], generation: int,
                   passphrase_file: Path | None) -> DatabaseSummary:
    key, key_fingerprint = signing_key(config, passphrase_file)
    info = write_database(path, entries, host=socket.gethostname(), rules_digest=config.digest,
                          generation=generation, signing_key=key)
    return written_summary(path, info, key_fingerprint)


def scan_tree(config: Config, limit: Regex | None, warnings: list[str],
              status: StatusLine) -> Iterator[Entry]:
    """The live file system under the config's rules, shown on `status`; per-file trouble
    lands in `warnings`."""

    def record(warning: ScanWarning) -> None:
        warnings.append(f"{escape_path(warning.path)}: {warning.message}")

    return status.track(scan(config.ruleset, root_prefix=config.root_prefix, limit=limit,
                             workers=config.num_workers, on_warning=record))


def status_line() -> StatusLine:
    """The scan's status line on standard error (drawn only on a terminal)."""
    return StatusLine(sys.stderr)


def within_limit(entries: Iterable[Entry], limit: Regex | None) -> Iterator[Entry]:
    return (e for e in entries if limit is None or limit.match(e.path) is Match.FULL)


def keep_outside_limit(scanned: Iterable[Entry], old: Iterable[Entry],
                       limit: Regex) -> Iterator[Entry]:
    """The new baseline of a limited run: fresh entries inside the limit, old ones outside it."""
    outside = (e for e in old if limit.match(e.path) is not Match.FULL)
    return heapq.merge(scanned, outside, key=lambda e: sort_key(e.path))


def rehasher(root_prefix: bytes) -> Rehash:
    """Hash the first bytes of a live file (for `growing` files whose hashes changed)."""

    def rehash(entry: Entry, size: int, hashes: AttrSet) -> Mapping[str, bytes] | None:
        hashers = {h: new() for h in hashes if (new := BY_NAME[h].new_hash) is not None}
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0)
        try:
            try:
                fd = os.open(root_prefix + entry.path, flags)
            except PermissionError:
                fd = os.open(root_prefix + entry.path, flags & ~getattr(os, "O_NOATIME", 0))
            with os.fdopen(fd, "rb") as f:
                left = size
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        return None
                    left -= len(chunk)
                    for hasher in hashers.values():
                        hasher.update(chunk)
        except OSError:
            return None
        return {h: hasher.digest() for h, hasher in hashers.items()}

    return rehash


def emit(report: Report, args: argparse.Namespace, config: Config) -> None:
    """Deliver the report to each `report_url` (default stdout): `stdout`, `stderr`,
    `file:PATH` (appended with report_append=yes), `syslog:FACILITY`. With report_quiet,
    nothing is delivered when nothing differs. Paths keep their raw bytes."""
    if config.report_quiet and not report.summary.differences:
        return
    as_json = bool(args.json) or config.report_format == "json"
    data = (render_json(report) if as_json else render_text(report)).encode("utf-8", "surrogateescape")
    for url in config.report_urls or ["stdout"]:
        kind, _, value = url.partition(":")
        if url in ("stdout", "stderr"):
            stream = sys.stdout if url == "stdout" else sys.stderr
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()
        elif kind == "file":
            try:
                with open(value, "ab" if config.report_append else "wb") as f:
                    f.write(data)
            except OSError as exc:
                warn(f"report_url {url}: {exc.strerror or exc}")
        elif kind == "syslog":
            facility = getattr(syslog, value or "LOG_LOCAL0", syslog.LOG_LOCAL0)
            syslog.openlog("aidepy", 0, facility)
            for line in data.decode("utf-8", "replace").splitlines():
                if line:
                    syslog.syslog(syslog.LOG_NOTICE, line)
            syslog.closelog()
        else:
            warn(f"report_url {url}: unsupported (use stdout, stderr, file:PATH or syslog:FACILITY)")


def next_generation(path: str | None, config: Config) -> int:
    """One more than the generation of the database at `path` (its digest and signature verify),
    or 1 when there is none usable."""
    if not path or not Path(path).exists():
        return 1
    try:
        with open_baseline(Path(path), config, check_records=False)[0] as db:
            return int(db.header.generation) + 1
    except AidepyError:
        return 1
