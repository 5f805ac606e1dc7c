"""`aidepy keygen`: create the Ed25519 key pair that signs baselines."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from aidepy.errors import PassphraseError, UsageError
from aidepy.keys import fingerprint, generate_keypair, public_key_beside

NAME = "keygen"
HELP = "create the key pair that signs baselines"
DEFAULT_KEY = "/etc/aidepy/signing.key"
DESCRIPTION = f"""\
Create an Ed25519 key pair for signing baseline databases. The private key is written to FILE
(default {DEFAULT_KEY}, the config's signing_key) as PKCS#8 PEM, mode 0600, encrypted with
a passphrase; the public key is written beside it as FILE.pub (SubjectPublicKeyInfo PEM). The
fingerprint of the public key is printed; every report shows the fingerprint of the key that
signed its baseline, so write it down somewhere the server cannot change.

Keep the private key off the vault and, ideally, off the server's backups: whoever holds it and
its passphrase can sign a baseline that hides changes. Copy FILE.pub onto the vault
(`aidepy vault install` does) so checks verify baselines against it.

The passphrase is asked twice on the terminal unless --passphrase-file or --no-passphrase is
given; without a terminal one of the two is required. A key without a passphrase lets
`aidepy promote --yes` sign unattended, which also lets anyone with root on this host sign.

An existing FILE or FILE.pub is never replaced unless --force is given.

Exit status: 0 key pair written; 15 bad arguments, passphrases that differ or no terminal to
ask on; 18 a key file exists already (without --force) or could not be written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="FILE", default=DEFAULT_KEY,
        help=f"private key file; the public key goes to FILE.pub (default: {DEFAULT_KEY})",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--passphrase-file", metavar="F",
        help="read the passphrase from the first line of F instead of asking",
    )
    source.add_argument(
        "--no-passphrase", action="store_true",
        help="store the private key unencrypted (for unattended signing; weaker)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")


def ask_new_passphrase(ask: Callable[[str], str]) -> bytes:
    """Ask for a new passphrase twice through `ask` (a getpass-like function)."""
    first = ask("New passphrase for the signing key: ")
    if not first:
        raise PassphraseError("empty passphrase (use --no-passphrase for a key without one)")
    if ask("Repeat the passphrase: ") != first:
        raise PassphraseError("the passphrases differ; nothing written")
    return first.encode()


def _passphrase(args: argparse.Namespace) -> bytes | None:
    if args.no_passphrase:
        return None
    if args.passphrase_file:
        try:
            text = Path(args.passphrase_file).read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc
            raise UsageError(f"{args.passphrase_file}: cannot read the passphrase: {reason}") from exc
        passphrase = text.split(b"\n", 1)[0]
        if not passphrase:
            raise PassphraseError(f"{args.passphrase_file}: the first line is empty")
        return passphrase
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for a passphrase: give --passphrase-file F or --no-passphrase")
    return ask_new_passphrase(getpass.getpass)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such directory")
    public = generate_keypair(out, _passphrase(args), overwrite=args.force)
    print(f"private key: {out}")
    print(f"public key:  {public_key_beside(out)}")
    print(f"fingerprint: {fingerprint(public)}")
    return 0
