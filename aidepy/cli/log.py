"""`aidepy log`: verify the vault's approval log and print it (see `aidepy.vault.approvals`)."""

from __future__ import annotations

import argparse
import json

from aidepy.cli.options import add_config_arguments, load_config
from aidepy.jobs.baseline import open_trusted
from aidepy.keys import fingerprint
from aidepy.lock import run_lock
from aidepy.vault import approvals

NAME = "log"
HELP = "verify the signed approval log on the vault and print it"
DESCRIPTION = """\
Every promote appends a record to the approval log on the vault: the generation it approved,
the time (UTC), the console user and terminal, how many changes were accepted and how many
kept their old record, every accepted path with the digests of its old and new records, and
the comment given at the prompt (or with promote --comment). Each record is signed with the
baseline's key and chained to the one before it (SHA-256).

The vault is mounted read-only for the run (and put back as it was) and its key found as
`check` finds it: the pinned public_key, or the vault's aidepy.pub; the baseline must verify
too. Then the whole log is verified: every signature with that key, the chain, generations
that never go backwards, a last record that is whole, and, when the log outgrew the vault and
is kept in state_dir (approvals.RECORDS.log), that this copy is the one the vault's signed
anchor (approvals.anchor) pins. A record whose baseline was never installed (promote was
interrupted after it wrote the record) stays in the log; the next promote approves its
generation again.

The text output shows one block per record, each accepted path with the first 16 hex digits
of its old and new digests (`-` for an added or removed path); --json prints
{"records": [...], "verified": true, ...} with every path lossless as in the JSON report.

Exit status: 0 the log verifies (also when there is none yet); 20 it does not (the reason is
printed: a bad signature, a broken chain, a truncated record, a record signed by another key,
generations going backwards, an anchored copy that is not the pinned one), or the baseline
does not; 21 the vault cannot be used."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the records as JSON")


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    with run_lock(config.state_dir), open_trusted(config, from_vault=True, record=False) as baseline:
        vault = baseline.location.vault
        assert vault is not None
        key = vault.public_key()  # the pinned one: open_trusted refused any other
        log = approvals.read_log(vault.root, key)
        generation = baseline.generation
    note = approvals.baseline_note(log, generation)
    where = str(log.anchored) if log.anchored else "on the vault"
    if args.json:
        print(json.dumps({"records": [r.as_dict() for r in log.records], "verified": True,
                          "anchored": str(log.anchored) if log.anchored else None,
                          "baseline_generation": generation, "note": note}, indent=2))
        return 0
    for record in log.records:
        print(record.text())
    if log.records:
        print(f"Verified: {len(log.records)} record{'s' if len(log.records) != 1 else ''} ({where}), each "
              f"signed with {fingerprint(key)} and chained to the one before.")
    if note:
        print(f"Note: {note}.")
    return 0
