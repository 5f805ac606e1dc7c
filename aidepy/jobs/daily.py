"""The daily job's check: the vault's baseline, verified, against a fresh scan; never raises for
a baseline that cannot be used, but returns an alarm, because that report must be mailed too.

Steps: take the rules from the copy on the vault (the live config only says where things are);
open the vault's baseline through the one trusted path (`aidepy.jobs.baseline`: pin or vault
key, anchor, host, rollback record); note what an interrupted promote left behind (a
read-write or unprotected vault, temp files); scan into `aidepy.db.new` under the state
directory, for reading only, and compare what was written through the descriptor that wrote
it; render the report. Delivery (mail, syslog) is `aidepy.report.mail`'s.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from aidepy import keys, state
from aidepy.compare import ChangeKind
from aidepy.config.evaluate import Config
from aidepy.config.options import LOCATION_OPTIONS
from aidepy.errors import (
    AidepyError,
    ApprovalLogError,
    BusyError,
    DatabaseWriteError,
    ExitCode,
    StateIOError,
    UnsafeLayoutError,
    VaultError,
    VerificationError,
)
from aidepy.explain.keyring import keyring_changes
from aidepy.jobs import pending
from aidepy.jobs.baseline import Scan, compare_scan, explanations, open_trusted, report_options, rules_notice
from aidepy.report import render
from aidepy.report.mail import Outcome
from aidepy.report.model import Mode, Report, explanation_counts
from aidepy.vault import approvals, runtime
from aidepy.vault.medium import HARDWARE, MediumKind
from aidepy.vault.vault import Vault

_ALERT_LINE = re.compile(r"ALERT ([A-Z][A-Z' -]*[A-Z]): ")


def alert(words: str, detail: str) -> str:
    """A report line whose `words` (capitals) also go into the mail's subject as an alarm."""
    return f"ALERT {words}: {detail}"


def alarms(lines: Iterable[str]) -> tuple[str, ...]:
    """The alarm words of the `alert` lines among `lines`, each once, in order."""
    found = (m.group(1) for line in lines if (m := _ALERT_LINE.match(line)))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class DailyReport:
    """One daily run's outcome: what to mail and log, and the exit code."""

    outcome: Outcome
    text: str
    exit_code: int


def failed(host: str, failure: AidepyError | OSError) -> DailyReport:
    """The report mailed when no check could be done (an OSError is a state file or directory
    that could not be used: an I/O ERROR alarm, exit 18)."""
    if isinstance(failure, OSError):
        where = f"{failure.filename}: " if failure.filename else ""
        failure = StateIOError(f"{where}{failure.strerror or failure}")
    code = failure.exit_code if failure.exit_code != ExitCode.OK else ExitCode.VERIFICATION_FAILED
    outcome = Outcome(host, failure=str(failure), alarms=(failure.alarm,))
    return DailyReport(outcome, alarm_text(host, failure), int(code))


def alarm_text(host: str, failure: AidepyError) -> str:
    """The body of the mail sent when no check could be done."""
    if isinstance(failure, BusyError | UnsafeLayoutError | StateIOError):
        what = {BusyError: "ANOTHER AIDEPY RUN HOLDS THE LOCK", UnsafeLayoutError: "AN UNSAFE LAYOUT WAS "
                "REFUSED", StateIOError: "A STATE FILE COULD NOT BE USED"}[type(failure)]
        return (f"!!! aidepy ALERT on {host}: NO CHECK WAS DONE TODAY !!!\n\n{what}:\n    {failure}\n\n"
                "No comparison was made. A run that holds the lock for long, or a link, FIFO or foreign "
                "file in\nthe state directory (state_dir) or on the way to the vault's mountpoint, may "
                "be an attack by\nanother account on this host: look at it at the console (SECURITY.md, "
                "\"Least privilege\").\n")
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
        notes.append(alert("VAULT NOT WRITE-PROTECTED", f"the vault is mounted read-write at "
                           f"{current.mountpoint} (an interrupted promote?): restore its write "
                           "protection, then run 'aidepy vault mount'."))
    elif vault.medium.kind is not MediumKind.DIRECTORY:
        with suppress(VaultError, OSError):  # a medium that cannot be probed: the mount said enough
            if (reason := vault.write_protection()) is None:
                notes.append(alert("VAULT NOT WRITE-PROTECTED", "the vault is not write-protected: "
                                   "restore its write protection."))
            elif (kind := vault.protection_kind()) != HARDWARE:
                notes.append(f"Note: the vault is write-protected ({kind}): {reason}.")
    notes += [f"Note: {p.name} on the vault was left by an interrupted write (the next promote removes it)."
              for p in sorted(vault.root.glob(".*.tmp"))]
    notes += [f"Note: {p} was left by an interrupted promote (the next promote removes it)."
              for p in sorted(state_dir.glob(f"{state.PROMOTE_WORK}*"))]
    return notes


def located(rules: Config, live: Config) -> Config:
    """`rules` (the vault's copy) with the live config's say on where things are."""
    options = {k: v for k, v in rules.options.items() if k not in LOCATION_OPTIONS}
    options.update((k, v) for k, v in live.options.items() if k in LOCATION_OPTIONS)
    return replace(rules, options=options)


@contextmanager
def vault_rules(live: Config, before: Sequence[str] = (), after: Sequence[str] = (),
                warn: Callable[[str], None] = lambda message: None) -> Iterator[tuple[Config, list[str]]]:
    """The rules copy on the vault (which the host cannot change), located by `live`, for the
    `with` block (the vault stays mounted read-only meanwhile), and the report lines that say
    so and name live rule files that differ from the copy. Raises VaultError without a copy."""
    vault = Vault.open(live, warn=warn)
    with vault.mounted() as root:
        copy = vault.load_rules(before, after)
        for message in copy.warnings:
            warn(message)
        config = located(copy, live)
        notices = [f"Rules: the copy on the vault ({root}), which this host cannot change."]
        # an alarm when the live rules would check something else; a note when only where
        # things are (or a comment) differs, as after moving the vault
        differ = config.digest != live.digest
        notices += [alert("RULES DIFFER FROM THE VAULT'S COPY", line) if differ else f"Note: {line}"
                    for line in vault.rules_changes(live.sources)]
        yield config, notices


def remove_stale(state_dir: Path) -> list[str]:
    """Remove temp files an interrupted run left in the state directory; notes on what was found."""
    notes = []
    for stale in sorted(state_dir.glob(f".{state.NEW_DATABASE}.*.tmp")):
        try:
            stale.unlink()
            notes.append(f"Note: removed {stale.name}, left in {state_dir} by an interrupted run.")
        except OSError as exc:  # a directory or something else planted under that name
            notes.append(f"WARNING: {stale} is not a temp file aidepy can remove ({exc.strerror}).")
    return notes


def run_daily(config: Config, scan: Scan, notices: Sequence[str] = ()) -> DailyReport:
    """Check the host against the vault's baseline under `config` (the rules, located by the
    live config); `scan` is consumed only once the baseline verified. An unusable baseline
    gives an alarm report instead."""
    start = time.time()
    host = socket.gethostname()
    state_dir = Path(config.state_dir)
    options = report_options(config)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with open_trusted(config, from_vault=True) as baseline:  # whole, before anything is scanned
            vault = baseline.location.vault
            assert vault is not None
            notices = [*baseline.notices, *notices]
            notices += runtime.notices(vault.root, vault.public_key(), alert)
            notices += key_alarm(config, baseline.db.key_fingerprint)
            notices += last_approval(vault, baseline.generation)
            notices += leftovers(vault, state_dir)
            notices += rules_notice(baseline, config)
            notices += remove_stale(state_dir)
            new_path = state_dir / state.NEW_DATABASE
            found = compare_scan(baseline, config, scan, options, out=new_path,
                                 generation=baseline.generation)
            explained = explanations(config, baseline, found.changes)
            if explained is not None:
                notices += [*explained.notices,
                            *(f"Note: {line}" for line in keyring_changes(vault.root, config.root_prefix))]
    except (AidepyError, OSError) as exc:
        return failed(host, exc)
    listed = [c for c in found.changes if c.kind is not ChangeKind.ATTRIBUTES]
    new = pending.new_changes(listed, pending.previous(state_dir))
    try:
        pending.remember(state_dir, listed)
    except OSError as exc:  # a full state_dir: every change then shows as new tomorrow, none is lost
        notices.append(f"WARNING: {state_dir / state.REPORT_SEEN} could not be written ({exc.strerror}): "
                       "tomorrow's report marks every change as new.")
    report = Report(Mode.CHECK, found.changes, found.summary, start, time.time(), options,
                    [baseline.summary()], new_database=str(new_path), root_prefix=config.root_prefix,
                    notices=notices, warnings=scan.warnings, explained=explained, new=new)
    s = found.summary
    outcome = Outcome(host, s.added, s.removed, s.changed, alarms=alarms(notices),
                      explained=explanation_counts(report) if explained is not None else None,
                      new=len(new))
    return DailyReport(outcome, render(report, config.reports[0].report_format), s.exit_code)


def last_approval(vault: Vault, generation: int) -> list[str]:
    """The report's line on the last approval in the vault's log (and a note when the baseline
    of `generation` is not its last record), or an alarm when the log does not verify."""
    try:
        log = approvals.read_log(vault.root, vault.public_key())
    except ApprovalLogError as exc:
        return [alert("APPROVAL LOG BROKEN", f"{exc} ('aidepy log' shows it).")]
    lines = [f"Last approval: {log.last.describe()}"] if log.last else []
    return lines + [f"Note: {note}." for note in [approvals.baseline_note(log, generation)] if note]


def key_alarm(config: Config, found: str | None) -> list[str]:
    """An alarm when nothing on this host vouches for the key the vault's baseline verified
    with: no `public_key` pin (which would have refused another key already) and no public
    half of `signing_key` to compare it with, or one that differs (a swapped medium)."""
    if config.public_key:
        return []
    ours = keys.public_key_beside(Path(config.signing_key))
    try:
        expected = keys.fingerprint(keys.load_public_key(ours))
    except AidepyError:
        return [alert("KEY NOT PINNED", f"the baseline verified with the vault's own key {found}, and "
                      f"nothing on this host pins it: set public_key={found} in the config.")]
    if expected == found:
        return []
    return [alert("FOREIGN KEY", f"the vault's key {found} is not the key of {config.signing_key} "
                  f"({expected}): was the medium swapped? Set public_key to refuse any other key.")]
