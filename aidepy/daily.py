"""The daily job's check: the vault's baseline, verified, against a fresh scan; never raises for
a baseline that cannot be used, but returns an alarm, because that report must be mailed too.

Steps: mount the vault read-only if it is not mounted; verify the baseline with the vault's
public key; refuse a generation older than the newest this host has seen (rollback); note what
an interrupted promote left behind (a read-write or unprotected vault, temp files); scan into
`aidepy.db.new` under the state directory (for reading only: promote never uses it); compare;
render the report. Delivery (mail, syslog) is `aidepy.notify`'s.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aidepy import keys
from aidepy.compare import compare
from aidepy.db import open_database, write_database
from aidepy.entry import Entry
from aidepy.errors import AidepyError, DatabaseWriteError, ExitCode, VaultError, VerificationError
from aidepy.medium import MediumKind
from aidepy.notify import Verdict
from aidepy.promote import PROMOTE_WORK
from aidepy.report import DatabaseSummary, Mode, Report, ReportOptions, render_text
from aidepy.rollback import record_seen, refuse_rollback
from aidepy.vault import Vault

if TYPE_CHECKING:
    from aidepy.compare import Rehash
    from aidepy.config import Config

NEW_DATABASE = "aidepy.db.new"


@dataclass(frozen=True)
class DailyReport:
    """One daily run's outcome: what to mail and log, and the exit code."""

    verdict: Verdict
    text: str
    exit_code: int


def alarm_text(host: str, failure: AidepyError) -> str:
    """The body of the mail sent when no check could be done."""
    what = ("THE BASELINE ON THE VAULT FAILED VERIFICATION" if isinstance(failure, VerificationError)
            else "THE NEW DATABASE COULD NOT BE WRITTEN" if isinstance(failure, DatabaseWriteError)
            else "THE VAULT'S BASELINE COULD NOT BE USED")
    if isinstance(failure, DatabaseWriteError):
        return (f"!!! aidepy ALERT on {host}: NO CHECK WAS DONE TODAY !!!\n\n{what}:\n    {failure}\n\n"
                "The scan could not be stored, so no comparison was made. Make room in the state "
                "directory\n(state_dir), then run `aidepy report` again.\n")
    return (f"!!! aidepy ALERT on {host}: NO CHECK WAS DONE TODAY !!!\n\n{what}:\n    {failure}\n\n"
            "No comparison was made, because a baseline that does not verify cannot be trusted. "
            "Someone may have\ntampered with the vault or with this host, or the medium is "
            "missing or damaged. Check it at the\nconsole: `aidepy vault status`, and compare the "
            "key fingerprint with the one you recorded.\n")


def leftovers(vault: Vault, state_dir: Path) -> list[str]:
    """Notices on what an interrupted promote or vault write left behind: the vault mounted
    read-write or not write-protected, temp files on the vault, promote's work directories."""
    notes = []
    current = vault.current_mount()
    if current is not None and not current.read_only:
        notes.append(f"WARNING: the vault is mounted read-write at {current.mountpoint} (an interrupted "
                     "promote?): restore its write protection, then run 'aidepy vault mount'.")
    elif vault.medium.kind is not MediumKind.DIRECTORY:
        with suppress(VaultError, OSError):  # a medium that cannot be probed: the mount said enough
            if vault.write_protection() is None:
                notes.append("WARNING: the vault is not write-protected: restore its write protection.")
    notes += [f"Note: {p.name} on the vault was left by an interrupted write (the next promote removes it)."
              for p in sorted(vault.root.glob(".*.tmp"))]
    notes += [f"Note: {p} was left by an interrupted promote (the next promote removes it)."
              for p in sorted(state_dir.glob(f"{PROMOTE_WORK}*"))]
    return notes


def protected_rules(config: Config, before: Sequence[str] = (), after: Sequence[str] = ()
                    ) -> tuple[Config, str]:
    """The rules the daily check runs with, and the report line that says where they came from:
    the copy on the vault (written by promote; the host cannot change it) when there is one,
    else `config`, the live rules, with a warning. A vault that cannot be used here is left for
    `run_daily` to raise its alarm about."""
    vault = Vault.open(config, warn=lambda _: None)
    try:
        with vault.mounted() as root:
            rules = vault.load_rules(before, after)
    except AidepyError as exc:
        return config, f"WARNING: checked with the live rules, which this host can change ({exc})."
    return rules, f"Rules: the copy on the vault ({root}), which this host cannot change."


def run_daily(
    config: Config, options: ReportOptions, scanned: Iterable[Entry], warnings: list[str],
    live_sources: Sequence[Path], rehash: Rehash | None = None, notices: Sequence[str] = (),
) -> DailyReport:
    """Check the host against the vault's baseline: `scanned` is the live scan (consumed only
    once the baseline verified; per-file trouble lands in `warnings`); `live_sources` are the
    files of the live config, compared with the rules copy on the vault. An unusable baseline
    gives an alarm report instead."""
    start = time.time()
    host = socket.gethostname()
    state_dir = Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    vault = Vault.open(config, warn=warnings.append)
    try:
        with vault.mounted():
            key = vault.public_key()
            baseline = open_database(vault.baseline_path(), key)  # whole, before anything is scanned
            with baseline:
                generation = baseline.header.generation
                refuse_rollback(state_dir, generation)
                notices = [f"Baseline {baseline.path}: signature verified with the vault's key "
                           f"{keys.fingerprint(key)} (generation {generation}).", *notices]
                notices += [f"Note: {line}" for line in vault.rules_changes(live_sources)]
                notices += [f"WARNING: runtime: {line}" for line in vault.runtime_changes() or []]
                notices += leftovers(vault, state_dir)
                if baseline.header.rules_digest != config.digest:
                    notices.append("Note: the rules differ from those the baseline was recorded with.")
                new_path = state_dir / NEW_DATABASE
                for stale in sorted(state_dir.glob(f".{NEW_DATABASE}.*.tmp")):  # db.write_database's
                    stale.unlink(missing_ok=True)
                    notices.append(f"Note: removed {stale.name}, left in {state_dir} by an interrupted run.")
                write_database(new_path, scanned, host=host, rules_digest=config.digest,
                               generation=generation, signing_key=None)
                with open_database(new_path, None, check_records=False) as fresh:  # written just now
                    comparison = compare(baseline.entries(), fresh.entries(),
                                         ignore_changed=options.ignore_changed,
                                         ignore_e2fsattrs=options.ignore_e2fsattrs, rehash=rehash)
                    changes = list(comparison)
                summary = DatabaseSummary(str(baseline.path), baseline.sha256, baseline.signed,
                                          baseline.key_fingerprint, baseline.header.created, generation,
                                          baseline.header.entry_count, authenticated=baseline.authenticated)
            record_seen(state_dir, generation)
    except AidepyError as exc:
        alarm = ("BASELINE FAILED VERIFICATION" if isinstance(exc, VerificationError)
                 else "CANNOT WRITE THE NEW DATABASE" if isinstance(exc, DatabaseWriteError)
                 else "BASELINE NOT USABLE")
        code = exc.exit_code if exc.exit_code != ExitCode.OK else ExitCode.VERIFICATION_FAILED
        return DailyReport(Verdict(host, failure=str(exc), alarm=alarm), alarm_text(host, exc), int(code))
    report = Report(Mode.CHECK, changes, comparison.summary, start, time.time(), options, [summary],
                    new_database=str(new_path), root_prefix=config.root_prefix, notices=notices,
                    warnings=warnings)
    s = comparison.summary
    return DailyReport(Verdict(host, s.added, s.removed, s.changed), render_text(report), s.exit_code)

