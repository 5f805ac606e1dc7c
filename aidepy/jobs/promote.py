"""Promote: make a fresh scan the vault's new signed baseline, at the console, step by step.

Scan afresh (never `aidepy.db.new`), show the differences against the vault's baseline, ask,
unlock the signing key, wait until the admin has really removed the medium's write protection,
write and verify the baseline and the rules copy, wait until the protection is really back,
remount read-only, print a summary. Until the new baseline is written, an interrupt leaves the
old one in place; the admin is told which baseline the vault holds whenever promote stops.
The console is a parameter (`Console`), so tests drive promote without a terminal.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pyudev

from aidepy import keys, state
from aidepy.atomic import space_needed
from aidepy.compare import Change, ChangeKind, Summary
from aidepy.db import file as db
from aidepy.entry import Entry
from aidepy.errors import (
    AidepyError,
    ApprovalLogError,
    PassphraseError,
    VaultError,
    VaultFullError,
    VerificationError,
)
from aidepy.explain.keyring import keyring_changes, write_keyrings
from aidepy.explain.model import Explained
from aidepy.jobs.baseline import Baseline, Pin, Scan, compare_scan, explanations, open_trusted, report_options
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.review import review
from aidepy.jobs.rules_review import RulesReview, confirm_rules, review_rules
from aidepy.jobs.selective import explained_only, kept_records, with_old_records
from aidepy.report import render
from aidepy.report.escape import escape_path
from aidepy.report.model import Mode, Report
from aidepy.report.plain import change_detail
from aidepy.rollback import Identity, Record
from aidepy.scan.progress import StatusLine
from aidepy.vault import approvals
from aidepy.vault.approvals import Approval, ApprovalLog
from aidepy.vault.layout import APPROVALS, APPROVALS_ANCHOR, DATABASE
from aidepy.vault.medium import udev_context
from aidepy.vault.vault import Vault, read_chunks

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from aidepy.config.evaluate import Config

PASSPHRASE_TRIES = 3
COMMENT_PROMPT = "Comment for the approval log (optional): "
NOT_ACCEPTED = "not accepted: nothing was written; the vault keeps its baseline"



@dataclass(frozen=True)
class Promoted:
    """The baseline promote wrote (the summary it prints)."""

    path: str
    """Where the signed database lives: on the vault, or under state_dir when anchored."""
    sha256: str
    size: int
    generation: int
    entries: int
    key_fingerprint: str
    summary: Summary
    kept: int = 0
    """Changes whose old records the new baseline keeps (they stay in the daily report)."""


class Layout(Enum):
    """Where the signed baseline lives: on the vault, or under state_dir pinned by an anchor."""

    VAULT = "vault"
    ANCHORED = "anchored"


def choose_layout(current: Layout | None, asked: Layout | None, needed: int, free: int,
                  state_dir: Path) -> tuple[Layout, str | None]:
    """The layout of the next baseline and, when it is anchored, the line that says why: the
    one `asked` for; else the vault's `current` one (an anchored vault stays anchored, so a
    baseline that fits once but not twice does not flip between layouts); else the vault when
    the baseline (`needed` bytes on the medium) fits its `free` bytes. Raises VaultFullError
    when the vault layout is asked for and the baseline does not fit."""
    if asked is Layout.VAULT or (asked is None and current is not Layout.ANCHORED and needed <= free):
        if needed > free:
            raise VaultFullError(DATABASE, needed, free)
        return Layout.VAULT, None
    why = ("as asked (--layout anchored)" if asked is Layout.ANCHORED
           else "as before (--layout vault moves it back)" if current is Layout.ANCHORED
           else f"the baseline ({_size(needed)}) does not fit the vault ({_size(free)} free)")
    return Layout.ANCHORED, (f"Anchored: {why}: the signed baseline stays in {state_dir}, with a signed "
                             "anchor on the vault.")


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{-(-n // 1024)} KiB"


class _MediumEvents:
    """Wakes a waiting loop early when udev reports a block device event (a medium removed or
    inserted); without udev it just sleeps, and the loop's polling does the work."""

    def __init__(self) -> None:
        self._monitor: pyudev.Monitor | None = None
        with suppress(OSError, ValueError):
            monitor = pyudev.Monitor.from_netlink(udev_context())
            monitor.filter_by("block")
            monitor.start()
            self._monitor = monitor

    def wait(self, seconds: float) -> None:
        if self._monitor is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        # Drain a burst of events (remove, add, change) without waiting the full time for each.
        while (left := deadline - time.monotonic()) > 0 and self._monitor.poll(timeout=left) is not None:
            deadline = min(deadline, time.monotonic() + 0.2)


class _InterruptLatch:
    """A SIGINT handler: Ctrl-C raises KeyboardInterrupt as usual and is also remembered, so a
    wait loop still stops when the exception landed where Python swallows it (a weakref or
    `__del__` callback prints "Exception ignored" and carries on)."""

    def __init__(self) -> None:
        self.hit = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True
        raise KeyboardInterrupt


class Promotion:
    """One promote run. `run()` does every step; the attributes are what the steps found."""

    def __init__(
        self, config: Config, console: Console, *, assume_yes: bool = False, device: str | None = None,
        poll: float = 0.5, patience: float | None = None,
        entries: Callable[[], Iterable[Entry]] | None = None, layout: Layout | None = None,
        accept_rules: bool = False, explained_only: bool = False, comment: str | None = None,
    ) -> None:
        self.config = config
        self.console = console
        self.assume_yes = assume_yes
        self.layout = layout
        """The layout asked for (`--layout`); None keeps the vault's, or picks what fits."""
        self.accept_rules = accept_rules
        """With `assume_yes`: replace the vault's rules copy also when the live rules differ."""
        self.explained_only = explained_only
        """Accept only the changes explained with evidence `archive`; keep the old records of the rest."""
        self.comment = comment
        """The approval log's comment (`--comment`); None: asked at the console (not with --yes)."""
        self.poll = poll
        self.patience = patience
        """Give up waiting for the medium after this many seconds (None: as long as it takes)."""
        self._interrupt = _InterruptLatch()
        self._warn = lambda message: console.say(f"aidepy: {message}")
        self.vault = Vault.open(config, device=device, warn=self._warn)
        self._entries = entries or self._scan
        self._status = StatusLine(console.output)
        self.state_dir = Path(config.state_dir)
        self.old_generation = 0
        self.new_generation: int | None = None
        """Set once the new baseline is on the vault."""
        self._vault_key: Ed25519PublicKey | None = None
        self._record = Record.read(self.state_dir)
        self._identity = Identity("")
        self._rules_review: RulesReview | None = None
        self._changes: list[Change] = []
        self._explained: Explained | None = None
        self._accepted: dict[bytes, bool] = {}
        """The selection (path -> accepted): every change, or --explained-only's, or the admin's answers."""
        self._kept: dict[bytes, Entry | None] = {}
        self._approvals = ApprovalLog((), b"")
        self._new_log: tuple[Path, bytes, tuple[Approval, ...], bool] | None = None
        """The approval log with this promote's record: work copy, bytes, records, anchored."""
        self._approved: int | None = None
        """The generation of the record written to the approval log."""

    # -- the steps --------------------------------------------------------------------------------

    def run(self) -> Promoted | Declined:
        """Every step in order (Declined: the admin said no, nothing was written); an interrupt
        says which baseline the vault holds, then propagates."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for stale in sorted(self.state_dir.glob(f"{state.PROMOTE_WORK}*")):
            self.console.say(f"Removing {stale}, left by an interrupted promote.")
            shutil.rmtree(stale, ignore_errors=True)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._interrupt) if main else None
        try:
            with state.private_workdir(self.state_dir, state.PROMOTE_WORK) as work:
                try:
                    return self._run(work)
                except (KeyboardInterrupt, AidepyError) as exc:
                    self._stopped(exc)
                    raise
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def _run(self, work: Path) -> Promoted | Declined:
        candidate = work / state.PROMOTE_CANDIDATE
        summary, text = self._differences(candidate)
        self.console.show(text)
        declined = self._select() or confirm_rules(self._rules_review, self.console,
                                                   assume_yes=self.assume_yes, accept_rules=self.accept_rules)
        if declined is not None:
            return declined
        key = self._signing_key()
        comment = self._comment()
        signed = work / state.PROMOTE_SIGNED
        with db.open_database(candidate, None) as fresh:
            info = db.write_database(signed, with_old_records(fresh.entries(), self._kept),
                                     host=fresh.header.host,
                                     rules_digest=fresh.header.rules_digest,
                                     generation=self._next_generation(), signing_key=key)
        layout = self._layout(info)
        self._prepare_approval(work, key, info, layout, comment)
        self._await_writable()
        path = self._install(signed, info, key, layout)
        self._await_protected()
        self.vault.mount(rw=False)
        promoted = self._verified(path, summary, len(self._kept))
        with suppress(OSError):  # the baseline is on the vault; the record only guards against rollback
            self._record.record(self._identity, promoted.generation)
        return promoted

    def _next_generation(self) -> int:
        """One more than the vault's baseline, and than any generation of the vault's key this
        host has verified (so the new baseline never looks like a rollback, even after a broken one)."""
        # An approval whose baseline was never installed (an interrupted promote) is approved
        # again under its generation; the log's generations never go backwards.
        return max(self.old_generation, self._record.newest(self._identity),
                   self._approvals.generation - 1) + 1

    def _scan(self) -> Iterator[Entry]:
        from aidepy.scan.walk import ScanWarning, scan

        def say(warning: ScanWarning) -> None:
            self._status.clear()
            self.console.say(f"warning: {escape_path(warning.path)}: {warning.message}")

        yield from scan(self.config.ruleset, root_prefix=self.config.root_prefix,
                        workers=self.config.num_workers, on_warning=say)

    def _differences(self, candidate: Path) -> tuple[Summary, str]:
        """Scan into `candidate` and compare it with the vault's baseline, exactly as the daily
        report will (the trusted path, the same report options, growing files re-hashed);
        returns the summary and the report text."""
        start = time.time()
        options = report_options(self.config)
        with self.vault.mounted(), ExitStack() as stack:
            self._vault_key = self._checked_vault_key()
            self._identity = Identity(keys.fingerprint(self._vault_key), self.vault.identity())
            self._approvals = self._read_approvals()
            baseline: Baseline | None = None
            try:
                baseline = stack.enter_context(open_trusted(self.config, from_vault=True, record=False))
                self.old_generation = baseline.generation
                notices = [f"Baseline on the vault: generation {self.old_generation}, signed with "
                           f"{baseline.db.key_fingerprint}, verified.", *baseline.notices[1:]]
            except VerificationError as exc:
                notices = [f"WARNING: the vault's baseline FAILED VERIFICATION ({exc}); promote replaces it."]
            except VaultError as exc:
                if self.vault.database_path.exists() or self.vault.anchor_path.exists():
                    raise
                notices = [f"{exc}: this will be the first baseline."]
            if self.config.explain_changes:
                notices += [f"Note: {line} (promote copies apt's keyrings as they are now)"
                            for line in keyring_changes(self.vault.root, self.config.root_prefix)]
            self.console.say("Scanning the file system (the new baseline is built from this scan only)...")
            with self._status:
                found = compare_scan(baseline, self.config, Scan(self._status.track(self._entries())),
                                     options, out=candidate)
            self._rules_review = review_rules(self.vault, self.config,
                                              baseline.db.entries() if baseline is not None else None)
            explained = explanations(self.config, baseline, found.changes) if baseline is not None else None
        self._changes, self._explained = found.changes, explained
        self._accepted = dict.fromkeys((c.path for c in found.changes), True)
        if self.explained_only:
            self._accepted = explained_only(found.changes, explained)
            kept = len(kept_records(found.changes, self._accepted))
            accepted = sum(self._accepted.values())
            notices.append(f"--explained-only: accepting the {accepted} change{'' if accepted == 1 else 's'} "
                           "explained with evidence archive; keeping the old "
                           f"record{'' if kept == 1 else 's'} of the other {kept} "
                           f"({'it stays' if kept == 1 else 'they stay'} in the daily report).")
        text = render(Report(
            mode=Mode.COMPARE, changes=found.changes, summary=found.summary, start_time=start,
            end_time=time.time(), options=options, explained=explained,
            notices=[*notices, *(explained.notices if explained else ())],
        ), self.config.reports[0].report_format)
        return found.summary, text

    # -- which changes the new baseline takes ------------------------------------------------------

    def _select(self) -> Declined | None:
        """Settle the selection: as it stands with --yes; else as the admin answers: accept it
        (y), review the changes one by one (r, offered without --explained-only), or no (n)."""
        if not self.assume_yes:
            review_offered = not self.explained_only and any(
                c.kind is not ChangeKind.ATTRIBUTES for c in self._changes)
            answer = self.console.choice(
                "Accept these differences: make this scan the vault's new baseline? "
                + ("[y/N/r] (r: review them one by one)" if review_offered else "[y/N]"),
                "ynrYNR" if review_offered else "ynYN", default="n")
            if answer is None or answer.lower() == "n":
                return Declined(NOT_ACCEPTED)
            if answer.lower() == "r":
                reviewed = self._reviewed()
                if reviewed is None:
                    return Declined(NOT_ACCEPTED)
                self._accepted = reviewed
        self._kept = kept_records(self._changes, self._accepted)
        return None

    def _reviewed(self) -> dict[bytes, bool] | None:
        """The admin's answers change by change, confirmed once more; None when declined."""
        options = report_options(self.config)
        answers = review(self._changes, self._explained, self.console,
                         lambda change: change_detail(change, options))
        if answers is None:
            return None
        kept = len(kept_records(self._changes, answers))
        accepted = sum(answers.values())
        if not self.console.confirm(f"Make this the vault's new baseline: {accepted} change"
                                    f"{'' if accepted == 1 else 's'} accepted, {kept} kept as before "
                                    f"({'it stays' if kept == 1 else 'they stay'} in the daily report)?"):
            return None
        return answers

    def _checked_vault_key(self) -> Ed25519PublicKey:
        """The vault's public key; with public_key set it must be the pinned key, or no check
        would ever accept what promote writes."""
        key = self.vault.public_key()
        pin = Pin.from_config(self.config)
        if pin is not None:
            pin.check(keys.fingerprint(key), f"the vault's key {self.vault.key_path} is "
                                             f"{keys.fingerprint(key)}")
        return key

    def _signing_key(self) -> Ed25519PrivateKey:
        path = Path(self.config.signing_key)
        try:
            key = keys.load_private_key(path, None)
        except PassphraseError:
            if self.assume_yes:
                raise PassphraseError(f"{path} is encrypted: --yes needs a signing key without "
                                           "a passphrase (or run promote at the console)") from None
            key = self._ask_passphrase(path)
        vault_key = keys.raw_public(self._vault_key) if self._vault_key is not None else b""
        if keys.raw_public(key.public_key()) != vault_key:
            raise VaultError(f"the signing key {path} does not belong to the vault's public key")
        return key

    def _ask_passphrase(self, path: Path) -> Ed25519PrivateKey:
        for attempt in range(1, PASSPHRASE_TRIES + 1):
            passphrase = self.console.secret(f"Passphrase for the signing key {path}: ")
            try:
                return keys.load_private_key(path, passphrase.encode())
            except PassphraseError as exc:
                if attempt == PASSPHRASE_TRIES:
                    raise
                self.console.say(f"{exc}; try again")
        raise AssertionError("unreachable")

    def _protection(self) -> tuple[bool, str | None]:
        """(present, why it is write-protected or None), asked afresh: the medium may have been
        removed and come back under another device name."""
        fresh = Vault(self.vault.settings, warn=lambda m: None)
        try:
            return True, fresh.write_protection()
        except (VaultError, OSError) as exc:
            return False, str(exc)

    def _wait(self, done: Callable[[bool, str | None], bool], first: str) -> None:
        """Poll the medium until `done(present, reason)`; say when it goes or comes back."""
        self.console.say(first)
        events = _MediumEvents()
        last_present = True
        deadline = None if self.patience is None else time.monotonic() + self.patience
        while not done(*(state := self._protection())):
            if self._interrupt.hit:
                raise KeyboardInterrupt
            if deadline is not None and time.monotonic() > deadline:
                raise VaultError(f"gave up after waiting {self.patience:g} s for the medium ({state[1]})")
            present, reason = state
            if present != last_present:
                self.console.say(f"  the medium is back ({reason or 'writable'}); waiting..." if present
                                 else "  the medium is gone; waiting for it to come back...")
            last_present = present
            events.wait(self.poll)

    def _await_writable(self) -> None:
        present, reason = self._protection()
        if present and reason is None:
            return
        if self.assume_yes:
            raise VaultError(f"the vault is write-protected ({reason}); --yes does not wait: turn the "
                             "write protection off, then run promote again; nothing was written")
        self.vault.umount()  # so the medium can be taken out, and is mounted afresh afterwards
        self._wait(lambda present, reason: present and reason is None,
                   f"Remove the write protection from the vault now ({reason}): flip the lock switch "
                   "(take the medium out first if it needs that, then put it back). Waiting until it "
                   "is writable; Ctrl-C stops and keeps the old baseline.")
        # The medium may be back under another device name: resolve it afresh.
        self.vault = Vault(self.vault.settings, warn=self._warn)
        self.console.say("The vault is writable.")

    def _layout(self, info: db.DatabaseInfo) -> Layout:
        """Decide, before the write protection comes off, where the new baseline goes (and say
        so when it is anchored)."""
        with self.vault.mounted() as root:
            on_vault, anchor = self.vault.database_path.exists(), self.vault.anchor_path.exists()
            current = Layout.VAULT if on_vault else Layout.ANCHORED if anchor else None
            layout, why = choose_layout(current, self.layout, space_needed(info.size, root),
                                        self.vault.free_bytes(), self.state_dir)
        if why:
            self.console.say(why)
        return layout

    def _install(self, signed: Path, info: db.DatabaseInfo, key: Ed25519PrivateKey, layout: Layout) -> str:
        """Write the signed baseline (or its anchor) and the rules onto the vault; anchored
        databases that no anchor pins any more are removed once the new anchor is verified."""
        with self.vault.mounted(rw=True):
            # first: a killed promote leaves an approval not installed, never a baseline without one
            self._install_approval(key)
            written: Path | None = None
            if layout is Layout.VAULT:
                try:
                    written = self.vault.write_database(read_chunks(signed), size=info.size).path
                except VaultFullError as exc:  # the estimate was short: still never silent
                    self.console.say(f"{exc}: anchored after all: the signed baseline stays in "
                                     f"{self.state_dir}, with a signed anchor on the vault")
            if written is None:
                written = self.state_dir / state.ANCHORED_DATABASE.format(generation=info.header.generation)
                os.replace(signed, written)
                self.vault.write_anchor(written, info, key)
            for old in self.state_dir.glob(state.ANCHORED_DATABASE.format(generation="*")):
                if old != written:  # pinned by no anchor any more
                    old.unlink()
            self.new_generation = info.header.generation
            self.vault.write_rules(self.config.sources)
            if self.config.explain_changes and (why := write_keyrings(self.vault, self.config.root_prefix)):
                self.console.say(f"Note: {why}.")  # the only keyrings explanations will trust
        self.console.say(f"New baseline (generation {info.header.generation}) and rules written and "
                         "verified.")
        return str(written)

    # -- the approval log -------------------------------------------------------------------------

    def _read_approvals(self) -> ApprovalLog:
        """The vault's approval log, verified (the vault is mounted); promote never appends to
        a log that does not verify."""
        assert self._vault_key is not None
        try:
            return approvals.read_log(self.vault.root, self._vault_key)
        except ApprovalLogError as exc:
            raise ApprovalLogError(f"{exc}: promote does not append to a broken approval log; nothing was "
                                   f"written ('aidepy log' shows it; to start a new log, move {APPROVALS} "
                                   f"or {APPROVALS_ANCHOR} off the vault at the console)") from None

    def _comment(self) -> str | None:
        """`--comment`, else asked right after the passphrase (never with --yes)."""
        if self.comment is None and not self.assume_yes:
            return self.console.ask(COMMENT_PROMPT).strip() or None
        return self.comment

    def _prepare_approval(self, work: Path, key: Ed25519PrivateKey, info: db.DatabaseInfo, layout: Layout,
                          comment: str | None) -> None:
        """Sign this promote's record onto the log in the work directory, and decide (before the
        protection comes off) whether the log stays on the vault: not when it is anchored
        already, nor when it does not fit beside the baseline."""
        user, tty = self.console.who()
        paths = approvals.approved_paths(self._changes, self._kept)
        approval = Approval(info.header.generation, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            user, tty, len(paths), len(self._kept), paths, comment,
                            keys.fingerprint(key.public_key()))
        data = approvals.append(self._approvals.data, approval, key)
        copy = work / state.PROMOTE_APPROVALS
        with open(copy, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        anchored = self._approvals.anchored is not None
        if not anchored:
            with self.vault.mounted() as root:
                needed = space_needed(len(data), root)
                beside = space_needed(info.size, root) if layout is Layout.VAULT else 0
                anchored = needed + beside > self.vault.free_bytes()
            if anchored:
                self.console.say(f"Anchored: the approval log ({_size(needed)}) does not fit the vault "
                                 f"beside the baseline: it stays in {self.state_dir}, with a signed anchor "
                                 "on the vault.")
        self._new_log = (copy, data, (*self._approvals.records, approval), anchored)

    def _install_approval(self, key: Ed25519PrivateKey) -> None:
        """Write the log with this promote's record (the vault is mounted read-write)."""
        assert self._new_log is not None
        copy, data, records, anchored = self._new_log
        if not anchored:
            try:
                approvals.write_on_vault(self.vault, data, key.public_key())
            except VaultFullError as exc:  # the estimate was short: still never silent
                self.console.say(f"{exc}: the approval log is anchored after all: it stays in "
                                 f"{self.state_dir}, with a signed anchor on the vault")
                anchored = True
        if anchored:
            approvals.write_anchored(self.vault, copy, data, records, int(time.time()), key, self.state_dir)
        self._approved = records[-1].generation

    def _await_protected(self) -> None:
        if self.assume_yes:
            if not self._protection()[1]:
                self.console.say("The vault's write protection is OFF: turn it back on.")
            return
        self._wait(lambda present, reason: present and reason is not None,
                   "Now restore the vault's write protection (flip the lock switch back). "
                   "Waiting until the medium really is read-only...")
        self.console.say("The vault is write-protected again.")

    def _verified(self, path: str, summary: Summary, kept: int) -> Promoted:
        """Read the new baseline back from the read-only vault and print the summary."""
        with db.open_database(self.vault.baseline_path(), self.vault.public_key()) as new:
            promoted = Promoted(path, new.sha256.hex(), Path(new.path).stat().st_size,
                                new.header.generation, new.header.entry_count, new.key_fingerprint or "",
                                summary, kept)
        self.console.say(
            f"Promoted: {promoted.path}\n"
            f"  generation   {promoted.generation} (was {self.old_generation})\n"
            f"  entries      {promoted.entries} ({summary.added} added, {summary.removed} removed, "
            f"{summary.changed} changed{f'; {kept} kept as before' if kept else ''})\n"
            f"  sha256       {promoted.sha256}\n"
            f"  size         {promoted.size} bytes\n"
            f"  signed by    {promoted.key_fingerprint}"
        )
        return promoted

    def _stopped(self, exc: BaseException) -> None:
        """Tell the admin which baseline the vault holds after an interrupt or failure."""
        with suppress(AidepyError, OSError):
            if self.vault.current_mount() is not None:
                self.vault.mount(rw=False)
        how = "Interrupted" if isinstance(exc, KeyboardInterrupt) else "Stopped"
        if self.new_generation is None:
            written = ("nothing was written" if self._approved is None else
                       f"only the approval log's record (generation {self._approved}, approved, not "
                       "installed; the next promote approves it again) was written")
            self.console.say(f"\n{how}: {written}; the vault keeps its old baseline"
                             f"{f' (generation {self.old_generation})' if self.old_generation else ''}.")
        else:
            self.console.say(f"\n{how}: the new baseline (generation {self.new_generation}) is already "
                             "written and verified. Make sure the vault's write protection is ON again.")
