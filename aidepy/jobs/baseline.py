"""The trusted baseline: one path for every command that compares the system with it.

`check`, `update`, `compare`, the daily report and promote all come here to locate the baseline
(`database_in`, the vault's `aidepy.db`, or the disk copy the vault's signed anchor pins),
verify it (the pinned key or the vault's, signature, digest, anchor, host, rollback record),
compare a scan or a second database with it under the report options, and build the report.
`init` and `update` write databases here too. The CLI modules only parse arguments and print.

Where the baseline comes from:
    database_in inside vault_mountpoint, or no database_in but vault_device set
        -> the vault's baseline (mounted read-only for the run; anchored layout followed)
    database_in elsewhere -> that file
Which key it must verify against:
    public_key set (a key file, or a `SHA256:...` fingerprint) -> that key only (a pin)
    else the vault's aidepy.pub for a vault baseline; else none (unsigned accepted, with a warning)
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import socket
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aidepy.attributes import BY_NAME, AttrSet
from aidepy.compare import Change, Rehash, Summary, compare
from aidepy.config.evaluate import Config
from aidepy.config.model import ReportSettings
from aidepy.db.file import Database, DatabaseInfo, open_database, write_and_reopen, write_database
from aidepy.entry import Entry, sort_key
from aidepy.errors import (
    AidepyError,
    AnchoredCopyError,
    ForeignHostError,
    ForeignKeyError,
    PassphraseError,
    UsageError,
)
from aidepy.explain.engine import Sources, explain
from aidepy.explain.keyring import vault_keyrings
from aidepy.explain.model import Explained
from aidepy.keys import fingerprint, load_private_key, load_public_key
from aidepy.pcre import Match, Regex
from aidepy.report.escape import escape_path
from aidepy.report.model import DatabaseSummary, Level, Mode, Report, ReportOptions
from aidepy.rollback import Identity, Record
from aidepy.scan.progress import StatusLine
from aidepy.scan.walk import ScanWarning, scan
from aidepy.vault.vault import Vault


def target_options(target: ReportSettings) -> ReportOptions:
    """The `report_*` settings of one report (a report_url, or the config's own at its end) as
    the renderers take them."""
    try:
        level = Level.parse(target.report_level)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ReportOptions(
        level=level,
        ignore_added=target.report_ignore_added_attrs,
        ignore_removed=target.report_ignore_removed_attrs,
        ignore_changed=target.report_ignore_changed_attrs,
        force=target.report_force_attrs,
        base16=target.report_base16,
        summarize_changes=target.report_summarize_changes,
        grouped=target.report_grouped,
        detailed_init=target.report_detailed_init,
        ignore_e2fsattrs=target.report_ignore_e2fsattrs,
    )


def report_options(config: Config) -> ReportOptions:
    """The first report's options, ignoring only the changes every report ignores: the comparison
    keeps what any report counts, so the exit code follows all of them (as AIDE's), and
    `deliver.emit` shows each report_url its own."""
    targets = config.reports
    e2fs = set.intersection(*(set(t.report_ignore_e2fsattrs) for t in targets))
    return dataclasses.replace(
        target_options(targets[0]),
        ignore_changed=frozenset.intersection(*(t.report_ignore_changed_attrs for t in targets)),
        ignore_e2fsattrs="".join(sorted(e2fs)),
    )


# -- where the baseline is, and which key it must verify against ----------------------------------


@dataclass(frozen=True)
class Pin:
    """A configured `public_key`: the only key a baseline may verify against."""

    fingerprint: str
    key: Ed25519PublicKey | None = None
    """The key itself when `public_key` names a key file (None for a bare fingerprint)."""

    @classmethod
    def from_config(cls, config: Config) -> Pin | None:
        value = config.public_key
        if not value:
            return None
        if value.startswith("SHA256:"):
            return cls(value)
        key = load_public_key(Path(value))
        return cls(fingerprint(key), key)

    def check(self, found: str | None, what: str) -> None:
        """Refuse `what` ("baseline X is signed by key K"), whose key is `found`, unless that is
        the pinned key."""
        if found != self.fingerprint:
            raise ForeignKeyError(f"{what}, but public_key pins key {self.fingerprint}: refused")


@dataclass(frozen=True)
class Location:
    """Where a command takes its baseline from: a file, or the vault (either layout)."""

    path: Path | None
    vault: Vault | None


def locate(config: Config, path: Path | None = None, *, from_vault: bool = False) -> Location:
    """The baseline a command uses: the vault's when `from_vault` (the daily report), `path` when
    given (compare's OLD), else as the module docstring says."""
    if from_vault:
        return Location(None, Vault.open(config, warn=lambda _: None))
    wanted = path or (Path(config.database_in) if config.database_in else None)
    if wanted is not None:
        vault_roots = [config.vault_mountpoint, *([config.vault_device] if config.vault_device else [])]
        if any(wanted.absolute().is_relative_to(Path(root).absolute()) for root in vault_roots):
            return Location(None, Vault.open(config, warn=lambda _: None))
        return Location(wanted, None)
    if config.vault_device:
        return Location(None, Vault.open(config, warn=lambda _: None))
    raise UsageError("no baseline: set database_in (a database file), or vault_device (the vault's "
                     "baseline) in the config")


# -- opening it ------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """A verified baseline, open for streaming (see `open_trusted`)."""

    db: Database
    location: Location
    identity: Identity | None
    """Whose generations the rollback record counts; None when no configured key vouches for it."""
    notices: list[str] = field(default_factory=list)
    """The report's first lines: where the baseline is, who signed it, what looked odd."""

    @property
    def generation(self) -> int:
        return int(self.db.header.generation)

    def summary(self) -> DatabaseSummary:
        return database_summary(self.db, authenticated=self.identity is not None)


def database_summary(db: Database, *, authenticated: bool | None = None) -> DatabaseSummary:
    return DatabaseSummary(str(db.path), db.sha256, db.signed, db.key_fingerprint,
                           db.header.created, db.header.generation, db.header.entry_count,
                           authenticated=db.authenticated if authenticated is None else authenticated)


def _about(db: Database) -> str:
    created = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(db.header.created))
    return f"generation {db.header.generation}, created {created} on host {db.header.host}"


def _check_host(db: Database, config: Config) -> list[str]:
    """Refuse (or, with host_mismatch=warn, flag) a baseline recorded on another host."""
    here = socket.gethostname()
    if db.header.host == here:
        return []
    what = f"baseline {db.path} was recorded on host '{db.header.host}', and this is '{here}'"
    if config.host_mismatch == "refuse":
        raise ForeignHostError(f"{what}: refused (set host_mismatch=warn to accept it with a warning)")
    return [f"WARNING: {what} (accepted because host_mismatch=warn)."]


def _rollback(record: Record, identity: Identity, generation: int, vault_baseline: bool,
              has_vault: bool) -> list[str]:
    """Refuse a rollback of `identity`; notices on a record that is unusable or lacks it."""
    notices = []
    if record.problem:
        notices.append(f"WARNING: {record.problem}: rollback protection restarts from generation "
                       f"{generation}.")
    if record.legacy is not None and (vault_baseline or not has_vault):
        record.adopt_legacy(identity)  # the one number an earlier aidepy kept was this baseline's
    elif record.newest(identity) == 0 and generation > 1 and not record.problem:
        notices.append(f"Note: the rollback record in {record.state_dir} holds no generation of the "
                       f"baselines signed by {identity} (a new state directory, or the record was "
                       f"deleted): rollback protection starts at generation {generation}.")
    record.refuse_rollback(identity, generation)
    return notices


@contextmanager
def open_trusted(config: Config, path: Path | None = None, *, from_vault: bool = False,
                 check_records: bool = True, record: bool = True) -> Iterator[Baseline]:
    """The baseline `config` names (or the file `path`), verified, for the `with` block: the
    vault stays mounted (read-only) meanwhile and is put back as it was afterwards. Raises
    VerificationError (signature, digest, anchor, pin, host, rollback), VaultError,
    DatabaseReadError. The generation of an authenticated baseline is recorded as seen (unless
    `record` is false: promote records the one it writes)."""
    pin = Pin.from_config(config)
    location = locate(config, path, from_vault=from_vault)
    with ExitStack() as stack:
        notices: list[str] = []
        vault_identity: str | None = None
        if location.vault is not None:
            vault = location.vault
            stack.enter_context(vault.mounted())
            vault_key = vault.public_key()
            if pin is not None:  # a medium carrying another key is not the admin's vault
                pin.check(fingerprint(vault_key), f"the vault's key {vault.key_path} is "
                                                  f"{fingerprint(vault_key)}")
            key: Ed25519PublicKey | None = vault_key
            db_path, pinned_digest = vault.baseline(key)
            vault_identity = vault.identity()
        else:
            key = pin.key if pin is not None else None
            assert location.path is not None
            db_path, pinned_digest = location.path, None
        db = stack.enter_context(open_database(db_path, key, check_records=check_records))
        if pinned_digest is not None and db.sha256.hex() != pinned_digest:  # swapped after the anchor check
            raise AnchoredCopyError(f"anchored database {db_path} changed after it was checked against "
                                    f"the vault's anchor (sha256 {db.sha256.hex()[:16]}…, pinned "
                                    f"{pinned_digest[:16]}…)")
        if pin is not None:
            pin.check(db.key_fingerprint, f"baseline {db_path} is " + (
                f"signed by key {db.key_fingerprint}" if db.signed else "NOT signed"))
        authenticated = db.signed and (key is not None or pin is not None)
        whose = "the pinned " if pin is not None else "the vault's " if location.vault is not None else ""
        notices.insert(0, _signature_notice(db, authenticated, whose))
        notices += _check_host(db, config)
        identity = (Identity(db.key_fingerprint, vault_identity)
                    if authenticated and db.key_fingerprint else None)
        state = Record.read(Path(config.state_dir))
        if identity is not None:
            notices += _rollback(state, identity, int(db.header.generation), location.vault is not None,
                                 bool(config.vault_device))
            if record:
                try:
                    state.record(identity, int(db.header.generation))
                except OSError as exc:  # a full or read-only state_dir must not stop the check
                    notices.append(f"WARNING: generation {db.header.generation} could not be recorded in "
                                   f"{state.state_dir} ({exc.strerror}): rollback protection is not "
                                   "kept up to date.")
        yield Baseline(db, location, identity, notices)


def _signature_notice(db: Database, authenticated: bool, whose: str) -> str:
    if authenticated:
        return (f"Baseline {db.path}: signature verified with {whose}key {db.key_fingerprint} "
                f"({_about(db)}).")
    if db.signed:
        return (f"WARNING: baseline {db.path} is signed by key {db.key_fingerprint}, but no public_key "
                f"is configured, so nothing ties it to your key ({_about(db)}).")
    return (f"WARNING: baseline {db.path} is NOT signed and no public_key is configured: nothing "
            f"proves it is the baseline you recorded ({_about(db)}).")


# -- scanning and comparing ------------------------------------------------------------------------


def scan_tree(config: Config, limit: Regex | None, warnings: list[str],
              status: StatusLine) -> Iterator[Entry]:
    """The live file system under the config's rules, shown on `status`; per-file trouble
    lands in `warnings`."""

    def record(warning: ScanWarning) -> None:
        warnings.append(f"{escape_path(warning.path)}: {warning.message}")

    return status.track(scan(config.ruleset, root_prefix=config.root_prefix, limit=limit,
                             workers=config.num_workers, on_warning=record))


def within_limit(entries: Iterable[Entry], limit: Regex | None) -> Iterator[Entry]:
    return (e for e in entries if limit is None or limit.match(e.path) is Match.FULL)


def keep_outside_limit(scanned: Iterable[Entry], old: Iterable[Entry], limit: Regex) -> Iterator[Entry]:
    """The new baseline of a limited run: fresh entries inside the limit, old ones outside it."""
    outside = (e for e in old if limit.match(e.path) is not Match.FULL)
    return heapq.merge(scanned, outside, key=lambda e: sort_key(e.path))


def rehasher(root_prefix: bytes) -> Rehash:
    """Hash the first bytes of a live file (for `growing` files whose hashes changed). Opened
    without following a link and without blocking (a FIFO swapped in is no file to hash)."""

    def rehash(entry: Entry, size: int, hashes: AttrSet) -> Mapping[str, bytes] | None:
        hashers = {h: new() for h in hashes if (new := BY_NAME[h].new_hash) is not None}
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)
        try:
            try:
                fd = os.open(root_prefix + entry.path, flags)
            except PermissionError:
                fd = os.open(root_prefix + entry.path, flags & ~getattr(os, "O_NOATIME", 0))
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
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


def differences(old: Iterable[Entry], new: Iterable[Entry], options: ReportOptions,
                rehash: Rehash | None) -> tuple[list[Change], Summary]:
    """Every change from `old` to `new` under the report options (read to the end)."""
    comparison = compare(old, new, ignore_changed=options.ignore_changed,
                         ignore_e2fsattrs=options.ignore_e2fsattrs, rehash=rehash)
    return list(comparison), comparison.summary


def rules_notice(baseline: Baseline, config: Config) -> list[str]:
    if baseline.db.header.rules_digest == config.digest:
        return []
    return ["Note: the rules or options differ from those the baseline was recorded with."]


def explanations(config: Config, baseline: Baseline, changes: Sequence[Change]) -> Explained | None:
    """Why each change happened (`aidepy.explain`), unless explain_changes=no; the vault must be
    mounted (its keyrings are the only ones trusted). None also when the host has no dpkg."""
    if not config.explain_changes or not changes:
        return None
    vault = baseline.location.vault
    cache = [Path(config.package_cache)] if config.package_cache else []
    return explain(changes, Sources(config.root_prefix, vault_keyrings(vault.root) if vault else None,
                                    float(baseline.db.header.created), cache,
                                    rehasher(config.root_prefix)))


# -- writing databases -----------------------------------------------------------------------------


def signing_key(config: Config, passphrase_file: Path | None, warn: Callable[[str], None]
                ) -> tuple[Ed25519PrivateKey | None, str | None]:
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


def written_summary(path: Path, info: DatabaseInfo, key_fingerprint: str | None) -> DatabaseSummary:
    return DatabaseSummary(str(path), info.sha256, info.signed, key_fingerprint,
                           info.header.created, info.header.generation, info.header.entry_count)


def unsigned_notice(written: DatabaseSummary) -> list[str]:
    """The report's first line when the database just written carries no signature."""
    if written.signed:
        return []
    return [f"WARNING: the new database {written.path} is NOT signed (no usable signing key)."]


def next_generation(config: Config) -> int:
    """One more than the generation of the baseline at database_in (when it verifies), else 1."""
    if not config.database_in or not Path(config.database_in).exists():
        return 1
    try:
        with open_trusted(config, check_records=False, record=False) as baseline:
            return baseline.generation + 1
    except AidepyError:
        return 1


def required_path(value: str | None, option: str) -> Path:
    if not value:
        raise UsageError(f"no {option} given in the config (e.g. {option}=file:/var/lib/aidepy/aidepy.db)")
    return Path(value)


# -- the commands ----------------------------------------------------------------------------------


@dataclass
class Scan:
    """A scan to compare with the baseline: its entries (lazy: nothing is read before the
    baseline verified), the per-file warnings it collects, and `--limit`."""

    entries: Iterable[Entry]
    warnings: list[str] = field(default_factory=list)
    limit: Regex | None = None
    limit_text: str | None = None

    @classmethod
    def of(cls, config: Config, status: StatusLine, limit: Regex | None = None,
           limit_text: str | None = None) -> Scan:
        """The live file system under `config`'s rules, shown on `status`."""
        warnings: list[str] = []
        return cls(scan_tree(config, limit, warnings, status), warnings, limit, limit_text)


@dataclass(frozen=True)
class Compared:
    """What `compare_scan` found, and the database it wrote (if asked to)."""

    changes: list[Change]
    summary: Summary
    written: DatabaseSummary | None = None


def compare_scan(baseline: Baseline | None, config: Config, scan: Scan, options: ReportOptions, *,
                 out: Path | None = None, generation: int = 0, key: Ed25519PrivateKey | None = None,
                 key_fingerprint: str | None = None) -> Compared:
    """Compare `scan` with `baseline` (None: no baseline, everything is added), re-hashing
    growing files. With `out`, the scan is also written there (signed with `key`) and compared
    as written, read back through the descriptor that wrote it (never re-opened by name)."""
    old = () if baseline is None else within_limit(baseline.db.entries(), scan.limit)
    rehash = rehasher(config.root_prefix)
    if out is None:
        return Compared(*differences(old, scan.entries, options, rehash))
    entries = scan.entries
    if scan.limit is not None and baseline is not None:
        entries = keep_outside_limit(entries, baseline.db.entries(), scan.limit)
    info, written = write_and_reopen(out, entries, host=socket.gethostname(), rules_digest=config.digest,
                                     generation=generation, signing_key=key)
    with written:  # one scan, and memory stays flat for any tree size
        changes, summary = differences(old, within_limit(written.entries(), scan.limit), options, rehash)
    return Compared(changes, summary, written_summary(out, info, key_fingerprint))


def init(config: Config, scan: Scan, passphrase_file: Path | None, warn: Callable[[str], None]) -> Report:
    """Scan and write database_out (a limited run keeps database_in's entries outside the limit)."""
    start = time.time()
    options = report_options(config)
    out = required_path(config.database_out, "database_out")
    generation = next_generation(config)
    summary = Summary()
    changes: list[Change] | None = [] if options.detailed_init else None
    key, key_fingerprint = signing_key(config, passphrase_file, warn)

    def recorded(entries: Iterable[Entry]) -> Iterator[Entry]:
        for entry in entries:
            summary.total += 1
            if changes is not None:
                changes.append(Change(entry.path, entry.ftype, None, entry))
            yield entry

    with ExitStack() as stack:
        entries = scan.entries
        if scan.limit is not None and config.database_in and Path(config.database_in).exists():
            old = stack.enter_context(open_trusted(config))
            entries = keep_outside_limit(entries, old.db.entries(), scan.limit)
        info = write_database(out, recorded(entries), host=socket.gethostname(),
                              rules_digest=config.digest, generation=generation, signing_key=key)
    written = written_summary(out, info, key_fingerprint)
    return Report(Mode.INIT, changes or [], summary, start, time.time(), options, [written],
                  new_database=str(out), limit=scan.limit_text, root_prefix=config.root_prefix,
                  notices=unsigned_notice(written), warnings=scan.warnings)


def check(config: Config, scan: Scan, notices: Sequence[str] = ()) -> Report:
    """Compare the file system with the trusted baseline."""
    start = time.time()
    options = report_options(config)
    # each record's structure is checked as the comparison reads it; nothing is reported before
    # the whole baseline has been read (a malformed record ends the run with exit 20)
    with open_trusted(config, check_records=False) as baseline:
        found = compare_scan(baseline, config, scan, options)
        explained = explanations(config, baseline, found.changes)
    return Report(Mode.CHECK, found.changes, found.summary, start, time.time(), options,
                  [baseline.summary()], limit=scan.limit_text, root_prefix=config.root_prefix,
                  notices=[*baseline.notices, *notices, *rules_notice(baseline, config),
                           *(explained.notices if explained else ())],
                  warnings=scan.warnings, explained=explained)


def update(config: Config, scan: Scan, passphrase_file: Path | None, warn: Callable[[str], None]) -> Report:
    """Check, and write database_out from the same scan (generation: the baseline's plus one)."""
    start = time.time()
    options = report_options(config)
    out = required_path(config.database_out, "database_out")
    key, key_fingerprint = signing_key(config, passphrase_file, warn)
    with open_trusted(config) as baseline:  # whole, before the new database is written
        found = compare_scan(baseline, config, scan, options, out=out, generation=baseline.generation + 1,
                             key=key, key_fingerprint=key_fingerprint)
    assert found.written is not None
    return Report(Mode.UPDATE, found.changes, found.summary, start, time.time(), options,
                  [baseline.summary(), found.written], new_database=str(out), limit=scan.limit_text,
                  root_prefix=config.root_prefix, warnings=scan.warnings,
                  notices=[*baseline.notices, *unsigned_notice(found.written)])


def compare_databases(config: Config, old: Path | None, new: Path | None, limit: Regex | None = None,
                      limit_text: str | None = None) -> Report:
    """Compare the trusted baseline (or OLD, verified the same way) with NEW (default database_new)."""
    start = time.time()
    options = report_options(config)
    new_path = new or required_path(config.database_new, "database_new")
    # records are checked as the comparison reads them, before anything is reported
    with open_trusted(config, old, check_records=False) as baseline, \
            open_database(new_path, None, check_records=False) as newer:
        state = f"signed by key {newer.key_fingerprint}" if newer.signed else "NOT signed"
        notices = [*baseline.notices, f"Database {new_path} is {state} ({_about(newer)})."]
        if newer.header.host != baseline.db.header.host:
            notices.append(f"WARNING: the two databases come from different hosts "
                           f"('{baseline.db.header.host}' and '{newer.header.host}').")
        changes, summary = differences(within_limit(baseline.db.entries(), limit),
                                       within_limit(newer.entries(), limit), options, None)
        databases = [baseline.summary(), database_summary(newer)]
    return Report(Mode.COMPARE, changes, summary, start, time.time(), options, databases,
                  limit=limit_text, notices=notices)
