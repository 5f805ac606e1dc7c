"""`aidepy promote`: make a fresh scan the vault's new signed baseline (see `aidepy.jobs.promote`)."""

from __future__ import annotations

import argparse
import sys

from aidepy.cli.options import add_config_arguments
from aidepy.config import evaluate as config
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.promote import Layout, Promotion
from aidepy.lock import run_lock

NAME = "promote"
HELP = "scan afresh and write the new signed baseline onto the vault (at the console)"
DESCRIPTION = """\
Build a new baseline and put it on the vault, the way the admin does it at the console after
reviewing a report:

  1. scan the file system afresh (aidepy.db.new from the daily job is never used);
  2. show the differences against the vault's baseline (paged when long) and ask: y accepts
     every change, n writes nothing, r reviews them: the changes explained by package updates
     with evidence archive in one answer, then each other change with a=accept, k=keep the old
     record (it stays in the daily report), d=detail (with the diff of recorded content),
     A/K=accept/keep every change left in its directory, and a last confirmation;
     then, when the live rules differ from the vault's copy of the rules (which the daily
     report checks with), show a unified diff and how many paths of the baseline the new rules
     no longer select (the first ten named), and ask again (--yes refuses unless --accept-rules).
     The baseline is verified as for `check` (public_key pins the vault's key), and the
     differences are computed exactly as the daily report will (report_* options, growing files
     re-hashed); a baseline that fails verification is shown as such and replaced;
  3. ask for the signing key's passphrase (signing_key, default /etc/aidepy/signing.key), then
     for a comment for the approval log (optional; --comment gives it, --yes asks nothing);
  4. ask you to remove the medium's write protection, and wait until it really is writable
     (take the medium out and put it back if it needs that; promote notices);
  5. append this promote's signed record to the approval log (`aidepy log` shows it), then
     write the signed baseline and the copy of the rules, each atomically, and verify them.
     Where the baseline goes is decided before step 4, and said when it is anchored: on the
     vault when it fits; else it stays in state_dir (aidepy.GENERATION.db, mode 0600) and the
     vault holds a signed anchor pinning it. An anchored vault stays anchored (--layout vault
     moves it back); anchored copies no anchor pins any more are removed. The approval log
     is anchored the same way (state_dir/approvals.RECORDS.log, approvals.anchor on the vault)
     when it does not fit the vault beside the baseline, and stays anchored;
  6. ask you to restore the write protection, and wait until the medium really is read-only;
  7. remount the vault read-only and print the new baseline's digest, generation and key
     fingerprint. The generation is the old baseline's plus one.

While step 1 runs, a status line shows how far the scan has got (entries, time, the path being
scanned); it is erased before the differences are shown.

Ctrl-C at any step before 5 leaves the old baseline in place, and promote says so; after 5 it
says that the new baseline is written. With --yes the same steps run without questions and
without a pager, for scripts: the signing key must have no passphrase, and promote fails at
once, writing nothing, if the medium is write-protected when it has to write; it never waits.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--yes", action="store_true",
                        help="no questions, no waiting, no pager (scripts; needs a key without passphrase)")
    parser.add_argument("--accept-rules", action="store_true",
                        help="with --yes: also when the live rules differ from the vault's copy (without it, "
                             "--yes refuses then, writing nothing)")
    parser.add_argument("--layout", choices=[layout.value for layout in Layout],
                        help="vault: the signed baseline on the vault (refused before anything is written "
                             "when it does not fit); anchored: the baseline in state_dir, a signed anchor "
                             "on the vault. Default: the vault's present layout, or the vault when it fits")
    parser.add_argument("--explained-only", action="store_true",
                        help="accept only the changes explained by package updates with evidence archive "
                             "(README: Changes explained by package updates); the new baseline keeps the "
                             "old record of every other change, which stays in the daily report")
    parser.add_argument("--comment", metavar="TEXT",
                        help="the comment of this promote's record in the approval log (without it, promote "
                             "asks at the console; --yes asks nothing)")


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config, args.before, args.after)
    with run_lock(settings.state_dir):
        result = Promotion(settings, Console.terminal(paged=not args.yes), assume_yes=args.yes,
                           layout=Layout(args.layout) if args.layout else None,
                           accept_rules=args.accept_rules, explained_only=args.explained_only,
                           comment=args.comment).run()
    if isinstance(result, Declined):
        print(f"aidepy: {result.reason}", file=sys.stderr)
    return 0
