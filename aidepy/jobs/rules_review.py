"""Before the live rules replace the vault's copy (promote, `vault install`): what would change.

The daily report checks with the vault's copy of the rules, so an intruder who edits the live
rules to hide a directory gains nothing until someone copies them onto the vault. Both commands
that do show a unified diff of the copy against the live rules and the paths of the vault's
baseline the live rules no longer select, and ask separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aidepy.config.evaluate import Config
from aidepy.entry import Entry
from aidepy.errors import AidepyError, UsageError
from aidepy.jobs.baseline import open_trusted
from aidepy.jobs.console import Console, Declined
from aidepy.report.escape import escape_path
from aidepy.selection import RuleSet
from aidepy.vault.vault import Vault

SHOWN = 10
"""How many paths the live rules no longer select are named (all are counted)."""
QUESTION = "Accept these rule changes: make the live rules the vault's copy?"


def no_longer_selected(entries: Iterable[Entry], ruleset: RuleSet) -> list[bytes]:
    """The paths of `entries` (a baseline, in canonical order) that `ruleset` does not select,
    or lies in a directory it no longer enters."""
    lost: list[bytes] = []
    pruned: bytes | None = None
    for entry in entries:
        if pruned is not None and entry.path.startswith(pruned):
            lost.append(entry.path)
            continue
        if ruleset.match(entry.path, entry.ftype) is None:
            lost.append(entry.path)
        if entry.ftype == "d" and not ruleset.should_descend(entry.path):
            pruned = entry.path.rstrip(b"/") + b"/"
    return lost


@dataclass(frozen=True)
class RulesReview:
    """How the live rules differ from the vault's copy."""

    diff: str
    unselected: list[bytes]

    def text(self) -> str:
        lost = self.unselected
        named = "".join(f"\n  {escape_path(p)}" for p in lost[:SHOWN])
        more = f"\n  ... and {len(lost) - SHOWN} more" if len(lost) > SHOWN else ""
        return ("The live rules differ from the vault's copy, which the daily report checks with:\n"
                f"{self.diff}\nUnder the live rules, {len(lost)} paths of the vault's baseline are no "
                f"longer selected (they would not be checked any more){':' if lost else '.'}{named}{more}")


def review_rules(vault: Vault, live: Config, baseline: Iterable[Entry] | None) -> RulesReview | None:
    """The review of the mounted vault's rules copy against `live`, or None when there is
    nothing to review (the same rules, or no copy yet: nothing to lose)."""
    diff = vault.rules_diff(live.sources)
    if not diff:
        return None
    return RulesReview(diff, no_longer_selected(baseline, live.ruleset) if baseline is not None else [])


def review_vault_rules(vault: Vault, live: Config) -> RulesReview | None:
    """`review_rules` against the vault's baseline, opened through the trusted path (one that
    is missing or does not verify: the diff alone)."""
    with vault.mounted():
        try:
            with open_trusted(live, from_vault=True, record=False) as baseline:
                return review_rules(vault, live, baseline.db.entries())
        except AidepyError:
            return review_rules(vault, live, None)


def confirm_rules(review: RulesReview | None, console: Console, *, assume_yes: bool,
                  accept_rules: bool) -> Declined | None:
    """Show `review` and ask; Declined when the admin says no, None to go on; raises UsageError
    for --yes without --accept-rules. Nothing to review: nothing asked."""
    if review is None:
        return None
    console.show(review.text())
    if assume_yes:
        if not accept_rules:
            raise UsageError("the live rules differ from the vault's copy (shown above): --yes "
                             "replaces the copy only with --accept-rules; nothing was written")
    elif not console.confirm(QUESTION):
        return Declined("rule changes not accepted: nothing was written; the vault keeps its "
                        "baseline and its copy of the rules")
    return None
